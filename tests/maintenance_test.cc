// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Continuous re-clustering: split/merge invariants, tombstone compaction,
// catch-up of writes made during a global re-clustering, crash safety of
// the epoch switch, and recall after a drift workload.

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <cstdio>
#include <map>

#include "engine/db_impl.h"
#include "quiver/db.h"
#include "quiver/kmeans.h"
#include "quiver/write_batch.h"
#include "test_util.h"

namespace quiver {
namespace {

std::vector<float> Blob(size_t n, size_t d, float center, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(center, 1.0f);
  std::vector<float> v(n * d);
  for (auto& x : v) x = g(rng);
  return v;
}

DBImpl* Impl(const std::unique_ptr<DB>& db) { return static_cast<DBImpl*>(db.get()); }

Options MaintainedOptions(uint32_t dim) {
  Options o;
  o.dim = dim;
  o.device = Device::kCpu;
  o.target_partition_size = 32;
  o.max_partition_size = 64;
  o.min_partition_size = 8;
  o.ivf_train_threshold = 200;
  o.kmeans_iterations = 5;
  return o;
}

// Every live vector sits in exactly one partition: the partition sizes add
// up to the live count, and an exact search of each vector finds it once.
void ExpectEachVectorOnce(DB* db, const std::map<uint64_t, std::vector<float>>& live) {
  Stats st = db->GetStats();
  uint64_t sum = 0;
  for (uint64_t s : st.partition_sizes) sum += s;
  EXPECT_EQ(sum, live.size());
  EXPECT_EQ(st.num_vectors, live.size());
  for (const auto& [id, v] : live) {
    std::vector<Neighbor> hits;
    ASSERT_TRUE(db->Search(SearchOptions{.k = 3, .exact = true}, v, &hits).ok());
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].distance, 0.0f) << id;
    int copies = 0;
    for (const auto& h : hits) copies += h.id == id ? 1 : 0;
    EXPECT_EQ(copies, 1) << id;
  }
}

TEST(MaintenanceTest, SplitsAndMergesKeepPartitionsWithinBounds) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(MaintainedOptions(8), dir.path(), &db).ok());
  std::map<uint64_t, std::vector<float>> live;
  // Drift: three far-apart blobs arrive one after the other.
  uint64_t id = 0;
  for (int blob = 0; blob < 3; ++blob) {
    auto data = Blob(600, 8, 20.0f * blob, 7 + blob);
    WriteBatch batch;
    for (size_t i = 0; i < 600; ++i, ++id) {
      std::vector<float> v(data.begin() + i * 8, data.begin() + (i + 1) * 8);
      batch.Put(id, v);
      live[id] = v;
    }
    ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
    Impl(db)->TEST_WaitForMaintenance();
  }
  // Delete most of the first blob: its partitions shrink and are merged.
  for (uint64_t i = 0; i < 550; ++i) {
    ASSERT_TRUE(db->Delete(WriteOptions(), i).ok());
    live.erase(i);
  }
  Impl(db)->TEST_WaitForMaintenance();

  Stats st = db->GetStats();
  EXPECT_GE(st.epoch, 1u);
  EXPECT_GT(st.splits + st.trainings, 1u);
  for (uint64_t s : st.partition_sizes) {
    EXPECT_LE(s, 64u);
    EXPECT_GE(s, 8u);
  }
  ExpectEachVectorOnce(db.get(), live);
}

TEST(MaintenanceTest, TombstonesAreCompactedAway) {
  test::TempDir dir;
  Options o = MaintainedOptions(4);
  o.target_partition_size = 256;  // 8 partitions of ~250: 125 tombstones each
  o.max_partition_size = 1024;
  o.min_partition_size = 1;  // isolate compaction from merging
  o.recluster_written_fraction = 0;
  o.recluster_drift = 0;
  o.recluster_imbalance = 0;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());
  auto data = Blob(2000, 4, 0.0f, 3);
  WriteBatch batch;
  for (size_t i = 0; i < 2000; ++i) batch.Put(i, std::span<const float>(&data[i * 4], 4));
  ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
  Impl(db)->TEST_WaitForMaintenance();
  batch.Clear();
  for (size_t i = 0; i < 2000; i += 2) batch.Delete(i);
  ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
  Impl(db)->TEST_WaitForMaintenance();
  Stats st = db->GetStats();
  EXPECT_EQ(st.num_vectors, 1000u);
  EXPECT_GT(st.compactions, 0u);
  EXPECT_LT(st.tombstones, 300u);  // what is left sits below the compaction bar
}

TEST(MaintenanceTest, WritesDuringAGlobalReclusteringAreCaughtUp) {
  test::TempDir dir;
  Options o = MaintainedOptions(8);
  o.background_maintenance = false;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());
  auto data = Blob(1000, 8, 0.0f, 11);
  std::map<uint64_t, std::vector<float>> live;
  WriteBatch batch;
  for (size_t i = 0; i < 1000; ++i) {
    live[i].assign(data.begin() + i * 8, data.begin() + (i + 1) * 8);
    batch.Put(i, live[i]);
  }
  ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
  const uint64_t epoch = db->GetStats().epoch;

  // Writes land while the k-means runs (the progress callback runs between
  // iterations, without any lock held).
  auto extra = Blob(200, 8, 5.0f, 12);
  bool wrote = false;
  Status s = db->Reindex(ReindexOptions{.partitions = 20, .iterations = 4},
                         [&](const ReindexProgress& p) {
                           if (p.phase == "kmeans" && !wrote) {
                             wrote = true;
                             for (size_t i = 0; i < 200; ++i) {
                               std::vector<float> v(extra.begin() + i * 8,
                                                    extra.begin() + (i + 1) * 8);
                               EXPECT_TRUE(db->Put(WriteOptions(), 5000 + i, v).ok());
                               live[5000 + i] = v;
                             }
                             for (uint64_t i = 0; i < 100; ++i) {
                               EXPECT_TRUE(db->Delete(WriteOptions(), i).ok());
                               live.erase(i);
                             }
                           }
                           return true;
                         });
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(wrote);
  EXPECT_EQ(db->GetStats().epoch, epoch + 1);
  EXPECT_EQ(db->GetStats().num_partitions, 20u);
  ExpectEachVectorOnce(db.get(), live);
}

// A failure injected at each step of the epoch switch, then a reopen: the
// DB holds the old epoch or the new one, never a mix, and every
// acknowledged write is there and searchable.
TEST(MaintenanceTest, EpochSwitchIsCrashSafeAtEveryStep) {
  for (const char* step : {"snapshot", "kmeans", "build", "catchup", "persist", "swap"}) {
    SCOPED_TRACE(step);
    test::TempDir dir;
    Options o = MaintainedOptions(8);
    o.background_maintenance = false;
    std::map<uint64_t, std::vector<float>> live;
    uint64_t epoch_before = 0;
    {
      std::unique_ptr<DB> db;
      ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());
      auto data = Blob(600, 8, 0.0f, 21);
      WriteBatch batch;
      for (size_t i = 0; i < 600; ++i) {
        live[i].assign(data.begin() + i * 8, data.begin() + (i + 1) * 8);
        batch.Put(i, live[i]);
      }
      ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
      epoch_before = db->GetStats().epoch;
      const std::string failing = step;
      Impl(db)->TEST_SetEpochSwitchHook([&](std::string_view at) {
        return at == failing ? Status::IOError("injected at " + failing) : Status::OK();
      });
      Status s = db->Reindex(ReindexOptions{.partitions = 12, .iterations = 3});
      if (failing == "swap") {
        EXPECT_TRUE(s.ok()) << s.ToString();  // the swap is the commit point's aftermath
      } else {
        EXPECT_TRUE(s.IsIOError()) << s.ToString();
      }
      // The DB keeps serving and accepting writes.
      auto more = Blob(50, 8, 3.0f, 22);
      for (size_t i = 0; i < 50; ++i) {
        live[1000 + i].assign(more.begin() + i * 8, more.begin() + (i + 1) * 8);
        ASSERT_TRUE(db->Put(WriteOptions(), 1000 + i, live[1000 + i]).ok());
      }
      ExpectEachVectorOnce(db.get(), live);
    }
    std::unique_ptr<DB> db;
    o.dim = 0;
    ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());
    const uint64_t epoch = db->GetStats().epoch;
    const bool committed = std::string(step) == "persist" || std::string(step) == "swap";
    EXPECT_EQ(epoch, committed ? epoch_before + 1 : epoch_before);
    EXPECT_EQ(db->GetStats().num_partitions, committed ? 12u : (600u + 16u) / 32u);
    ExpectEachVectorOnce(db.get(), live);
  }
}

// SIFT 5K clustered with k-means and inserted cluster by cluster: the
// maintained index keeps recall@10 >= 0.95 at a fixed nprobe.
TEST(MaintenanceTest, RecallStaysHighUnderDrift) {
  test::Sift5k sift = test::LoadSift5k();
  ASSERT_TRUE(sift.ok()) << "SIFT 5K not found under " << test::DataDir();
  KMeansOptions ko;
  ko.device = Device::kCpu;
  ko.max_iterations = 10;
  KMeansResult km;
  ASSERT_TRUE(KMeans(ko, sift.base.data(), sift.nb, 128, 10, &km).ok());
  std::vector<size_t> order(sift.nb);
  for (size_t i = 0; i < sift.nb; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return km.assignments[a] < km.assignments[b]; });

  test::TempDir dir;
  Options o;
  o.dim = 128;
  o.device = Device::kCpu;
  o.target_partition_size = 64;
  o.ivf_train_threshold = 400;  // trained on the first cluster alone
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());
  std::vector<float> inserted;
  size_t next = 0;
  for (int cluster = 0; cluster < 10; ++cluster) {
    WriteBatch batch;
    while (next < sift.nb && km.assignments[order[next]] == static_cast<uint32_t>(cluster)) {
      batch.Put(order[next], std::span<const float>(&sift.base[order[next] * 128], 128));
      ++next;
    }
    ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
    Impl(db)->TEST_WaitForMaintenance();
  }
  ASSERT_EQ(db->GetStats().num_vectors, 4500u);
  auto gt = test::BruteForceKnn(Metric::kL2, sift.base, sift.queries, 128, 10);
  std::vector<std::vector<Neighbor>> results;
  ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 10, .nprobe = 12}, sift.queries, sift.nq,
                              &results)
                  .ok());
  const double recall = test::RecallAtK(results, gt, 10);
  Stats st = db->GetStats();
  std::printf("drift: recall@10 %.4f, epoch %llu, %u partitions, %llu splits, %llu merges\n",
              recall, (unsigned long long)st.epoch, st.num_partitions,
              (unsigned long long)st.splits, (unsigned long long)st.merges);
  EXPECT_GE(recall, 0.95);
}

}  // namespace
}  // namespace quiver
