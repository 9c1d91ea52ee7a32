// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Device helpers to read and write one component of a points / centroid
// buffer whose element type is chosen at run time (Elem).

#ifndef QUIVER_KERNELS_CUDA_ELEM_CUH_
#define QUIVER_KERNELS_CUDA_ELEM_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {

__device__ __forceinline__ float LoadElem(const void* p, Elem e, size_t i) {
  switch (e) {
    case Elem::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case Elem::kBf16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// Rounds v as storing it would (so that norms match what is stored).
__device__ __forceinline__ float RoundElem(float v, Elem e) {
  switch (e) {
    case Elem::kF16:
      return __half2float(__float2half_rn(v));
    case Elem::kBf16:
      return __bfloat162float(__float2bfloat16_rn(v));
    default:
      return v;
  }
}

__device__ __forceinline__ void StoreElem(void* p, Elem e, size_t i, float v) {
  switch (e) {
    case Elem::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    case Elem::kBf16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

}  // namespace quiver::kernels::cuda

#endif  // QUIVER_KERNELS_CUDA_ELEM_CUH_
