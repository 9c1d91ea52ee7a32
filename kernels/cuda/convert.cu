// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Conversion of caller points into the layout the assignment reads: element
// type of the arithmetic, rows padded to 16 bytes with zeros, optionally
// normalised (cosine), with squared norms and a finiteness check on the way.
// One warp per row; memory-bound.

#include <cmath>

#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void convert_rows_kernel(const void* src, Elem src_elem,
                                    size_t src_ld, size_t rows, size_t d,
                                    void* dst, Elem dst_elem, size_t dst_ld,
                                    bool normalize, float* norms,
                                    int* nonfinite) {
  const size_t row = (static_cast<size_t>(blockIdx.x) * kThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const size_t base = row * src_ld;
  float scale = 1.f;
  if (normalize) {
    float ss = 0.f;
    for (size_t j = lane; j < d; j += 32) {
      const float v = LoadElem(src, src_elem, base + j);
      ss += v * v;
    }
    ss = WarpSum(ss);
    if (ss > 0.f) scale = 1.f / sqrtf(ss);
  }
  float ss = 0.f;
  bool bad = false;
  for (size_t j = lane; j < d; j += 32) {
    const float raw = LoadElem(src, src_elem, base + j);
    bad |= !isfinite(raw);
    const float v = RoundElem(raw * scale, dst_elem);
    ss += v * v;
    if (dst != nullptr) StoreElem(dst, dst_elem, row * dst_ld + j, v);
  }
  if (dst != nullptr) {
    for (size_t j = d + lane; j < dst_ld; j += 32) {
      StoreElem(dst, dst_elem, row * dst_ld + j, 0.f);
    }
  }
  ss = WarpSum(ss);
  if (lane == 0 && norms != nullptr) norms[row] = ss;
  if (bad && nonfinite != nullptr) *nonfinite = 1;
}

}  // namespace

Status LaunchConvertRows(const void* src, Elem src_elem, size_t src_ld,
                         size_t rows, size_t d, void* dst, Elem dst_elem,
                         size_t dst_ld, bool normalize, float* norms,
                         int* nonfinite, cudaStream_t stream) {
  if (rows == 0) return Status::OK();
  const size_t blocks = CeilDiv(rows * 32, kThreads);
  convert_rows_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      src, src_elem, src_ld, rows, d, dst, dst_elem, dst_ld, normalize, norms,
      nonfinite);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

}  // namespace quiver::kernels::cuda
