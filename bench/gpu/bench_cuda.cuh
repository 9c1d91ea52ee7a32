// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// What the CUDA benchmark programs share: a fatal check of CUDA calls and
// the hash their device-side data generators draw from.

#ifndef QUIVER_BENCH_GPU_BENCH_CUDA_CUH_
#define QUIVER_BENCH_GPU_BENCH_CUDA_CUH_

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

// Evaluates a CUDA runtime call; prints the error and exits on failure.
#define CHECK_CUDA(call)                                                   \
  do {                                                                     \
    cudaError_t e_ = (call);                                               \
    if (e_ != cudaSuccess) {                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call,    \
                   cudaGetErrorString(e_));                                \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)

namespace quiver::bench {

// SplitMix64's finaliser: a well-mixed 64-bit hash of z.
__device__ __forceinline__ uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace quiver::bench

#endif  // QUIVER_BENCH_GPU_BENCH_CUDA_CUH_
