// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Internal: inline AVX2+FMA building blocks shared by the CPU kernels. Every
// function carries QUIVER_AVX2 (a function-level target attribute), so this
// header compiles without -mavx2; callers must themselves be QUIVER_AVX2
// functions reached only when simd::UseAvx2() is true.

#ifndef QUIVER_KERNELS_CPU_SIMD_AVX2_H_
#define QUIVER_KERNELS_CPU_SIMD_AVX2_H_

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define QUIVER_X86 1
#include <immintrin.h>
#define QUIVER_AVX2 __attribute__((target("avx2,fma")))
#else
#define QUIVER_X86 0
#define QUIVER_AVX2
#endif

#if QUIVER_X86
namespace quiver::kernels::avx2 {

// Mask of the first r (0..8) lanes.
QUIVER_AVX2 inline __m256i TailMask(size_t r) {
  alignas(32) static const int32_t kTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                 0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTable + 8 - r));
}

QUIVER_AVX2 inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehl_ps(lo, lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_shuffle_ps(lo, lo, 0x1);
  lo = _mm_add_ss(lo, sh);
  return _mm_cvtss_f32(lo);
}

QUIVER_AVX2 inline float Dot(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= d; i += 8) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  }
  if (i < d) {
    const __m256i m = TailMask(d - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m),
                         _mm256_maskload_ps(b + i, m), s1);
  }
  return HorizontalSum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

QUIVER_AVX2 inline float L2Sqr(const float* a, const float* b, size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    __m256 t2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
    __m256 t3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
    s0 = _mm256_fmadd_ps(t0, t0, s0);
    s1 = _mm256_fmadd_ps(t1, t1, s1);
    s2 = _mm256_fmadd_ps(t2, t2, s2);
    s3 = _mm256_fmadd_ps(t3, t3, s3);
  }
  for (; i + 8 <= d; i += 8) {
    __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(t, t, s0);
  }
  if (i < d) {
    const __m256i m = TailMask(d - i);
    __m256 t = _mm256_sub_ps(_mm256_maskload_ps(a + i, m),
                             _mm256_maskload_ps(b + i, m));
    s1 = _mm256_fmadd_ps(t, t, s1);
  }
  return HorizontalSum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

// sum[q] += x[q] for q < d, the sums in double.
QUIVER_AVX2 inline void AccumulateDouble(double* sum, const float* x, size_t d) {
  size_t q = 0;
  for (; q + 8 <= d; q += 8) {
    const __m256 v = _mm256_loadu_ps(x + q);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    _mm256_storeu_pd(sum + q, _mm256_add_pd(_mm256_loadu_pd(sum + q), lo));
    _mm256_storeu_pd(sum + q + 4, _mm256_add_pd(_mm256_loadu_pd(sum + q + 4), hi));
  }
  for (; q < d; ++q) sum[q] += x[q];
}

}  // namespace quiver::kernels::avx2
#endif  // QUIVER_X86

#endif  // QUIVER_KERNELS_CPU_SIMD_AVX2_H_
