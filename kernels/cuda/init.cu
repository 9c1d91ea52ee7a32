// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Initial centroids from device-resident points: gathering chosen rows, and
// k-means++ (D^2 sampling) run entirely on the GPU, with no host round trip
// per pick: a distance-update kernel, a CUB prefix sum of the weights, and a
// one-thread pick that binary-searches the prefix with a counter-based
// random number. Host data uses the shared host InitCentroids instead (so
// the CPU and GPU paths start from the same centroids).

#include <cub/device/device_scan.cuh>

#include <cfloat>

#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {
namespace {

__global__ void gather_rows_kernel(const void* x, Elem elem, size_t ld,
                                   size_t d, const uint32_t* idx, size_t count,
                                   float* master) {
  const size_t r = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (r >= count) return;
  const size_t src = static_cast<size_t>(idx[r]) * ld;
  for (size_t i = lane; i < d; i += 32) master[r * d + i] = LoadElem(x, elem, src + i);
}

// weights[i] = min(weights[i], ||x_i - c||^2); first == true overwrites.
__global__ void kpp_update_kernel(const void* x, Elem elem, size_t ld,
                                  size_t n, size_t d, const float* c,
                                  double* weights, bool first) {
  const size_t r = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (r >= n) return;
  float s = 0.f;
  for (size_t i = lane; i < d; i += 32) {
    const float t = LoadElem(x, elem, r * ld + i) - c[i];
    s += t * t;
  }
  s = WarpSum(s);
  if (lane == 0) weights[r] = first ? s : fmin(weights[r], static_cast<double>(s));
}

__device__ __forceinline__ uint64_t SplitMix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Picks index i with probability weights[i] / total from the inclusive
// prefix sums, writes it to idx[pick].
__global__ void kpp_pick_kernel(const double* prefix, size_t n, uint64_t seed,
                                int pick, uint32_t* idx) {
  const double total = prefix[n - 1];
  const double u =
      static_cast<double>(SplitMix(seed ^ SplitMix(0x6b70700000000ull + pick)) >> 11) *
      (1.0 / 9007199254740992.0);
  size_t chosen;
  if (!(total > 0.0)) {
    chosen = static_cast<size_t>(u * n);  // all points coincide with centroids
  } else {
    const double target = u * total;
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {  // first i with prefix[i] > target
      const size_t mid = (lo + hi) / 2;
      if (prefix[mid] > target) hi = mid; else lo = mid + 1;
    }
    chosen = lo;
  }
  idx[pick] = static_cast<uint32_t>(chosen < n ? chosen : n - 1);
}

}  // namespace

Status LaunchGatherRows(const void* x, Elem elem, size_t ld, size_t d,
                        const uint32_t* idx, size_t count, float* master,
                        cudaStream_t stream) {
  if (count == 0) return Status::OK();
  gather_rows_kernel<<<static_cast<unsigned>(CeilDiv(count * 32, 256)), 256, 0,
                       stream>>>(x, elem, ld, d, idx, count, master);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

Status KMeansPlusPlusDevice(const void* x, Elem elem, size_t ld, size_t n,
                            size_t d, size_t k, uint64_t seed, float* master,
                            cudaStream_t stream) {
  DeviceBuffer<double> weights, prefix;
  DeviceBuffer<uint32_t> idx;
  QUIVER_RETURN_IF_ERROR(weights.Allocate(n));
  QUIVER_RETURN_IF_ERROR(prefix.Allocate(n));
  QUIVER_RETURN_IF_ERROR(idx.Allocate(k));
  size_t temp_bytes = 0;
  QUIVER_CUDA_RETURN(cub::DeviceScan::InclusiveSum(
      nullptr, temp_bytes, weights.get(), prefix.get(), static_cast<int64_t>(n)));
  DeviceBuffer<uint8_t> temp;
  QUIVER_RETURN_IF_ERROR(temp.Allocate(temp_bytes));

  // First centre uniformly at random.
  const uint32_t first =
      static_cast<uint32_t>((seed * 0x9e3779b97f4a7c15ull >> 11) % n);
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(idx.get(), &first, sizeof(first),
                                     cudaMemcpyHostToDevice, stream));
  QUIVER_RETURN_IF_ERROR(LaunchGatherRows(x, elem, ld, d, idx.get(), 1, master, stream));
  const unsigned blocks = static_cast<unsigned>(CeilDiv(n * 32, 256));
  for (size_t c = 0; c + 1 < k; ++c) {
    kpp_update_kernel<<<blocks, 256, 0, stream>>>(x, elem, ld, n, d,
                                                  master + c * d, weights.get(),
                                                  c == 0);
    QUIVER_CUDA_LAUNCH_CHECK();
    QUIVER_CUDA_RETURN(cub::DeviceScan::InclusiveSum(
        temp.get(), temp_bytes, weights.get(), prefix.get(),
        static_cast<int64_t>(n), stream));
    kpp_pick_kernel<<<1, 1, 0, stream>>>(prefix.get(), n, seed,
                                         static_cast<int>(c + 1), idx.get());
    QUIVER_CUDA_LAUNCH_CHECK();
    QUIVER_RETURN_IF_ERROR(LaunchGatherRows(x, elem, ld, d, idx.get() + c + 1, 1,
                                            master + (c + 1) * d, stream));
  }
  // The scratch is freed on return: finish the work that reads it first.
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(stream));
  return Status::OK();
}

}  // namespace quiver::kernels::cuda
