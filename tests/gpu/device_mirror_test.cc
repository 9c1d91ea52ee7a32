// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The GPU mirror of the index's vectors: DeviceRows against a host copy
// (staged writes, overwrites, growth, gathers), a k-means reading gathered
// rows in place against the same k-means on host data, and a DB whose
// re-clusterings train on its mirror against one that trains on the CPU.
// Skipped when no CUDA GPU is visible.

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "kernels/cuda/device_rows.h"
#include "kernels/cuda/kmeans_cuda.h"
#include "quiver/db.h"
#include "quiver/kmeans.h"
#include "quiver/write_batch.h"
#include "test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace quiver {
namespace {

#define SKIP_WITHOUT_GPU() QUIVER_SKIP_WITHOUT_GPU("the GPU mirror tests")

std::vector<float> Row(uint32_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> r(dim);
  for (float& x : r) x = g(rng);
  return r;
}

TEST(DeviceRowsTest, RowsMatchAHostCopyThroughOverwritesAndGrowth) {
  SKIP_WITHOUT_GPU();
  constexpr uint32_t kDim = 37;  // not a multiple of anything
  std::unique_ptr<kernels::DeviceRows> rows;
  ASSERT_TRUE(kernels::DeviceRows::Create(kDim, 0, &rows).ok());
  std::map<uint32_t, std::vector<float>> host;
  std::mt19937_64 rng(7);
  uint64_t seed = 1;
  // Three rounds, the later ones past the table's first capacity, each
  // overwriting some rows twice before the upload (the last Put wins).
  for (uint32_t round : {500u, 3000u, 9000u}) {
    for (int i = 0; i < 2000; ++i) {
      const uint32_t slot = static_cast<uint32_t>(rng() % round);
      host[slot] = Row(kDim, seed++);
      rows->Put(slot, host[slot].data());
    }
    ASSERT_TRUE(rows->Flush().ok());
    EXPECT_GE(rows->capacity(), host.rbegin()->first + 1u);
  }
  std::vector<uint32_t> slots;
  for (const auto& [slot, r] : host) slots.push_back(slot);
  std::shuffle(slots.begin(), slots.end(), rng);  // any order
  std::vector<float> back(slots.size() * kDim);
  ASSERT_TRUE(rows->Read(slots.data(), slots.size(), back.data()).ok());
  for (size_t i = 0; i < slots.size(); ++i) {
    ASSERT_EQ(std::vector<float>(back.begin() + i * kDim, back.begin() + (i + 1) * kDim),
              host[slots[i]])
        << "slot " << slots[i];
  }
}

TEST(DeviceRowsTest, GatherRefusesSlotsBeyondTheTableAndStagedRows) {
  SKIP_WITHOUT_GPU();
  std::unique_ptr<kernels::DeviceRows> rows;
  ASSERT_TRUE(kernels::DeviceRows::Create(8, 0, &rows).ok());
  const std::vector<float> r = Row(8, 1);
  rows->Put(3, r.data());
  std::shared_ptr<const float> out;
  const uint32_t three = 3;
  EXPECT_TRUE(rows->Gather(&three, 1, &out).IsInvalidArgument());  // staged
  ASSERT_TRUE(rows->Flush().ok());
  EXPECT_TRUE(rows->Gather(&three, 1, &out).ok());
  const uint32_t far = static_cast<uint32_t>(rows->capacity());
  EXPECT_TRUE(rows->Gather(&far, 1, &out).IsInvalidArgument());
  std::unique_ptr<kernels::DeviceRows> none;
  EXPECT_TRUE(kernels::DeviceRows::Create(0, 0, &none).IsInvalidArgument());
}

// A k-means over gathered rows in place gives what the same k-means gives
// over the same vectors on the host: the mirror changes where the data
// lives, nothing else.
TEST(DeviceRowsTest, KMeansOnGatheredRowsMatchesKMeansOnHostData) {
  SKIP_WITHOUT_GPU();
  constexpr uint32_t kDim = 48;
  constexpr size_t kN = 20000, kK = 64;
  std::vector<float> host(kN * kDim);
  std::unique_ptr<kernels::DeviceRows> rows;
  ASSERT_TRUE(kernels::DeviceRows::Create(kDim, 0, &rows).ok());
  // Stored in a scattered order, gathered back in id order.
  std::vector<uint32_t> slot_of(kN);
  for (size_t i = 0; i < kN; ++i) slot_of[i] = static_cast<uint32_t>((i * 7919) % kN);
  for (size_t i = 0; i < kN; ++i) {
    const std::vector<float> r = Row(kDim, 100 + i % 500);  // 500 distinct points
    for (uint32_t j = 0; j < kDim; ++j) host[i * kDim + j] = r[j] + 0.01f * (i % 7);
    rows->Put(slot_of[i], &host[i * kDim]);
  }
  ASSERT_TRUE(rows->Flush().ok());
  std::shared_ptr<const float> on_device;
  ASSERT_TRUE(rows->Gather(slot_of.data(), kN, &on_device).ok());

  KMeansOptions o;
  o.max_iterations = 8;
  o.tolerance = 0;
  o.device = Device::kGpu;
  o.init = KMeansInit::kGiven;
  std::vector<float> init(host.begin(), host.begin() + kK * kDim);
  o.initial_centroids = init.data();
  KMeansResult from_host, in_place;
  ASSERT_TRUE(KMeans(o, host.data(), kN, kDim, kK, &from_host).ok());
  o.data_on_device = true;
  ASSERT_TRUE(KMeans(o, on_device.get(), kN, kDim, kK, &in_place).ok());
  EXPECT_EQ(in_place.assignments, from_host.assignments);
  ASSERT_EQ(in_place.objective.size(), from_host.objective.size());
  for (size_t it = 0; it < in_place.objective.size(); ++it) {
    EXPECT_NEAR(in_place.objective[it], from_host.objective[it],
                1e-6 * std::abs(from_host.objective[it]));
  }
}

// Two DBs fed the same writes, one re-clustering on its GPU mirror (over
// `devices`), one on the CPU: the mirror follows every put and delete, the
// re-clustering that read it leaves a consistent index that finds every
// vector.
void ExpectMirroredDbMatchesCpu(const std::vector<int>& devices) {
  test::TempDir dir;
  constexpr uint32_t kDim = 24;
  Options o;
  o.dim = kDim;
  o.create_if_missing = true;
  o.background_maintenance = false;
  o.target_partition_size = 100;
  o.ivf_train_threshold = 1000000;  // trained by Reindex only
  std::unique_ptr<DB> gpu_db, cpu_db;
  o.device = Device::kAuto;
  o.devices = devices;
  ASSERT_TRUE(DB::Open(o, dir.Sub("gpu"), &gpu_db).ok());
  o.device = Device::kCpu;
  o.devices.clear();
  ASSERT_TRUE(DB::Open(o, dir.Sub("cpu"), &cpu_db).ok());

  std::map<uint64_t, std::vector<float>> live;
  std::mt19937_64 rng(3);
  for (int round = 0; round < 6; ++round) {
    WriteBatch b;
    for (int i = 0; i < 1500; ++i) {
      const uint64_t id = rng() % 8000;
      if (rng() % 5 == 0) {
        b.Delete(id);
        live.erase(id);
      } else {
        std::vector<float> v = Row(kDim, rng());
        for (float& x : v) x += static_cast<float>(id % 16) * 3.0f;  // 16 groups
        b.Put(id, v);
        live[id] = std::move(v);
      }
    }
    ASSERT_TRUE(gpu_db->Write(WriteOptions(), &b).ok());
    ASSERT_TRUE(cpu_db->Write(WriteOptions(), &b).ok());
    EXPECT_EQ(gpu_db->GetStats().gpu_mirror_vectors, live.size());
    EXPECT_EQ(cpu_db->GetStats().gpu_mirror_vectors, 0u);
    if (round % 2 == 1) {
      ASSERT_TRUE(gpu_db->Reindex(ReindexOptions()).ok());
      ASSERT_TRUE(cpu_db->Reindex(ReindexOptions()).ok());
    }
  }
  const Stats gs = gpu_db->GetStats(), cs = cpu_db->GetStats();
  EXPECT_EQ(gs.num_vectors, live.size());
  EXPECT_EQ(gs.num_partitions, cs.num_partitions);
  EXPECT_EQ(gs.epoch, cs.epoch);
  // Same data, but the first training's k-means++ draws differ (the GPU
  // seeds on the device, over the mirror's row order): the objectives agree
  // as two k-means runs do, not to the bit.
  EXPECT_NEAR(gs.mean_distortion, cs.mean_distortion, 0.02 * cs.mean_distortion);

  CheckReport report;
  ASSERT_TRUE(gpu_db->Check(&report).ok());
  EXPECT_EQ(report.problems_found, 0u);
  size_t found = 0;
  for (const auto& [id, v] : live) {
    std::vector<Neighbor> hits;
    ASSERT_TRUE(gpu_db->Search(SearchOptions{.k = 1, .nprobe = 4}, v, &hits).ok());
    found += !hits.empty() && hits[0].id == id;
  }
  EXPECT_GE(found, live.size() * 99 / 100);
}

TEST(DeviceMirrorTest, ReclusteringTrainsOnTheMirror) {
  SKIP_WITHOUT_GPU();
  ExpectMirroredDbMatchesCpu({0});
}

// The mirror sharded over two GPUs (row r on GPU r mod 2), the k-means run
// over both shards.
TEST(DeviceMirrorTest, ShardedMirrorOverTwoGpus) {
  QUIVER_SKIP_WITHOUT_TWO_GPUS("the sharded mirror test");
  ExpectMirroredDbMatchesCpu({0, 1});
}

TEST(DeviceMirrorTest, UnknownDeviceRejectedAtOpen) {
  SKIP_WITHOUT_GPU();
  test::TempDir dir;
  Options o;
  o.dim = 8;
  o.devices = {kernels::CudaDeviceCount()};
  std::unique_ptr<DB> db;
  Status s = DB::Open(o, dir.Sub("db"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  o.devices = {0, 0};
  s = DB::Open(o, dir.Sub("db"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
}

}  // namespace
}  // namespace quiver
