// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DB behaviour: writes, reads, upserts, deletes, persistence, training,
// read-only access.

#include "quiver/db.h"

#include <gtest/gtest.h>

#include <random>

#include "quiver/write_batch.h"
#include "test_util.h"

namespace quiver {
namespace {

std::vector<float> RandomVectors(size_t n, size_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * d);
  for (auto& x : v) x = g(rng);
  return v;
}

Options SmallOptions(uint32_t dim, Metric metric = Metric::kL2) {
  Options o;
  o.dim = dim;
  o.metric = metric;
  o.device = Device::kCpu;
  o.target_partition_size = 32;
  o.ivf_train_threshold = 256;
  o.kmeans_iterations = 8;
  o.background_maintenance = false;  // deterministic: trains once, inline
  return o;
}

std::unique_ptr<DB> OpenOrDie(const Options& o, const std::string& path) {
  std::unique_ptr<DB> db;
  Status s = DB::Open(o, path, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return db;
}

TEST(DBTest, PutGetRoundTripWithPayload) {
  test::TempDir dir;
  auto db = OpenOrDie(SmallOptions(4), dir.path());
  const std::vector<float> v = {1.5f, -2.0f, 0.0f, 3.25f};
  ASSERT_TRUE(db->Put(WriteOptions(), 42, v, "hello").ok());
  std::vector<float> got;
  std::string payload;
  ASSERT_TRUE(db->Get(ReadOptions(), 42, &got, &payload).ok());
  EXPECT_EQ(got, v);
  EXPECT_EQ(payload, "hello");
  EXPECT_TRUE(db->Get(ReadOptions(), 43, &got).IsNotFound());
}

TEST(DBTest, PutIsUpsertAndDeleteRemoves) {
  test::TempDir dir;
  auto db = OpenOrDie(SmallOptions(2), dir.path());
  const std::vector<float> a = {0, 0}, b = {10, 10};
  ASSERT_TRUE(db->Put(WriteOptions(), 1, a).ok());
  ASSERT_TRUE(db->Put(WriteOptions(), 1, b).ok());
  std::vector<float> got;
  ASSERT_TRUE(db->Get(ReadOptions(), 1, &got).ok());
  EXPECT_EQ(got, b);
  EXPECT_EQ(db->GetStats().num_vectors, 1u);

  std::vector<Neighbor> hits;
  ASSERT_TRUE(db->Search(SearchOptions{.k = 5}, std::vector<float>{10, 10}, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);  // the old copy is gone from the index too
  EXPECT_EQ(hits[0].id, 1u);
  EXPECT_FLOAT_EQ(hits[0].distance, 0.0f);

  ASSERT_TRUE(db->Delete(WriteOptions(), 1).ok());
  EXPECT_TRUE(db->Get(ReadOptions(), 1, &got).IsNotFound());
  EXPECT_TRUE(db->Delete(WriteOptions(), 1).IsNotFound());
  ASSERT_TRUE(db->Search(SearchOptions{.k = 5}, std::vector<float>{10, 10}, &hits).ok());
  EXPECT_TRUE(hits.empty());
}

TEST(DBTest, WriteBatchIsAtomicAndValidatedFirst) {
  test::TempDir dir;
  auto db = OpenOrDie(SmallOptions(3), dir.path());
  WriteBatch batch;
  batch.Put(1, std::vector<float>{1, 2, 3});
  batch.Put(2, std::vector<float>{1, 2});  // wrong dimension
  Status s = db->Write(WriteOptions(), &batch);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  std::vector<float> got;
  EXPECT_TRUE(db->Get(ReadOptions(), 1, &got).IsNotFound());  // nothing written

  batch.Clear();
  batch.Put(1, std::vector<float>{1, 2, 3});
  batch.Put(2, std::vector<float>{4, 5, 6});
  batch.Delete(1);
  batch.Delete(99);  // unknown ids are a no-op inside a batch
  ASSERT_TRUE(db->Write(WriteOptions{.sync = true}, &batch).ok());
  EXPECT_TRUE(db->Get(ReadOptions(), 1, &got).IsNotFound());
  ASSERT_TRUE(db->Get(ReadOptions(), 2, &got).ok());
  EXPECT_EQ(db->GetStats().num_vectors, 1u);
}

TEST(DBTest, ExactSearchMatchesBruteForceForEveryMetric) {
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    test::TempDir dir;
    Options o = SmallOptions(16, m);
    o.ivf_train_threshold = 1 << 30;  // stay flat: exact
    auto db = OpenOrDie(o, dir.path());
    const size_t n = 300, d = 16;
    auto base = RandomVectors(n, d, 1);
    auto queries = RandomVectors(20, d, 2);
    WriteBatch batch;
    for (size_t i = 0; i < n; ++i) batch.Put(i, std::span<const float>(&base[i * d], d));
    ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
    auto gt = test::BruteForceKnn(m, base, queries, d, 10);
    std::vector<std::vector<Neighbor>> results;
    ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 10}, queries, 20, &results).ok());
    EXPECT_DOUBLE_EQ(test::RecallAtK(results, gt, 10), 1.0) << MetricName(m);
    for (size_t q = 0; q < 20; ++q) {
      ASSERT_EQ(results[q].size(), 10u);
      for (size_t j = 1; j < results[q].size(); ++j) {
        EXPECT_LE(results[q][j - 1].distance, results[q][j].distance);
      }
      const float ref = test::RefDistance(m, &queries[q * d], &base[results[q][0].id * d], d);
      EXPECT_NEAR(results[q][0].distance, ref, 1e-3 * std::max(1.0f, std::abs(ref)));
    }
  }
}

TEST(DBTest, TrainsOnceEnoughVectorsExistAndKeepsInserting) {
  test::TempDir dir;
  auto db = OpenOrDie(SmallOptions(8), dir.path());
  auto base = RandomVectors(600, 8, 3);
  for (size_t i = 0; i < 255; ++i) {
    ASSERT_TRUE(db->Put(WriteOptions(), i, std::span<const float>(&base[i * 8], 8)).ok());
  }
  EXPECT_EQ(db->GetStats().epoch, 0u);
  EXPECT_EQ(db->GetStats().num_partitions, 1u);
  for (size_t i = 255; i < 600; ++i) {
    ASSERT_TRUE(db->Put(WriteOptions(), i, std::span<const float>(&base[i * 8], 8)).ok());
  }
  Stats st = db->GetStats();
  EXPECT_EQ(st.epoch, 1u);
  EXPECT_EQ(st.num_partitions, 8u);  // 256 / 32 at training time
  EXPECT_EQ(st.num_vectors, 600u);
  EXPECT_EQ(st.trainings, 1u);
  uint64_t sum = 0;
  for (uint64_t s : st.partition_sizes) sum += s;
  EXPECT_EQ(sum, 600u);
  // Every vector is its own nearest neighbour through the IVF path.
  for (size_t i = 0; i < 600; i += 37) {
    std::vector<Neighbor> hits;
    ASSERT_TRUE(db->Search(SearchOptions{.k = 1, .nprobe = 2},
                           std::span<const float>(&base[i * 8], 8), &hits).ok());
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].id, i);
  }
}

// Every partition a batch probes is empty (all vectors deleted after
// training): the partition-major scan has no candidates at all and must
// return empty results, not index into an empty candidate array.
TEST(DBTest, BatchSearchOverOnlyEmptyPartitionsFindsNothing) {
  test::TempDir dir;
  auto db = OpenOrDie(SmallOptions(8), dir.path());
  auto base = RandomVectors(600, 8, 5);
  for (size_t i = 0; i < 600; ++i) {
    ASSERT_TRUE(db->Put(WriteOptions(), i, std::span<const float>(&base[i * 8], 8)).ok());
  }
  ASSERT_EQ(db->GetStats().num_partitions, 8u);
  for (size_t i = 0; i < 600; ++i) ASSERT_TRUE(db->Delete(WriteOptions(), i).ok());
  ASSERT_EQ(db->GetStats().num_vectors, 0u);
  ASSERT_EQ(db->GetStats().num_partitions, 8u);  // still probed, now all empty
  const size_t nq = 64;  // 64 queries x 2 probes >= 4 per partition: the partition-major scan
  std::vector<std::vector<Neighbor>> hits;
  ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 5, .nprobe = 2},
                              std::span<const float>(base.data(), nq * 8), nq, &hits)
                  .ok());
  ASSERT_EQ(hits.size(), nq);
  for (const auto& h : hits) EXPECT_TRUE(h.empty());
}

TEST(DBTest, ReindexAdvancesEpochAndReportsProgress) {
  test::TempDir dir;
  auto db = OpenOrDie(SmallOptions(8), dir.path());
  auto base = RandomVectors(400, 8, 4);
  WriteBatch batch;
  for (size_t i = 0; i < 400; ++i) batch.Put(i, std::span<const float>(&base[i * 8], 8));
  ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
  const uint64_t before = db->GetStats().epoch;
  std::vector<std::string> phases;
  Status s = db->Reindex(ReindexOptions{.partitions = 5, .iterations = 4},
                         [&](const ReindexProgress& p) {
                           if (phases.empty() || phases.back() != p.phase) {
                             phases.emplace_back(p.phase);
                           }
                           return true;
                         });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(db->GetStats().epoch, before + 1);
  EXPECT_EQ(db->GetStats().num_partitions, 5u);
  EXPECT_EQ(phases, (std::vector<std::string>{"gather", "kmeans", "assign", "persist"}));

  // Aborting leaves the index as it was.
  s = db->Reindex(ReindexOptions{.partitions = 3},
                  [](const ReindexProgress& p) { return p.phase != "kmeans"; });
  EXPECT_TRUE(s.IsAborted()) << s.ToString();
  EXPECT_EQ(db->GetStats().epoch, before + 1);
  EXPECT_EQ(db->GetStats().num_partitions, 5u);
}

TEST(DBTest, ReopenRestoresVectorsPayloadsAndCentroids) {
  test::TempDir dir;
  auto base = RandomVectors(500, 8, 5);
  std::vector<std::vector<Neighbor>> before;
  Stats st_before;
  {
    auto db = OpenOrDie(SmallOptions(8), dir.path());
    for (size_t i = 0; i < 500; ++i) {
      ASSERT_TRUE(db->Put(WriteOptions(), 1000 + i, std::span<const float>(&base[i * 8], 8),
                          "p" + std::to_string(i))
                      .ok());
    }
    ASSERT_TRUE(db->Delete(WriteOptions(), 1000).ok());
    ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 5, .nprobe = 3},
                                std::span<const float>(base.data(), 80), 10, &before)
                    .ok());
    st_before = db->GetStats();
    ASSERT_TRUE(db->Close().ok());
    std::vector<float> v;
    EXPECT_TRUE(db->Get(ReadOptions(), 1001, &v).IsInvalidArgument());  // closed
  }
  Options o = SmallOptions(0);  // dim 0: take the stored one
  auto db = OpenOrDie(o, dir.path());
  Stats st = db->GetStats();
  EXPECT_EQ(st.dim, 8u);
  EXPECT_EQ(st.num_vectors, 499u);
  EXPECT_EQ(st.epoch, st_before.epoch);
  EXPECT_EQ(st.partition_sizes, st_before.partition_sizes);  // same centroids
  std::vector<float> v;
  std::string payload;
  ASSERT_TRUE(db->Get(ReadOptions(), 1007, &v, &payload).ok());
  EXPECT_EQ(payload, "p7");
  EXPECT_EQ(v, std::vector<float>(base.begin() + 56, base.begin() + 64));
  EXPECT_TRUE(db->Get(ReadOptions(), 1000, &v).IsNotFound());
  std::vector<std::vector<Neighbor>> after;
  ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 5, .nprobe = 3},
                              std::span<const float>(base.data(), 80), 10, &after)
                  .ok());
  for (size_t q = 0; q < 10; ++q) {
    ASSERT_EQ(after[q].size(), before[q].size());
    for (size_t j = 0; j < after[q].size(); ++j) EXPECT_EQ(after[q][j].id, before[q][j].id);
  }
}

TEST(DBTest, PartitionSizeIsStoredWithTheDb) {
  test::TempDir dir;
  auto base = RandomVectors(640, 8, 9);
  {
    Options o = SmallOptions(8);
    o.target_partition_size = 64;
    auto db = OpenOrDie(o, dir.path());
    WriteBatch batch;
    for (size_t i = 0; i < 640; ++i) batch.Put(i, std::span<const float>(&base[i * 8], 8));
    ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
  }
  Options o = SmallOptions(8);
  o.target_partition_size = 0;  // take the stored 64
  auto db = OpenOrDie(o, dir.path());
  ASSERT_TRUE(db->Reindex(ReindexOptions{.iterations = 2}).ok());
  EXPECT_EQ(db->GetStats().num_partitions, 10u);  // 640 / 64
}

TEST(DBTest, ReadOnlyInstanceReadsButRejectsWrites) {
  test::TempDir dir;
  auto base = RandomVectors(10, 4, 6);
  {
    auto db = OpenOrDie(SmallOptions(4), dir.path());
    for (size_t i = 0; i < 10; ++i) {
      ASSERT_TRUE(db->Put(WriteOptions(), i, std::span<const float>(&base[i * 4], 4)).ok());
    }
  }
  auto writer = OpenOrDie(SmallOptions(4), dir.path());
  Options ro = SmallOptions(4);
  ro.read_only = true;
  auto reader = OpenOrDie(ro, dir.path());
  std::vector<float> v;
  EXPECT_TRUE(reader->Get(ReadOptions(), 3, &v).ok());
  EXPECT_TRUE(reader->Put(WriteOptions(), 11, v).IsNotSupported());
  EXPECT_TRUE(reader->Delete(WriteOptions(), 3).IsNotSupported());
  EXPECT_TRUE(reader->Reindex(ReindexOptions()).IsNotSupported());
  std::vector<Neighbor> hits;
  ASSERT_TRUE(reader->Search(SearchOptions{.k = 1}, v, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].id, 3u);
}

}  // namespace
}  // namespace quiver
