// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Recall of the IVF search on real data: SIFT 5K (4,500 base vectors, 500
// queries), exact ground truth computed here.

#include <gtest/gtest.h>

#include <cstdio>

#include "quiver/db.h"
#include "quiver/write_batch.h"
#include "test_util.h"

namespace quiver {
namespace {

// The documented operating point: 4,500 SIFT vectors in partitions of
// about 64 (70 partitions), nprobe = 12 gives recall@10 >= 0.95.
constexpr uint32_t kNprobe = 12;

TEST(SearchRecallTest, Sift5kRecallAt10) {
  test::Sift5k sift = test::LoadSift5k();
  ASSERT_TRUE(sift.ok()) << "SIFT 5K not found under " << test::DataDir();
  test::TempDir dir;
  Options o;
  o.dim = 128;
  o.device = Device::kCpu;
  o.target_partition_size = 64;
  o.ivf_train_threshold = 4500;
  o.background_maintenance = false;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());
  WriteBatch batch;
  for (size_t i = 0; i < sift.nb; ++i) {
    batch.Put(i, std::span<const float>(&sift.base[i * 128], 128));
    if (batch.Count() == 500) {
      ASSERT_TRUE(db->Write(WriteOptions(), &batch).ok());
      batch.Clear();
    }
  }
  Stats st = db->GetStats();
  ASSERT_EQ(st.num_vectors, 4500u);
  ASSERT_EQ(st.epoch, 1u);
  ASSERT_EQ(st.num_partitions, 70u);

  auto gt = test::BruteForceKnn(Metric::kL2, sift.base, sift.queries, 128, 10);
  std::vector<std::vector<Neighbor>> results;
  ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 10, .nprobe = kNprobe}, sift.queries, sift.nq,
                              &results)
                  .ok());
  const double recall = test::RecallAtK(results, gt, 10);
  EXPECT_GE(recall, 0.95) << "nprobe " << kNprobe;

  // Exact search finds the ground truth itself.
  ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 10, .exact = true}, sift.queries, sift.nq,
                              &results)
                  .ok());
  EXPECT_GE(test::RecallAtK(results, gt, 10), 0.999);

  // More probes never lose recall on this data.
  double last = 0;
  for (uint32_t nprobe : {1u, 4u, 8u, 12u, 16u, 70u}) {
    ASSERT_TRUE(db->SearchBatch(SearchOptions{.k = 10, .nprobe = nprobe}, sift.queries,
                                sift.nq, &results)
                    .ok());
    const double r = test::RecallAtK(results, gt, 10);
    std::printf("nprobe %u recall@10 %.4f\n", nprobe, r);
    EXPECT_GE(r + 1e-9, last) << "nprobe " << nprobe;
    last = r;
  }
}

}  // namespace
}  // namespace quiver
