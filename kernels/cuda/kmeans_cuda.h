// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The CUDA k-means behind quiver::KMeans(device = kGpu | kAuto). A plain
// C++ header: no CUDA syntax, so the dispatcher and the DB include it
// whether or not the library was built with CUDA (without CUDA the
// functions report that no GPU is available).

#ifndef QUIVER_KERNELS_CUDA_KMEANS_CUDA_H_
#define QUIVER_KERNELS_CUDA_KMEANS_CUDA_H_

#include <cstddef>
#include <vector>

#include "quiver/kmeans.h"

namespace quiver::kernels {

// True when the library was built with CUDA and a CUDA device is visible.
bool CudaDeviceAvailable();

// CUDA devices visible (0 without CUDA or a driver).
int CudaDeviceCount();

// What an empty device list means (KMeansOptions::devices,
// Options::devices): every visible GPU, starting at the current one, when
// NCCL can be loaded to join them; else the current GPU alone. Empty
// without a GPU.
std::vector<int> DefaultDevices();

// A list of CUDA device ids is usable: every id >= 0 and listed once, and
// below `visible` where visible > 0 (0: no GPU to check against).
// InvalidArgument naming the first bad id otherwise.
Status CheckDeviceList(const std::vector<int>& devices, int visible);

// REQUIRES: arguments validated by quiver::KMeans. Initial centroids come
// from InitCentroids() (kernels/cpu/kmeans_cpu.h) unless computed on the GPU.
Status KMeansCuda(const KMeansOptions& options, const float* data, size_t n,
                  size_t d, size_t k, KMeansResult* result);

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CUDA_KMEANS_CUDA_H_
