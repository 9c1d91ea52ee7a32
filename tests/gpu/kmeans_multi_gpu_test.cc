// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// k-means over several GPUs (KMeansOptions::devices, KMeansCudaSharded)
// against the same k-means on one GPU, on the same data and initial
// centroids. One listed GPU is the single-GPU path; two or more GPUs agree
// with one GPU under the near-tie rule (tests/gpu/gpu_test_util.h), with
// per-iteration objectives equal to 1e-4 relative (the partial sums are
// added in another order). The one-GPU reference re-seeds empty clusters
// by the same rule as a team: a streamed run, which splits the largest
// cluster (a resident one-GPU run takes the farthest point, which a team
// cannot see); where no cluster empties, the resident run is the reference
// too. Tests that need two GPUs skip, saying so, on a machine with one.

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_cuda_ex.h"
#include "quiver/kmeans.h"
#include "tests/gpu/gpu_test_util.h"

namespace quiver {
namespace {

using kernels::DeviceShard;
using kernels::KMeansCudaConfig;
using kernels::KMeansCudaEx;
using kernels::KMeansCudaSharded;
using kernels::KMeansInput;
using testing_gpu::Blobs;
using testing_gpu::HardMismatches;

#define SKIP_WITHOUT_TWO_GPUS() QUIVER_SKIP_WITHOUT_TWO_GPUS("the tests over two GPUs")

KMeansOptions Options(Metric m, std::vector<int> devices) {
  KMeansOptions o;
  o.max_iterations = 8;
  o.tolerance = 0;
  o.seed = 42;
  o.metric = m;
  o.device = Device::kGpu;
  o.init = KMeansInit::kKMeansPlusPlus;
  o.devices = std::move(devices);
  return o;
}

// `got` agrees with `ref` (see the file comment).
void ExpectAgree(Metric m, const std::vector<float>& x, size_t d, const KMeansResult& ref,
                 const KMeansResult& got) {
  ASSERT_EQ(got.iterations, ref.iterations);
  ASSERT_EQ(got.assignments.size(), ref.assignments.size());
  ASSERT_EQ(got.centroids.size(), ref.centroids.size());
  const size_t k = ref.centroids.size() / d;
  for (uint32_t a : got.assignments) ASSERT_LT(a, k);
  size_t mism = 0;
  EXPECT_EQ(HardMismatches(m, x, d, ref, got, &mism), 0u) << mism << " mismatches";
  for (int it = 0; it < ref.iterations; ++it) {
    EXPECT_NEAR(got.objective[it], ref.objective[it], 1e-4 * std::abs(ref.objective[it]))
        << "iteration " << it;
  }
}

// One GPU, re-seeding like a team (see the file comment).
Status OneGpuLikeATeam(KMeansOptions o, const std::vector<float>& x, size_t n, size_t d,
                       size_t k, KMeansResult* r) {
  o.devices = {0};
  KMeansCudaConfig cfg;
  cfg.force_streaming = true;
  return KMeansCudaEx(o, x.data(), KMeansInput::kF32, n, d, k, 1, cfg, r, nullptr);
}

TEST(KMeansMultiGpu, OneListedGpuIsTheSingleGpuPath) {
  QUIVER_SKIP_WITHOUT_GPU("the multi-GPU k-means tests");
  const size_t n = 20011, d = 48, k = 40;
  const std::vector<float> x = Blobs(n, d, k, 5);
  KMeansResult lone, listed;
  ASSERT_TRUE(KMeans(Options(Metric::kL2, {}), x.data(), n, d, k, &lone).ok());
  const Status s = KMeans(Options(Metric::kL2, {0}), x.data(), n, d, k, &listed);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(listed.device, Device::kGpu);
  ExpectAgree(Metric::kL2, x, d, lone, listed);
}

TEST(KMeansMultiGpu, BadDeviceListsRejected) {
  QUIVER_SKIP_WITHOUT_GPU("the multi-GPU k-means tests");
  const std::vector<float> x = Blobs(1000, 8, 4, 1);
  KMeansResult r;
  Status s =
      KMeans(Options(Metric::kL2, {kernels::CudaDeviceCount()}), x.data(), 1000, 8, 4, &r);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = KMeans(Options(Metric::kL2, {-1}), x.data(), 1000, 8, 4, &r);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  s = KMeans(Options(Metric::kL2, {0, 0}), x.data(), 1000, 8, 4, &r);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  // Shards: none, two on one GPU, an empty one.
  const DeviceShard none[1] = {};
  s = KMeansCudaSharded(Options(Metric::kL2, {}), none, 0, KMeansInput::kF32, 8, 4,
                        KMeansCudaConfig(), &r, nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  float* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, x.size() * sizeof(float)), cudaSuccess);
  const DeviceShard twice[2] = {{0, dev, 500}, {0, dev + 500 * 8, 500}};
  s = KMeansCudaSharded(Options(Metric::kL2, {}), twice, 2, KMeansInput::kF32, 8, 4,
                        KMeansCudaConfig(), &r, nullptr);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  ASSERT_EQ(cudaFree(dev), cudaSuccess);
}

TEST(KMeansMultiGpu, OneShardIsDataOnDevice) {
  QUIVER_SKIP_WITHOUT_GPU("the multi-GPU k-means tests");
  const size_t n = 9001, d = 32, k = 24;
  const std::vector<float> x = Blobs(n, d, k, 9);
  float* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, x.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice),
            cudaSuccess);
  KMeansOptions o = Options(Metric::kL2, {});
  o.data_on_device = true;
  KMeansResult ref, got;
  ASSERT_TRUE(KMeans(o, dev, n, d, k, &ref).ok());
  const DeviceShard one[1] = {{0, dev, n}};
  const Status s = KMeansCudaSharded(Options(Metric::kL2, {}), one, 1, KMeansInput::kF32, d,
                                     k, KMeansCudaConfig(), &got, nullptr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectAgree(Metric::kL2, x, d, ref, got);
  ASSERT_EQ(cudaFree(dev), cudaSuccess);
}

TEST(KMeansMultiGpu, TwoGpusMatchOne) {
  SKIP_WITHOUT_TWO_GPUS();
  const size_t n = 200003, d = 100, k = 300;  // odd n: unequal shares
  const std::vector<float> x = Blobs(n, d, 400, 11);
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    SCOPED_TRACE(testing::Message() << "metric " << int(m));
    KMeansResult one, two;
    ASSERT_TRUE(OneGpuLikeATeam(Options(m, {}), x, n, d, k, &one).ok());
    const Status s = KMeans(Options(m, {0, 1}), x.data(), n, d, k, &two);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ExpectAgree(m, x, d, one, two);
  }
}

TEST(KMeansMultiGpu, TwoGpusMatchOneResidentWhenNoClusterEmpties) {
  SKIP_WITHOUT_TWO_GPUS();
  const size_t n = 100000, d = 64, k = 100;
  const std::vector<float> x = Blobs(n, d, 100, 16);
  for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
    SCOPED_TRACE(testing::Message() << "metric " << int(m));
    KMeansOptions o = Options(m, {0});
    int empties = 0;
    o.progress = [&](const KMeansIterationInfo& info) {
      empties += info.empty_clusters;
      return true;
    };
    KMeansResult one, two;
    ASSERT_TRUE(KMeans(o, x.data(), n, d, k, &one).ok());
    ASSERT_EQ(empties, 0) << "the data should leave no cluster empty";
    o.devices = {0, 1};
    const Status s = KMeans(o, x.data(), n, d, k, &two);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(empties, 0);
    ExpectAgree(m, x, d, one, two);
  }
}

TEST(KMeansMultiGpu, ListOrderDoesNotMatter) {
  SKIP_WITHOUT_TWO_GPUS();
  const size_t n = 50000, d = 64, k = 64;
  const std::vector<float> x = Blobs(n, d, 80, 12);
  KMeansResult a, b;
  ASSERT_TRUE(KMeans(Options(Metric::kL2, {0, 1}), x.data(), n, d, k, &a).ok());
  const Status s = KMeans(Options(Metric::kL2, {1, 0}), x.data(), n, d, k, &b);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectAgree(Metric::kL2, x, d, a, b);
}

TEST(KMeansMultiGpu, TwoGpusStreamedMatchOneResident) {
  SKIP_WITHOUT_TWO_GPUS();
  const size_t n = 60007, d = 40, k = 50;
  const std::vector<float> x = Blobs(n, d, 64, 13);
  KMeansOptions o = Options(Metric::kL2, {0});
  KMeansResult resident, streamed;
  KMeansCudaConfig cfg;
  ASSERT_TRUE(KMeansCudaEx(o, x.data(), KMeansInput::kF32, n, d, k, 1, cfg, &resident,
                           nullptr).ok());
  o.devices = {0, 1};
  cfg.force_streaming = true;
  cfg.chunk_points = 7000;  // 5 chunks a GPU, the last one short
  kernels::KMeansCudaTimings t;
  const Status s = KMeansCudaEx(o, x.data(), KMeansInput::kF32, n, d, k, 1, cfg, &streamed, &t);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(t.streamed);
  ExpectAgree(Metric::kL2, x, d, resident, streamed);
}

TEST(KMeansMultiGpu, DeviceShardsMatchHostData) {
  SKIP_WITHOUT_TWO_GPUS();
  const size_t n = 40000, d = 72, k = 100;
  const std::vector<float> x = Blobs(n, d, 128, 14);
  const size_t split = 15000;  // unequal shards
  float* dev[2] = {nullptr, nullptr};
  const size_t rows[2] = {split, n - split};
  for (int g = 0; g < 2; ++g) {
    ASSERT_EQ(cudaSetDevice(g), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dev[g], rows[g] * d * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dev[g], x.data() + (g == 0 ? 0 : split * d),
                         rows[g] * d * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  for (KMeansInit init : {KMeansInit::kKMeansPlusPlus, KMeansInit::kRandom}) {
    SCOPED_TRACE(testing::Message() << "init " << int(init));
    KMeansOptions o = Options(Metric::kL2, {0, 1});
    o.init = init;
    KMeansResult host, sharded, one;
    ASSERT_TRUE(KMeans(o, x.data(), n, d, k, &host).ok());
    ASSERT_TRUE(OneGpuLikeATeam(o, x, n, d, k, &one).ok());
    ExpectAgree(Metric::kL2, x, d, one, host);
    const DeviceShard shards[2] = {{0, dev[0], rows[0]}, {1, dev[1], rows[1]}};
    const Status s = KMeansCudaSharded(o, shards, 2, KMeansInput::kF32, d, k,
                                       KMeansCudaConfig(), &sharded, nullptr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ExpectAgree(Metric::kL2, x, d, host, sharded);
  }
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, 0) << "a run must leave the caller's device current";
  for (int g = 0; g < 2; ++g) {
    ASSERT_EQ(cudaSetDevice(g), cudaSuccess);
    ASSERT_EQ(cudaFree(dev[g]), cudaSuccess);
  }
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

// Two threads running teams over the same GPUs at once (listed in two
// orders, so two communicator sets): they take turns, and each gets its own
// right answer.
TEST(KMeansMultiGpu, ConcurrentTeamsTakeTurns) {
  SKIP_WITHOUT_TWO_GPUS();
  const size_t n = 30000, d = 32, k = 48;
  const std::vector<float> x = Blobs(n, d, 64, 17), y = Blobs(n, d, 64, 18);
  KMeansResult rx, ry, ref_x, ref_y;
  ASSERT_TRUE(OneGpuLikeATeam(Options(Metric::kL2, {}), x, n, d, k, &ref_x).ok());
  ASSERT_TRUE(OneGpuLikeATeam(Options(Metric::kL2, {}), y, n, d, k, &ref_y).ok());
  Status sx, sy;
  std::thread tx([&] {
    for (int r = 0; r < 3 && sx.ok(); ++r) {
      sx = KMeans(Options(Metric::kL2, {0, 1}), x.data(), n, d, k, &rx);
    }
  });
  std::thread ty([&] {
    for (int r = 0; r < 3 && sy.ok(); ++r) {
      sy = KMeans(Options(Metric::kL2, {1, 0}), y.data(), n, d, k, &ry);
    }
  });
  tx.join();
  ty.join();
  ASSERT_TRUE(sx.ok()) << sx.ToString();
  ASSERT_TRUE(sy.ok()) << sy.ToString();
  ExpectAgree(Metric::kL2, x, d, ref_x, rx);
  ExpectAgree(Metric::kL2, y, d, ref_y, ry);
}

TEST(KMeansMultiGpu, EmptyClustersAcrossGpus) {
  SKIP_WITHOUT_TWO_GPUS();
  // 20 distinct points repeated: k = 40 leaves clusters empty every
  // iteration; a team re-seeds them by splitting the largest.
  const size_t distinct = 20, n = 20000, d = 16, k = 40;
  const std::vector<float> base = Blobs(distinct, d, distinct, 15);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    std::copy_n(&base[(i % distinct) * d], d, &x[i * d]);
  }
  KMeansResult r;
  int empties = 0;
  KMeansOptions o = Options(Metric::kL2, {0, 1});
  o.progress = [&](const KMeansIterationInfo& info) {
    empties += info.empty_clusters;
    return true;
  };
  const Status s = KMeans(o, x.data(), n, d, k, &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(empties, 0);
  for (float c : r.centroids) ASSERT_TRUE(std::isfinite(c));
  for (uint32_t a : r.assignments) ASSERT_LT(a, k);
  EXPECT_LE(r.objective.back(), r.objective.front() * (1 + 1e-6) + 1e-3);
}

}  // namespace
}  // namespace quiver
