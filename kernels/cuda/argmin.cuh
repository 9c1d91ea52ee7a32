// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Pieces of the fused assignment that both kernels (assign.cu, mma.sync;
// assign_wgmma.cu, wgmma) share: the order of (score, index) pairs, the fold
// of a pair of columns into a running argmin, the reduction over the 4 lanes
// that hold one row of a tensor-core tile, and a winning score's distance.

#ifndef QUIVER_KERNELS_CUDA_ARGMIN_CUH_
#define QUIVER_KERNELS_CUDA_ARGMIN_CUH_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {

// (v, i) comes before (bv, bi): smaller score, ties to the smaller index.
__device__ __forceinline__ bool Better(float v, uint32_t i, float bv, uint32_t bi) {
  return v < bv || (v == bv && i < bi);
}

// Folds the scores of columns j and j + 1 (bias + alpha * dot, from a pair
// of accumulators) into a row's running (min, argmin). Columns come in
// increasing order and compare with a strict <, so ties keep the smaller
// index.
__device__ __forceinline__ void FoldPair(float dot0, float dot1, float2 bias, float alpha,
                                         uint32_t j, float& best_v, uint32_t& best_i) {
  const float v0 = fmaf(alpha, dot0, bias.x);
  const float v1 = fmaf(alpha, dot1, bias.y);
  if (v0 < best_v) {
    best_v = v0;
    best_i = j;
  }
  if (v1 < best_v) {
    best_v = v1;
    best_i = j + 1;
  }
}

// The lanes 4q .. 4q + 3 of a warp hold one row's running (min, argmin) over
// different columns (the mma / wgmma accumulator layout); afterwards each of
// them holds the row's.
__device__ __forceinline__ void QuadArgmin(float& v, uint32_t& i) {
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, off);
    const uint32_t oi = __shfl_xor_sync(0xffffffffu, i, off);
    if (Better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

// Distance of a point to its winning centroid from the winning score
// (bias + alpha * dot): L2 ||x||^2 + score (clamped at 0), inner product the
// score (-<x, c>), cosine 1 + score (1 - cos). xnorm (||x||^2) is read for L2
// only.
__device__ __forceinline__ float ScoreDistance(int metric, float xnorm, float v) {
  if (metric == 0) return fmaxf(xnorm + v, 0.f);
  if (metric == 1) return v;
  return 1.f + v;
}
__device__ __forceinline__ float ScoreDistance(const AssignArgs& args, size_t g, float v) {
  return ScoreDistance(args.metric, args.metric == 0 ? args.xnorm[g] : 0.f, v);
}

}  // namespace quiver::kernels::cuda

#endif  // QUIVER_KERNELS_CUDA_ARGMIN_CUH_
