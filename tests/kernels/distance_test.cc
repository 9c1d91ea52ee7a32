// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cpu/distance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/kernels/kernel_test_util.h"

namespace quiver::kernels {
namespace {

using testing::RandomMatrix;
using testing::RefDistance;

const size_t kDims[] = {1,  2,  3,  7,  8,   9,   15,  16,
                        17, 31, 32, 33, 100, 128, 784, 1536};

// |a - b| within float rounding of a sum of d terms of size `mag`.
void ExpectClose(double got, double want, double mag, size_t d) {
  EXPECT_NEAR(got, want, 1e-6 * mag * std::sqrt(double(d)) + 1e-6)
      << "d = " << d;
}

double SumAbs(const float* a, const float* b, size_t d, bool square_diff) {
  double s = 0;
  for (size_t q = 0; q < d; ++q) {
    s += square_diff ? (double(a[q]) - b[q]) * (double(a[q]) - b[q])
                     : std::fabs(double(a[q]) * b[q]);
  }
  return s;
}

TEST(DistanceTest, ScalarMatchesReference) {
  for (size_t d : kDims) {
    auto a = RandomMatrix(1, d, 1 + d), b = RandomMatrix(1, d, 2 + d);
    ExpectClose(simd::L2SqrScalar(a.data(), b.data(), d),
                RefDistance(Metric::kL2, a.data(), b.data(), d),
                SumAbs(a.data(), b.data(), d, true), d);
    ExpectClose(simd::DotScalar(a.data(), b.data(), d),
                -RefDistance(Metric::kInnerProduct, a.data(), b.data(), d),
                SumAbs(a.data(), b.data(), d, false), d);
    ExpectClose(simd::NormSqrScalar(a.data(), d),
                -RefDistance(Metric::kInnerProduct, a.data(), a.data(), d),
                SumAbs(a.data(), a.data(), d, false), d);
  }
}

TEST(DistanceTest, Avx2MatchesScalar) {
  if (!simd::HasAvx2Fma()) GTEST_SKIP() << "CPU without AVX2+FMA";
  for (size_t d : kDims) {
    // Unaligned starts too: the kernels must not assume alignment.
    for (size_t off : {0, 1, 3}) {
      auto a = RandomMatrix(1, d + off, 10 + d),
           b = RandomMatrix(1, d + off, 20 + d);
      const float* pa = a.data() + off;
      const float* pb = b.data() + off;
      const double l2 = SumAbs(pa, pb, d, true), dot = SumAbs(pa, pb, d, false);
      ExpectClose(simd::L2SqrAvx2(pa, pb, d), simd::L2SqrScalar(pa, pb, d), l2,
                  d);
      ExpectClose(simd::DotAvx2(pa, pb, d), simd::DotScalar(pa, pb, d), dot, d);
      ExpectClose(simd::NormSqrAvx2(pa, d), simd::NormSqrScalar(pa, d),
                  SumAbs(pa, pa, d, false), d);
      ExpectClose(simd::L2SqrAvx2(pa, pb, d),
                  RefDistance(Metric::kL2, pa, pb, d), l2, d);
    }
  }
}

TEST(DistanceTest, DispatchUsesBothPaths) {
  const size_t d = 17;
  auto a = RandomMatrix(1, d, 5), b = RandomMatrix(1, d, 6);
  simd::ForceScalar(true);
  EXPECT_FALSE(simd::UseAvx2());
  EXPECT_EQ(L2Sqr(a.data(), b.data(), d),
            simd::L2SqrScalar(a.data(), b.data(), d));
  EXPECT_EQ(Dot(a.data(), b.data(), d), simd::DotScalar(a.data(), b.data(), d));
  simd::ForceScalar(false);
  EXPECT_EQ(simd::UseAvx2(), simd::HasAvx2Fma());
  ExpectClose(L2Sqr(a.data(), b.data(), d),
              RefDistance(Metric::kL2, a.data(), b.data(), d),
              SumAbs(a.data(), b.data(), d, true), d);
}

TEST(DistanceTest, NormalizeAndRowNorms) {
  for (size_t d : {1, 3, 17, 128}) {
    auto x = RandomMatrix(5, d, 40 + d, 3.0f);
    std::vector<float> norms(5);
    RowNormsSqr(x.data(), 5, d, norms.data());
    for (size_t i = 0; i < 5; ++i) {
      const double want =
          -RefDistance(Metric::kInnerProduct, &x[i * d], &x[i * d], d);
      EXPECT_NEAR(norms[i], want, 1e-5 * want + 1e-6);
      Normalize(&x[i * d], d);
      const double n2 =
          -RefDistance(Metric::kInnerProduct, &x[i * d], &x[i * d], d);
      EXPECT_NEAR(n2, 1.0, 1e-5);
    }
  }
  std::vector<float> zero(9, 0.0f);
  Normalize(zero.data(), zero.size());
  for (float v : zero) EXPECT_EQ(v, 0.0f);
  // Huge components do not overflow.
  std::vector<float> big = {3e30f, 4e30f};
  Normalize(big.data(), 2);
  EXPECT_NEAR(big[0], 0.6f, 1e-6);
  EXPECT_NEAR(big[1], 0.8f, 1e-6);
}

TEST(DistanceTest, DistancesToBlockAllMetrics) {
  for (bool scalar : {false, true}) {
    simd::ForceScalar(scalar);
    for (size_t d : {1, 3, 7, 17, 128, 784}) {
      const size_t m = 13;
      auto q = RandomMatrix(1, d, 70 + d), block = RandomMatrix(m, d, 80 + d);
      for (Metric metric :
           {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
        std::vector<float> qq = q, bb = block;
        if (metric == Metric::kCosine) {
          testing::NormalizeRows(&qq, d);
          testing::NormalizeRows(&bb, d);
        }
        std::vector<float> out(m);
        DistancesToBlock(metric, qq.data(), bb.data(), m, d, out.data());
        for (size_t j = 0; j < m; ++j) {
          const double want = RefDistance(metric, qq.data(), &bb[j * d], d);
          const double mag =
              SumAbs(qq.data(), &bb[j * d], d, metric == Metric::kL2);
          ExpectClose(out[j], want, mag, d);
        }
      }
    }
  }
  simd::ForceScalar(false);
}

}  // namespace
}  // namespace quiver::kernels
