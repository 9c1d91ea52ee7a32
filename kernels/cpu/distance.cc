// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Distance primitives: portable scalar code plus AVX2+FMA versions compiled
// with a function-level target attribute (the build never uses
// -march=native) and chosen at run time with __builtin_cpu_supports.

#include "kernels/cpu/distance.h"

#include <atomic>
#include <cmath>

#include "kernels/cpu/simd_avx2.h"

namespace quiver::kernels {
namespace simd {
namespace {

std::atomic<bool> g_force_scalar{false};

bool DetectAvx2Fma() {
#if QUIVER_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

}  // namespace

bool HasAvx2Fma() {
  static const bool has = DetectAvx2Fma();
  return has;
}

bool UseAvx2() {
  return HasAvx2Fma() && !g_force_scalar.load(std::memory_order_relaxed);
}

void ForceScalar(bool force) {
  g_force_scalar.store(force, std::memory_order_relaxed);
}

// Four independent accumulators so that the scalar loop is not one long
// dependency chain (and the compiler may vectorise it with SSE2).
float L2SqrScalar(const float* a, const float* b, size_t d) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= d; i += 4) {
    const float t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1];
    const float t2 = a[i + 2] - b[i + 2], t3 = a[i + 3] - b[i + 3];
    s0 += t0 * t0;
    s1 += t1 * t1;
    s2 += t2 * t2;
    s3 += t3 * t3;
  }
  for (; i < d; ++i) {
    const float t = a[i] - b[i];
    s0 += t * t;
  }
  return (s0 + s1) + (s2 + s3);
}

float DotScalar(const float* a, const float* b, size_t d) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= d; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < d; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

float NormSqrScalar(const float* a, size_t d) { return DotScalar(a, a, d); }

#if QUIVER_X86

QUIVER_AVX2 float L2SqrAvx2(const float* a, const float* b, size_t d) {
  return avx2::L2Sqr(a, b, d);
}
QUIVER_AVX2 float DotAvx2(const float* a, const float* b, size_t d) {
  return avx2::Dot(a, b, d);
}
QUIVER_AVX2 float NormSqrAvx2(const float* a, size_t d) {
  return avx2::Dot(a, a, d);
}

#else

float L2SqrAvx2(const float* a, const float* b, size_t d) {
  return L2SqrScalar(a, b, d);
}
float DotAvx2(const float* a, const float* b, size_t d) {
  return DotScalar(a, b, d);
}
float NormSqrAvx2(const float* a, size_t d) { return NormSqrScalar(a, d); }

#endif

}  // namespace simd

float L2Sqr(const float* a, const float* b, size_t d) {
  return simd::UseAvx2() ? simd::L2SqrAvx2(a, b, d)
                         : simd::L2SqrScalar(a, b, d);
}

float Dot(const float* a, const float* b, size_t d) {
  return simd::UseAvx2() ? simd::DotAvx2(a, b, d) : simd::DotScalar(a, b, d);
}

float NormSqr(const float* a, size_t d) {
  return simd::UseAvx2() ? simd::NormSqrAvx2(a, d) : simd::NormSqrScalar(a, d);
}

void Normalize(float* a, size_t d) {
  // The norm in double: a vector of huge or tiny components still scales to
  // unit length without overflow or underflow of the sum of squares.
  double s = 0.0;
  for (size_t i = 0; i < d; ++i) s += static_cast<double>(a[i]) * a[i];
  if (s == 0.0) return;
  const double inv = 1.0 / std::sqrt(s);
  for (size_t i = 0; i < d; ++i) a[i] = static_cast<float>(a[i] * inv);
}

namespace {

#if QUIVER_X86
QUIVER_AVX2 void RowNormsSqrAvx2(const float* x, size_t n, size_t d,
                                 float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = avx2::Dot(x + i * d, x + i * d, d);
}

QUIVER_AVX2 void DistancesToBlockAvx2(Metric metric, const float* q,
                                      const float* block, size_t m, size_t d,
                                      float* out) {
  switch (metric) {
    case Metric::kL2:
      for (size_t j = 0; j < m; ++j) out[j] = avx2::L2Sqr(q, block + j * d, d);
      break;
    case Metric::kInnerProduct:
      for (size_t j = 0; j < m; ++j) out[j] = -avx2::Dot(q, block + j * d, d);
      break;
    case Metric::kCosine:
      for (size_t j = 0; j < m; ++j) {
        out[j] = 1.0f - avx2::Dot(q, block + j * d, d);
      }
      break;
  }
}
#endif

}  // namespace

void RowNormsSqr(const float* x, size_t n, size_t d, float* out) {
#if QUIVER_X86
  if (simd::UseAvx2()) return RowNormsSqrAvx2(x, n, d, out);
#endif
  for (size_t i = 0; i < n; ++i) out[i] = simd::NormSqrScalar(x + i * d, d);
}

void DistancesToBlock(Metric metric, const float* q, const float* block,
                      size_t m, size_t d, float* out) {
#if QUIVER_X86
  if (simd::UseAvx2()) return DistancesToBlockAvx2(metric, q, block, m, d, out);
#endif
  switch (metric) {
    case Metric::kL2:
      for (size_t j = 0; j < m; ++j) {
        out[j] = simd::L2SqrScalar(q, block + j * d, d);
      }
      break;
    case Metric::kInnerProduct:
      for (size_t j = 0; j < m; ++j) {
        out[j] = -simd::DotScalar(q, block + j * d, d);
      }
      break;
    case Metric::kCosine:
      for (size_t j = 0; j < m; ++j) {
        out[j] = 1.0f - simd::DotScalar(q, block + j * d, d);
      }
      break;
  }
}

}  // namespace quiver::kernels
