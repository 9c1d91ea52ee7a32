// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The CUDA entry points of a build without CUDA: no GPU is ever available.

#include "kernels/cuda/device_rows.h"
#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_cuda_ex.h"

namespace quiver::kernels {

bool CudaDeviceAvailable() { return false; }

int CudaDeviceCount() { return 0; }

std::vector<int> DefaultDevices() { return {}; }

Status KMeansCuda(const KMeansOptions&, const float*, size_t, size_t, size_t,
                  KMeansResult*) {
  return Status::NotSupported("quiver was built without CUDA");
}

Status KMeansCudaSharded(const KMeansOptions&, const DeviceShard*, size_t, KMeansInput,
                         size_t, size_t, const KMeansCudaConfig&, KMeansResult*,
                         KMeansCudaTimings*) {
  return Status::NotSupported("quiver was built without CUDA");
}

Status DeviceRows::Create(uint32_t, int, std::unique_ptr<DeviceRows>* rows) {
  rows->reset();
  return Status::NotSupported("quiver was built without CUDA");
}

Status CopyToHost(const float*, size_t, float*) {
  return Status::NotSupported("quiver was built without CUDA");
}

}  // namespace quiver::kernels
