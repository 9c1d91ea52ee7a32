// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cpu/kmeans_cpu.h"

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "kernels/cpu/distance.h"
#include "kernels/cuda/kmeans_cuda.h"
#include "quiver/kmeans.h"
#include "tests/kernels/kernel_test_util.h"

namespace quiver::kernels {
namespace {

using testing::Blobs;
using testing::RandomMatrix;
using testing::RefDistance;

KMeansOptions CpuOptions(int iterations, Metric metric = Metric::kL2) {
  KMeansOptions opt;
  opt.max_iterations = iterations;
  opt.tolerance = 0.0;
  opt.metric = metric;
  opt.device = Device::kCpu;
  return opt;
}

double Norm(const float* v, size_t d) {
  return std::sqrt(-RefDistance(Metric::kInnerProduct, v, v, d));
}

// Straightforward Lloyd in double: the reference the fast path must match.
// Same re-seeding rule as KMeansCpu.
struct RefResult {
  std::vector<float> centroids;
  std::vector<uint32_t> assignments;
  std::vector<double> objective;
};

RefResult RefLloyd(Metric metric, const float* x, size_t n, size_t d, size_t k,
                   const float* init, int iterations) {
  RefResult r;
  r.centroids.assign(init, init + k * d);
  std::vector<uint32_t> labels(n);
  std::vector<double> dist(n);
  auto assign = [&]() {
    double obj = 0;
    for (size_t i = 0; i < n; ++i) {
      double best = std::numeric_limits<double>::infinity();
      uint32_t bj = 0;
      for (size_t j = 0; j < k; ++j) {
        const double v = RefDistance(metric, x + i * d, &r.centroids[j * d], d);
        if (v < best) {
          best = v;
          bj = uint32_t(j);
        }
      }
      labels[i] = bj;
      dist[i] = best;
      obj += best;
    }
    return obj;
  };
  for (int it = 0; it < iterations; ++it) {
    r.objective.push_back(assign());
    std::vector<double> sum(k * d, 0.0);
    std::vector<size_t> count(k, 0);
    for (size_t i = 0; i < n; ++i) {
      ++count[labels[i]];
      for (size_t q = 0; q < d; ++q) sum[labels[i] * d + q] += x[i * d + q];
    }
    for (size_t j = 0; j < k; ++j) {
      if (count[j] == 0) continue;
      double s2 = 0;
      for (size_t q = 0; q < d; ++q) s2 += sum[j * d + q] * sum[j * d + q];
      for (size_t q = 0; q < d; ++q) {
        r.centroids[j * d + q] = metric == Metric::kL2
                                     ? float(sum[j * d + q] / double(count[j]))
                                     : float(sum[j * d + q] / std::sqrt(s2));
      }
    }
  }
  assign();
  r.assignments = labels;
  return r;
}

TEST(KMeansCpuTest, SiftObjectiveNonIncreasing) {
  std::vector<float> data;
  size_t n = 0, d = 0;
  const std::string path = testing::DataDir() + "/sift5k/sift5k_base.fvecs";
  if (!testing::ReadFvecs(path, &data, &n, &d)) GTEST_SKIP() << "no " << path;
  ASSERT_EQ(d, 128u);
  const size_t k = 64;
  KMeansOptions opt = CpuOptions(20);
  KMeansResult res;
  ASSERT_TRUE(quiver::KMeans(opt, data.data(), n, d, k, &res).ok());
  ASSERT_EQ(res.objective.size(), 20u);
  EXPECT_EQ(res.iterations, 20);
  EXPECT_FALSE(res.converged);
  EXPECT_EQ(res.device, Device::kCpu);
  ASSERT_EQ(res.centroids.size(), k * d);
  ASSERT_EQ(res.assignments.size(), n);
  for (size_t t = 1; t < res.objective.size(); ++t) {
    EXPECT_LE(res.objective[t], res.objective[t - 1] * (1 + 1e-6))
        << "iteration " << t;
  }
  EXPECT_LT(res.objective.back(), 0.8 * res.objective.front());
  // The returned assignments are the nearest of the returned centroids, and
  // their objective is no worse than the last iteration's.
  double final_obj = 0;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_LT(res.assignments[i], k);
    final_obj += RefDistance(Metric::kL2, &data[i * d],
                             &res.centroids[res.assignments[i] * d], d);
  }
  EXPECT_LE(final_obj, res.objective.back() * (1 + 1e-5));
}

// The bounded (Yinyang / Hamerly) assignment skips points whose centroid
// provably does not change: it must give plain Lloyd's result.
TEST(KMeansCpuTest, BoundsGiveTheSameResultAsPlainLloyd) {
  struct Case {
    size_t n, d, k;
    bool sift;
  };
  for (const Case& cs :
       {Case{5000, 128, 200, true}, Case{3000, 20, 1100, false},
        Case{2000, 7, 33, false}}) {
    std::vector<float> x;
    size_t n = cs.n, d = cs.d;
    if (cs.sift) {
      const std::string path = testing::DataDir() + "/sift5k/sift5k_base.fvecs";
      if (!testing::ReadFvecs(path, &x, &n, &d)) continue;
    } else {
      x = Blobs(n, d, 40, 21, 2.0f);
    }
    KMeansOptions opt = CpuOptions(12);
    KMeansResult bounded, plain;
    ForceBoundsForTesting(true);
    Status sb = KMeansCpu(opt, x.data(), n, d, cs.k, &bounded);
    ForceBoundsForTesting(false);
    ASSERT_TRUE(sb.ok());
    DisableBoundsForTesting(true);
    Status s = KMeansCpu(opt, x.data(), n, d, cs.k, &plain);
    DisableBoundsForTesting(false);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(bounded.assignments, plain.assignments) << "k = " << cs.k;
    EXPECT_EQ(bounded.centroids, plain.centroids) << "k = " << cs.k;
    ASSERT_EQ(bounded.objective.size(), plain.objective.size());
    for (size_t t = 0; t < plain.objective.size(); ++t) {
      EXPECT_NEAR(bounded.objective[t], plain.objective[t],
                  1e-5 * plain.objective[t]);
    }
  }
}

TEST(KMeansCpuTest, BoundsOnTheScalarPath) {
  const size_t n = 1500, d = 9, k = 70;
  std::vector<float> x = Blobs(n, d, 25, 5, 1.5f);
  KMeansOptions opt = CpuOptions(8);
  KMeansResult bounded, plain;
  simd::ForceScalar(true);
  ForceBoundsForTesting(true);
  Status sb = KMeansCpu(opt, x.data(), n, d, k, &bounded);
  ForceBoundsForTesting(false);
  ASSERT_TRUE(sb.ok());
  DisableBoundsForTesting(true);
  Status s = KMeansCpu(opt, x.data(), n, d, k, &plain);
  DisableBoundsForTesting(false);
  simd::ForceScalar(false);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(bounded.assignments, plain.assignments);
  EXPECT_EQ(bounded.centroids, plain.centroids);
}

TEST(KMeansCpuTest, MatchesBruteForceLloyd) {
  const size_t n = 3000, d = 24, k = 12;
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
    std::vector<float> x = Blobs(n, d, 10, 99, 1.0f);
    KMeansOptions opt = CpuOptions(8, metric);
    opt.init = KMeansInit::kRandom;
    std::vector<float> init(k * d);
    ASSERT_TRUE(InitCentroids(opt, x.data(), n, d, k, init.data()).ok());
    opt.init = KMeansInit::kGiven;
    opt.initial_centroids = init.data();
    KMeansResult res;
    ASSERT_TRUE(KMeansCpu(opt, x.data(), n, d, k, &res).ok());
    RefResult ref = RefLloyd(metric, x.data(), n, d, k, init.data(), 8);
    EXPECT_EQ(res.assignments, ref.assignments);
    for (size_t i = 0; i < k * d; ++i) {
      ASSERT_NEAR(res.centroids[i], ref.centroids[i], 1e-4)
          << "component " << i;
    }
    ASSERT_EQ(res.objective.size(), ref.objective.size());
    for (size_t t = 0; t < ref.objective.size(); ++t) {
      EXPECT_NEAR(res.objective[t], ref.objective[t],
                  1e-5 * std::abs(ref.objective[t]));
    }
  }
}

TEST(KMeansCpuTest, DeterministicForASeed) {
  const size_t n = 4000, d = 33, k = 50;
  std::vector<float> x = RandomMatrix(n, d, 5);
  for (KMeansInit init : {KMeansInit::kKMeansPlusPlus, KMeansInit::kRandom}) {
    KMeansOptions opt = CpuOptions(6);
    opt.init = init;
    opt.seed = 77;
    KMeansResult a, b, c;
    ASSERT_TRUE(KMeansCpu(opt, x.data(), n, d, k, &a).ok());
    ASSERT_TRUE(KMeansCpu(opt, x.data(), n, d, k, &b).ok());
    // One thread: another schedule, the same result.
    tbb::task_arena one(1);
    one.execute(
        [&] { ASSERT_TRUE(KMeansCpu(opt, x.data(), n, d, k, &c).ok()); });
    EXPECT_EQ(a.centroids, b.centroids);
    EXPECT_EQ(a.assignments, b.assignments);
    EXPECT_EQ(a.objective, b.objective);
    EXPECT_EQ(a.centroids, c.centroids);
    EXPECT_EQ(a.assignments, c.assignments);
    EXPECT_EQ(a.objective, c.objective);
    opt.seed = 78;
    KMeansResult other;
    ASSERT_TRUE(KMeansCpu(opt, x.data(), n, d, k, &other).ok());
    EXPECT_NE(a.centroids, other.centroids);
  }
}

TEST(KMeansCpuTest, InitModes) {
  const size_t n = 500, d = 7, k = 40;
  std::vector<float> x = RandomMatrix(n, d, 8);
  auto row_index = [&](const float* c) -> int {
    for (size_t i = 0; i < n; ++i) {
      if (std::equal(c, c + d, &x[i * d])) return int(i);
    }
    return -1;
  };
  for (KMeansInit init : {KMeansInit::kKMeansPlusPlus, KMeansInit::kRandom}) {
    KMeansOptions opt = CpuOptions(1);
    opt.init = init;
    std::vector<float> c1(k * d), c2(k * d);
    ASSERT_TRUE(InitCentroids(opt, x.data(), n, d, k, c1.data()).ok());
    ASSERT_TRUE(InitCentroids(opt, x.data(), n, d, k, c2.data()).ok());
    EXPECT_EQ(c1, c2);
    std::set<int> rows;
    for (size_t j = 0; j < k; ++j) {
      const int r = row_index(&c1[j * d]);
      EXPECT_GE(r, 0) << "centroid " << j << " is not a data point";
      rows.insert(r);
    }
    EXPECT_EQ(rows.size(), k) << "initial centroids are not distinct points";
    KMeansResult res;
    ASSERT_TRUE(KMeansCpu(opt, x.data(), n, d, k, &res).ok());
    EXPECT_EQ(std::vector<float>(res.centroids.size(), 0) == res.centroids,
              false);
  }
  // k == n: k-means++ picks every point.
  {
    KMeansOptions opt = CpuOptions(1);
    std::vector<float> c(n * d);
    ASSERT_TRUE(InitCentroids(opt, x.data(), n, d, n, c.data()).ok());
    std::set<int> rows;
    for (size_t j = 0; j < n; ++j) rows.insert(row_index(&c[j * d]));
    EXPECT_EQ(rows.size(), n);
    EXPECT_EQ(rows.count(-1), 0u);
  }
  // kGiven starts exactly there: zero iterations of change with one point
  // per cluster.
  {
    KMeansOptions opt = CpuOptions(3);
    std::vector<float> given(x.begin(), x.begin() + k * d);
    opt.init = KMeansInit::kGiven;
    opt.initial_centroids = given.data();
    std::vector<float> c(k * d);
    ASSERT_TRUE(InitCentroids(opt, x.data(), n, d, k, c.data()).ok());
    EXPECT_EQ(c, given);
    KMeansResult res;
    ASSERT_TRUE(quiver::KMeans(opt, x.data(), n, d, k, &res).ok());
    RefResult ref = RefLloyd(Metric::kL2, x.data(), n, d, k, given.data(), 3);
    EXPECT_EQ(res.assignments, ref.assignments);
  }
}

TEST(KMeansCpuTest, SphericalCentroidsHaveUnitNorm) {
  const size_t n = 2000, d = 17, k = 20;
  std::vector<float> x = RandomMatrix(n, d, 9, 3.0f);
  for (Metric metric : {Metric::kInnerProduct, Metric::kCosine}) {
    for (KMeansInit init : {KMeansInit::kKMeansPlusPlus, KMeansInit::kRandom}) {
      KMeansOptions opt = CpuOptions(5, metric);
      opt.init = init;
      KMeansResult res;
      ASSERT_TRUE(quiver::KMeans(opt, x.data(), n, d, k, &res).ok());
      for (size_t j = 0; j < k; ++j) {
        EXPECT_NEAR(Norm(&res.centroids[j * d], d), 1.0, 1e-5)
            << "centroid " << j;
      }
      // Spherical objective: the sum of -<x, c> (ip) or 1 - cos (cosine)
      // does not increase.
      for (size_t t = 1; t < res.objective.size(); ++t) {
        EXPECT_LE(res.objective[t],
                  res.objective[t - 1] + 1e-6 * std::abs(res.objective[t - 1]));
      }
      std::vector<uint32_t> predicted(n);
      ASSERT_TRUE(KMeansPredict(metric, res.centroids.data(), k, x.data(), n, d,
                                predicted.data(), nullptr)
                      .ok());
      EXPECT_EQ(predicted, res.assignments);
    }
  }
}

TEST(KMeansCpuTest, EmptyClustersAreReseeded) {
  const size_t n = 1000, d = 8, k = 10;
  std::vector<float> x = Blobs(n, d, 10, 3);
  // Nine of ten initial centroids far from every point: all empty at first.
  std::vector<float> init(k * d, 1e4f);
  std::copy_n(x.begin(), d, init.begin());
  KMeansOptions opt = CpuOptions(10);
  opt.init = KMeansInit::kGiven;
  opt.initial_centroids = init.data();
  std::vector<int> empties;
  opt.progress = [&](const KMeansIterationInfo& info) {
    empties.push_back(info.empty_clusters);
    return true;
  };
  KMeansResult res;
  ASSERT_TRUE(quiver::KMeans(opt, x.data(), n, d, k, &res).ok());
  ASSERT_EQ(empties.size(), 10u);
  EXPECT_EQ(empties[0], 9);
  for (size_t t = 1; t < res.objective.size(); ++t) {
    EXPECT_LE(res.objective[t], res.objective[t - 1] * (1 + 1e-6));
  }
  std::vector<size_t> count(k, 0);
  for (uint32_t l : res.assignments) ++count[l];
  for (size_t j = 0; j < k; ++j) EXPECT_GT(count[j], 0u) << "cluster " << j;
  for (float v : res.centroids) EXPECT_LT(std::abs(v), 1e3f);
}

TEST(KMeansCpuTest, DuplicatePointsAndKEqualsN) {
  // 6 distinct points, 10 copies each, k = 10: duplicate centroids keep
  // emptying and being re-seeded; the run stays valid and reaches 0.
  const size_t d = 5, distinct = 6, copies = 10, n = distinct * copies, k = 10;
  std::vector<float> base = RandomMatrix(distinct, d, 4);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i)
    std::copy_n(&base[(i % distinct) * d], d, &x[i * d]);
  for (KMeansInit init : {KMeansInit::kKMeansPlusPlus, KMeansInit::kRandom}) {
    KMeansOptions opt = CpuOptions(5);
    opt.init = init;
    KMeansResult res;
    ASSERT_TRUE(quiver::KMeans(opt, x.data(), n, d, k, &res).ok());
    for (uint32_t l : res.assignments) EXPECT_LT(l, k);
    for (float v : res.centroids) EXPECT_TRUE(std::isfinite(v));
    EXPECT_NEAR(res.objective.back(), 0.0, 1e-4);
  }
  // k == n distinct points: one point per cluster, objective 0.
  const size_t m = 64;
  std::vector<float> y = RandomMatrix(m, d, 6);
  KMeansOptions opt = CpuOptions(3);
  KMeansResult res;
  ASSERT_TRUE(quiver::KMeans(opt, y.data(), m, d, m, &res).ok());
  std::set<uint32_t> used(res.assignments.begin(), res.assignments.end());
  EXPECT_EQ(used.size(), m);
  EXPECT_NEAR(res.objective.back(), 0.0, 1e-4);
}

TEST(KMeansCpuTest, ToleranceAndProgress) {
  const size_t n = 2000, d = 8, k = 6;
  std::vector<float> x = Blobs(n, d, 6, 12);
  KMeansOptions opt = CpuOptions(50);
  opt.tolerance = 1e-3;
  int calls = 0;
  opt.progress = [&](const KMeansIterationInfo& info) {
    EXPECT_EQ(info.iteration, calls);
    ++calls;
    return true;
  };
  KMeansResult res;
  ASSERT_TRUE(quiver::KMeans(opt, x.data(), n, d, k, &res).ok());
  EXPECT_TRUE(res.converged);
  EXPECT_LT(res.iterations, 50);
  EXPECT_EQ(calls, res.iterations);
  EXPECT_EQ(res.objective.size(), size_t(res.iterations));

  // Returning false aborts.
  calls = 0;
  opt.tolerance = 0;
  opt.progress = [&](const KMeansIterationInfo&) { return ++calls < 3; };
  Status s = quiver::KMeans(opt, x.data(), n, d, k, &res);
  EXPECT_TRUE(s.IsAborted()) << s.ToString();
  EXPECT_EQ(calls, 3);
}

TEST(KMeansCpuTest, BadInputReturnsStatus) {
  const size_t n = 100, d = 4;
  std::vector<float> x = RandomMatrix(n, d, 1);
  KMeansOptions opt = CpuOptions(3);
  KMeansResult res;
  EXPECT_TRUE(quiver::KMeans(opt, x.data(), n, d, 0, &res).IsInvalidArgument());
  EXPECT_TRUE(
      quiver::KMeans(opt, x.data(), n, d, n + 1, &res).IsInvalidArgument());
  EXPECT_TRUE(quiver::KMeans(opt, x.data(), n, 0, 3, &res).IsInvalidArgument());
  EXPECT_TRUE(quiver::KMeans(opt, nullptr, n, d, 3, &res).IsInvalidArgument());
  EXPECT_TRUE(
      quiver::KMeans(opt, x.data(), n, d, 3, nullptr).IsInvalidArgument());
  EXPECT_TRUE(quiver::KMeans(opt, x.data(), 0, d, 1, &res).IsInvalidArgument());
  std::vector<float> bad = x;
  bad[37] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(
      quiver::KMeans(opt, bad.data(), n, d, 3, &res).IsInvalidArgument());
  bad[37] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(
      quiver::KMeans(opt, bad.data(), n, d, 3, &res).IsInvalidArgument());
  KMeansOptions given = opt;
  given.init = KMeansInit::kGiven;
  EXPECT_TRUE(
      quiver::KMeans(given, x.data(), n, d, 3, &res).IsInvalidArgument());
  std::vector<float> nan_init(3 * d, std::numeric_limits<float>::quiet_NaN());
  given.initial_centroids = nan_init.data();
  EXPECT_TRUE(
      quiver::KMeans(given, x.data(), n, d, 3, &res).IsInvalidArgument());
  KMeansOptions iters = opt;
  iters.max_iterations = 0;
  EXPECT_TRUE(
      quiver::KMeans(iters, x.data(), n, d, 3, &res).IsInvalidArgument());
  KMeansOptions tol = opt;
  tol.tolerance = -1;
  EXPECT_TRUE(quiver::KMeans(tol, x.data(), n, d, 3, &res).IsInvalidArgument());
  if (!CudaDeviceAvailable()) {
    KMeansOptions gpu = opt;
    gpu.device = Device::kGpu;
    EXPECT_TRUE(quiver::KMeans(gpu, x.data(), n, d, 3, &res).IsNotSupported());
    gpu.device = Device::kCpu;
    gpu.data_on_device = true;
    EXPECT_TRUE(
        quiver::KMeans(gpu, x.data(), n, d, 3, &res).IsInvalidArgument());
  }
  // And valid input works through the same door.
  EXPECT_TRUE(quiver::KMeans(opt, x.data(), n, d, 3, &res).ok());
  EXPECT_TRUE(quiver::KMeans(opt, x.data(), n, d, n, &res).ok());
  // Predict: null and shape errors.
  std::vector<uint32_t> labels(n);
  EXPECT_TRUE(KMeansPredict(Metric::kL2, nullptr, 3, x.data(), n, d,
                            labels.data(), nullptr)
                  .IsInvalidArgument());
  EXPECT_TRUE(KMeansPredict(Metric::kL2, res.centroids.data(), 0, x.data(), n,
                            d, labels.data(), nullptr)
                  .IsInvalidArgument());
}

}  // namespace
}  // namespace quiver::kernels
