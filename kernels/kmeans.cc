// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// quiver::KMeans(): argument checks, then the CPU or the CUDA path.

#include "quiver/kmeans.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/assign.h"
#include "kernels/cpu/distance.h"
#include "kernels/cpu/kmeans_cpu.h"
#include "kernels/cuda/kmeans_cuda.h"

namespace quiver {
namespace {

Status CheckFinite(const float* x, size_t n, size_t d, const char* what) {
  for (size_t i = 0; i < n * d; ++i) {
    if (!std::isfinite(x[i])) {
      return Status::InvalidArgument(std::string(what) + " row " +
                                     std::to_string(i / d) + " component " +
                                     std::to_string(i % d) +
                                     " is not a finite number");
    }
  }
  return Status::OK();
}

Status CheckShape(const float* data, size_t n, size_t d, size_t k) {
  if (data == nullptr) return Status::InvalidArgument("k-means: data is null");
  if (d == 0) return Status::InvalidArgument("k-means: dimension must be >= 1");
  if (k == 0) return Status::InvalidArgument("k-means: k must be >= 1");
  if (k > n) {
    return Status::InvalidArgument("k-means: k = " + std::to_string(k) +
                                   " is larger than the number of points n = " +
                                   std::to_string(n));
  }
  if (k > UINT32_MAX) return Status::InvalidArgument("k-means: k too large");
  return Status::OK();
}

}  // namespace

Status KMeans(const KMeansOptions& options, const float* data, size_t n,
              size_t d, size_t k, KMeansResult* result) {
  if (result == nullptr) return Status::InvalidArgument("k-means: result is null");
  Status s = CheckShape(data, n, d, k);
  if (!s.ok()) return s;
  if (options.max_iterations < 1) {
    return Status::InvalidArgument("k-means: max_iterations must be >= 1");
  }
  if (!(options.tolerance >= 0.0)) {
    return Status::InvalidArgument("k-means: tolerance must be >= 0");
  }
  if (options.init == KMeansInit::kGiven) {
    if (options.initial_centroids == nullptr) {
      return Status::InvalidArgument(
          "k-means: init = kGiven needs initial_centroids");
    }
    s = CheckFinite(options.initial_centroids, k, d, "initial centroid");
    if (!s.ok()) return s;
  }

  bool use_gpu = false;
  switch (options.device) {
    case Device::kCpu:
      break;
    case Device::kGpu:
      if (!kernels::CudaDeviceAvailable()) {
        return Status::NotSupported("k-means: device = gpu but no CUDA GPU is available");
      }
      use_gpu = true;
      break;
    case Device::kAuto:
      use_gpu = options.data_on_device || kernels::CudaDeviceAvailable();
      break;
  }
  if (options.data_on_device && !use_gpu) {
    return Status::InvalidArgument("k-means: data_on_device needs the GPU path");
  }
  if (use_gpu) {
    // The CUDA path checks device-resident data itself.
    if (!options.data_on_device) {
      s = CheckFinite(data, n, d, "k-means: point");
      if (!s.ok()) return s;
    }
    return kernels::KMeansCuda(options, data, n, d, k, result);
  }

  s = CheckFinite(data, n, d, "k-means: point");
  if (!s.ok()) return s;
  if (options.metric == Metric::kCosine) {
    std::vector<float> normalized(data, data + n * d);
    for (size_t i = 0; i < n; ++i) kernels::Normalize(&normalized[i * d], d);
    return kernels::KMeansCpu(options, normalized.data(), n, d, k, result);
  }
  return kernels::KMeansCpu(options, data, n, d, k, result);
}

Status KMeansPredict(Metric metric, const float* centroids, size_t k,
                     const float* data, size_t n, size_t d,
                     uint32_t* assignments, float* distances) {
  if (centroids == nullptr || assignments == nullptr) {
    return Status::InvalidArgument("k-means predict: null argument");
  }
  if (n == 0) return Status::OK();
  if (data == nullptr || d == 0 || k == 0) {
    return Status::InvalidArgument("k-means predict: empty data or centroids");
  }
  Status s = CheckFinite(data, n, d, "k-means predict: point");
  if (!s.ok()) return s;
  std::vector<float> normalized;
  if (metric == Metric::kCosine) {
    normalized.assign(data, data + n * d);
    for (size_t i = 0; i < n; ++i) kernels::Normalize(&normalized[i * d], d);
    data = normalized.data();
  }
  std::vector<float> norms;
  if (metric == Metric::kL2) {
    norms.resize(k);
    kernels::RowNormsSqr(centroids, k, d, norms.data());
  }
  kernels::AssignNearest(metric, data, n, centroids,
                         norms.empty() ? nullptr : norms.data(), k, d,
                         assignments, distances);
  return Status::OK();
}

namespace kernels {

Status CheckDeviceList(const std::vector<int>& devices, int visible) {
  for (size_t i = 0; i < devices.size(); ++i) {
    const int g = devices[i];
    if (g < 0 || (visible > 0 && g >= visible)) {
      return Status::InvalidArgument("devices: GPU " + std::to_string(g) + " does not exist (" +
                                     std::to_string(visible) + " visible)");
    }
    if (std::find(devices.begin(), devices.begin() + i, g) != devices.begin() + i) {
      return Status::InvalidArgument("devices: GPU " + std::to_string(g) + " is listed twice");
    }
  }
  return Status::OK();
}

}  // namespace kernels
}  // namespace quiver
