// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cpu/assign.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/cpu/distance.h"
#include "tests/kernels/kernel_test_util.h"

namespace quiver::kernels {
namespace {

using testing::RandomMatrix;
using testing::RefDistance;

struct Shape {
  size_t n, d, k;
};

// Odd shapes: k = 1, k not a multiple of the 16-wide tile, n smaller than a
// block and not a multiple of the 6-point tile, d past the 256 depth chunk.
const Shape kShapes[] = {{1, 1, 1},       {5, 3, 1},       {7, 17, 33},
                         {100, 128, 17},  {1000, 7, 100},  {37, 784, 5},
                         {2000, 32, 256}, {301, 1536, 40}, {13, 2, 16},
                         {611, 300, 31},  {4, 130, 70}};

const Metric kMetrics[] = {Metric::kL2, Metric::kInnerProduct, Metric::kCosine};

const char* Name(Metric m) {
  return m == Metric::kL2 ? "l2" : m == Metric::kInnerProduct ? "ip" : "cosine";
}

// Scale of the rounding error of one distance computed as a dot product.
double Tolerance(const float* x, const float* c, size_t k, size_t d) {
  double xn = 0, cn = 0;
  for (size_t q = 0; q < d; ++q) xn += double(x[q]) * x[q];
  for (size_t j = 0; j < k; ++j) {
    double s = 0;
    for (size_t q = 0; q < d; ++q) s += double(c[j * d + q]) * c[j * d + q];
    cn = std::max(cn, s);
  }
  return 2e-6 * (xn + cn + 1.0) * std::sqrt(double(d));
}

class AssignTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (!GetParam() && !simd::HasAvx2Fma()) GTEST_SKIP() << "no AVX2";
    simd::ForceScalar(GetParam());
  }
  void TearDown() override { simd::ForceScalar(false); }
};

TEST_P(AssignTest, MatchesBruteForce) {
  for (const Shape& s : kShapes) {
    for (Metric metric : kMetrics) {
      auto x = RandomMatrix(s.n, s.d, s.n * 31 + s.d);
      auto c = RandomMatrix(s.k, s.d, s.k * 17 + s.d + 1);
      if (metric == Metric::kCosine) {
        testing::NormalizeRows(&x, s.d);
        testing::NormalizeRows(&c, s.d);
      }
      std::vector<uint32_t> labels(s.n, 12345);
      std::vector<float> dists(s.n, -1);
      // c_norms given for one metric, computed inside for the others.
      std::vector<float> norms(s.k);
      RowNormsSqr(c.data(), s.k, s.d, norms.data());
      AssignNearest(metric, x.data(), s.n, c.data(),
                    metric == Metric::kL2 ? norms.data() : nullptr, s.k, s.d,
                    labels.data(), dists.data());
      std::vector<uint32_t> labels2(s.n);
      AssignNearest(metric, x.data(), s.n, c.data(), nullptr, s.k, s.d,
                    labels2.data(), nullptr);
      EXPECT_EQ(labels, labels2);
      for (size_t i = 0; i < s.n; ++i) {
        const float* xi = &x[i * s.d];
        double best = std::numeric_limits<double>::infinity();
        for (size_t j = 0; j < s.k; ++j) {
          best = std::min(best, RefDistance(metric, xi, &c[j * s.d], s.d));
        }
        ASSERT_LT(labels[i], s.k);
        const double tol = Tolerance(xi, c.data(), s.k, s.d);
        const double got = RefDistance(metric, xi, &c[labels[i] * s.d], s.d);
        EXPECT_LE(got, best + tol)
            << Name(metric) << " n=" << s.n << " d=" << s.d << " k=" << s.k
            << " i=" << i;
        EXPECT_NEAR(dists[i], got, tol) << Name(metric) << " i=" << i;
        if (metric == Metric::kL2) {
          EXPECT_GE(dists[i], 0.0f);
        }
      }
    }
  }
}

TEST_P(AssignTest, TiesGoToTheSmallerIndex) {
  const size_t d = 9, k = 40, n = 50;
  auto c = RandomMatrix(k, d, 3);
  // Centroid 35 duplicates 3 (different 16-wide tiles and lanes), 20
  // duplicates 4 (same lane of another tile), 7 duplicates 6.
  std::copy_n(&c[3 * d], d, &c[35 * d]);
  std::copy_n(&c[4 * d], d, &c[20 * d]);
  std::copy_n(&c[6 * d], d, &c[7 * d]);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    const size_t src = i % 3 == 0 ? 35 : i % 3 == 1 ? 20 : 7;
    std::copy_n(&c[src * d], d, &x[i * d]);
  }
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
    std::vector<uint32_t> labels(n);
    AssignNearest(metric, x.data(), n, c.data(), nullptr, k, d, labels.data(),
                  nullptr);
    for (size_t i = 0; i < n; ++i) {
      if (metric == Metric::kL2) {
        EXPECT_EQ(labels[i], i % 3 == 0 ? 3u : i % 3 == 1 ? 4u : 6u) << i;
      } else {
        // Under IP a larger-norm centroid may win, but never the duplicate
        // with the larger index.
        EXPECT_NE(labels[i], 35u);
        EXPECT_NE(labels[i], 20u);
        EXPECT_NE(labels[i], 7u);
      }
    }
  }
  // All-equal centroids: everything goes to 0.
  std::vector<float> same(5 * d, 1.0f);
  std::vector<uint32_t> labels(n);
  AssignNearest(Metric::kL2, x.data(), n, same.data(), nullptr, 5, d,
                labels.data(), nullptr);
  for (uint32_t l : labels) EXPECT_EQ(l, 0u);
}

TEST_P(AssignTest, NearestCentroidsMatchesSortedBruteForce) {
  const Shape shapes[] = {
      {50, 17, 40}, {7, 128, 300}, {200, 3, 9}, {64, 784, 33}, {3, 33, 50}};
  for (const Shape& s : shapes) {
    for (Metric metric : kMetrics) {
      for (size_t nearest : {size_t{1}, size_t{3}, size_t{8}, s.k}) {
        auto x = RandomMatrix(s.n, s.d, s.n + s.d * 3);
        auto c = RandomMatrix(s.k, s.d, s.k + 5);
        if (metric == Metric::kCosine) {
          testing::NormalizeRows(&x, s.d);
          testing::NormalizeRows(&c, s.d);
        }
        nearest = std::min(nearest, s.k);
        std::vector<uint32_t> labels(s.n * nearest);
        std::vector<float> dists(s.n * nearest);
        NearestCentroids(metric, x.data(), s.n, c.data(), s.k, s.d, nearest,
                         labels.data(), dists.data());
        for (size_t i = 0; i < s.n; ++i) {
          const float* xi = &x[i * s.d];
          std::vector<double> ref(s.k);
          for (size_t j = 0; j < s.k; ++j)
            ref[j] = RefDistance(metric, xi, &c[j * s.d], s.d);
          std::vector<double> sorted = ref;
          std::sort(sorted.begin(), sorted.end());
          const double tol = Tolerance(xi, c.data(), s.k, s.d);
          std::vector<bool> seen(s.k, false);
          for (size_t t = 0; t < nearest; ++t) {
            const uint32_t l = labels[i * nearest + t];
            ASSERT_LT(l, s.k);
            EXPECT_FALSE(seen[l]) << "duplicate label";
            seen[l] = true;
            EXPECT_NEAR(ref[l], sorted[t], tol)
                << Name(metric) << " i=" << i << " t=" << t;
            EXPECT_NEAR(dists[i * nearest + t], ref[l], tol);
            if (t > 0) {
              EXPECT_LE(dists[i * nearest + t - 1], dists[i * nearest + t]);
            }
          }
        }
      }
    }
  }
}

TEST_P(AssignTest, NearestCentroidsPadsWhenNearestExceedsK) {
  const size_t n = 4, d = 5, k = 3, nearest = 5;
  auto x = RandomMatrix(n, d, 1), c = RandomMatrix(k, d, 2);
  std::vector<uint32_t> labels(n * nearest);
  std::vector<float> dists(n * nearest);
  NearestCentroids(Metric::kL2, x.data(), n, c.data(), k, d, nearest,
                   labels.data(), dists.data());
  for (size_t i = 0; i < n; ++i) {
    for (size_t t = 0; t < k; ++t) EXPECT_LT(labels[i * nearest + t], k);
    for (size_t t = k; t < nearest; ++t) {
      EXPECT_EQ(labels[i * nearest + t], UINT32_MAX);
      EXPECT_EQ(dists[i * nearest + t], std::numeric_limits<float>::infinity());
    }
  }
}

TEST(AssignSimdTest, Avx2AndScalarAgree) {
  if (!simd::HasAvx2Fma()) GTEST_SKIP() << "no AVX2";
  const size_t n = 3001, d = 130, k = 77;
  auto x = RandomMatrix(n, d, 11), c = RandomMatrix(k, d, 12);
  std::vector<uint32_t> a(n), b(n);
  std::vector<float> da(n), db(n);
  AssignNearest(Metric::kL2, x.data(), n, c.data(), nullptr, k, d, a.data(),
                da.data());
  simd::ForceScalar(true);
  AssignNearest(Metric::kL2, x.data(), n, c.data(), nullptr, k, d, b.data(),
                db.data());
  simd::ForceScalar(false);
  size_t differ = 0;
  for (size_t i = 0; i < n; ++i) {
    differ += a[i] != b[i];
    EXPECT_NEAR(da[i], db[i], 1e-3 * (1 + db[i]));
  }
  EXPECT_LE(differ, 2u);  // only exact near-ties may differ
}

INSTANTIATE_TEST_SUITE_P(Paths, AssignTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Scalar" : "Avx2";
                         });

}  // namespace
}  // namespace quiver::kernels
