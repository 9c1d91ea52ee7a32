// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Distance primitives on the CPU: SIMD (AVX2+FMA when the CPU has it, chosen
// at run time; portable scalar code otherwise). Pure functions over
// row-major float buffers; no allocation, no threads, no knowledge of the DB.

#ifndef QUIVER_KERNELS_CPU_DISTANCE_H_
#define QUIVER_KERNELS_CPU_DISTANCE_H_

#include <cstddef>
#include <cstdint>

#include "quiver/types.h"

namespace quiver::kernels {

// ||a - b||^2 over d components.
float L2Sqr(const float* a, const float* b, size_t d);
// <a, b> over d components.
float Dot(const float* a, const float* b, size_t d);
// ||a||^2 over d components.
float NormSqr(const float* a, size_t d);

// Scales a to unit length in place; leaves an all-zero vector unchanged.
void Normalize(float* a, size_t d);

// Writes ||row||^2 of each of the n rows of x (n x d) to out[n].
void RowNormsSqr(const float* x, size_t n, size_t d, float* out);

// Distance (smaller is closer, see quiver::Metric) from query q to each of
// the m rows of `block` (m x d, row-major), written to out[m]. For kCosine
// both q and the rows must already be normalised (then it is 1 - <q, row>).
void DistancesToBlock(Metric metric, const float* q, const float* block,
                      size_t m, size_t d, float* out);

// Run-time SIMD dispatch, exposed for tests and benchmarks.
namespace simd {

// True when the CPU has AVX2 and FMA (checked once, at first use).
bool HasAvx2Fma();

// True when the AVX2+FMA code is used: HasAvx2Fma() and not forced off.
bool UseAvx2();

// Forces the portable scalar code (true) or restores the run-time choice
// (false). For tests and benchmarks only; not thread-safe against concurrent
// kernel calls.
void ForceScalar(bool force);

// The portable scalar implementations.
float L2SqrScalar(const float* a, const float* b, size_t d);
float DotScalar(const float* a, const float* b, size_t d);
float NormSqrScalar(const float* a, size_t d);

// The AVX2+FMA implementations. REQUIRES: HasAvx2Fma().
float L2SqrAvx2(const float* a, const float* b, size_t d);
float DotAvx2(const float* a, const float* b, size_t d);
float NormSqrAvx2(const float* a, size_t d);

}  // namespace simd

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_DISTANCE_H_
