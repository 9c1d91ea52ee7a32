// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// IvfIndex local maintenance at the index level: a split planned off the
// writer's lock and applied under it, writes made in between, plans made
// against a replaced version, and the promise to searches that read an
// older version while maintenance goes on (each vector found exactly once).

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "index/ivf_index.h"

namespace quiver::index {
namespace {

constexpr uint32_t kDim = 8;

// n points around `center` (every component), unit normal noise.
std::vector<float> Blob(size_t n, float center, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(center, 1.0f);
  std::vector<float> v(n * kDim);
  for (auto& x : v) x = g(rng);
  return v;
}

// Every live slot of every partition of `v`, id -> how many slots hold it.
std::map<uint64_t, int> Copies(const IndexVersion& v) {
  std::map<uint64_t, int> copies;
  for (const auto& p : v.partitions) {
    const Partition::View view = p->Read();
    for (size_t s = 0; s < view.size; ++s) {
      if (!view.deleted(s)) ++copies[view.block->ids[s]];
    }
  }
  return copies;
}

void ExpectConsistent(const IvfIndex& index) {
  std::vector<std::string> problems;
  index.CheckConsistency([&](std::string p) { problems.push_back(std::move(p)); });
  EXPECT_TRUE(problems.empty()) << problems.front();
}

// Partition 0 holds two groups (at -6 and +6) around a centroid at 0;
// partitions 1 and 2 (centroids at +9 and -9) hold groups at +6.5 and
// -6.5, which a split of partition 0 puts nearer one of the halves: the
// reassignment after the split moves them into the new partitions.
class IvfMaintenanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<float> centroids(3 * kDim);
    for (uint32_t j = 0; j < kDim; ++j) {
      centroids[0 * kDim + j] = 0.0f;
      centroids[1 * kDim + j] = 9.0f;
      centroids[2 * kDim + j] = -9.0f;
    }
    std::vector<uint64_t> ids;
    std::vector<float> vectors;
    std::vector<uint32_t> labels;
    std::vector<float> dists;
    auto add = [&](const std::vector<float>& pts, uint32_t label) {
      for (size_t i = 0; i < pts.size() / kDim; ++i) {
        ids.push_back(next_id_++);
        vectors.insert(vectors.end(), pts.begin() + i * kDim, pts.begin() + (i + 1) * kDim);
        labels.push_back(label);
        dists.push_back(0.0f);
      }
    };
    add(Blob(100, -6.0f, 1), 0);
    add(Blob(100, 6.0f, 2), 0);
    add(Blob(60, 6.5f, 3), 1);
    add(Blob(60, -6.5f, 4), 2);
    index_.Publish(index_.Build(1, centroids, ids, vectors, labels, dists));
    live_ = ids.size();
  }

  IvfIndex index_{kDim, Metric::kL2};
  MaintenanceCounters counters_;
  uint64_t next_id_ = 0;
  size_t live_ = 0;
};

TEST_F(IvfMaintenanceTest, SplitAndReassignKeepAnOlderVersionWhole) {
  // A search that took the version before the split reads it to the end.
  const std::shared_ptr<const IndexVersion> before = index_.Current();

  IvfIndex::SplitPlan plan;
  ASSERT_TRUE(index_.PlanSplit(index_.Current(), 0, /*min_half=*/10, &plan));
  std::vector<uint32_t> reassign;
  ASSERT_TRUE(index_.ApplySplit(plan, /*neighbors=*/8, 10, &reassign, &counters_));
  EXPECT_EQ(index_.Current()->partitions.size(), 4u);
  const IvfIndex::ReassignPlan moves = index_.PlanReassign(index_.Current(), reassign);
  index_.ApplyReassign(moves, &counters_);
  EXPECT_EQ(counters_.splits, 1u);
  EXPECT_GE(counters_.reassigned, 100u);
  ExpectConsistent(index_);

  // Both versions hold every vector exactly once.
  for (const auto& version : {before, index_.Current()}) {
    const auto copies = Copies(*version);
    EXPECT_EQ(copies.size(), live_);
    for (const auto& [id, n] : copies) EXPECT_EQ(n, 1) << "id " << id;
  }
  // And the split separated the two groups, which took in their
  // neighbours' vectors.
  const auto sizes = index_.Stats().partition_sizes;
  EXPECT_GE(std::min(sizes[0], sizes[3]), 140u);
  EXPECT_LE(sizes[1] + sizes[2], 20u);
}

TEST_F(IvfMaintenanceTest, MergeAndCompactionKeepAnOlderVersionWhole) {
  const std::shared_ptr<const IndexVersion> before = index_.Current();
  ASSERT_TRUE(index_.Remove(0));
  ASSERT_TRUE(index_.Compact(0, &counters_));
  const std::shared_ptr<const IndexVersion> compacted = index_.Current();
  ASSERT_TRUE(index_.Merge(1, &counters_));  // partition 2 takes its place
  EXPECT_EQ(index_.Current()->partitions.size(), 2u);
  ExpectConsistent(index_);

  for (const auto& version : {before, compacted, index_.Current()}) {
    const auto copies = Copies(*version);
    // The delete is seen by every version (tombstones are shared).
    EXPECT_EQ(copies.size(), live_ - 1);
    for (const auto& [id, n] : copies) EXPECT_EQ(n, 1) << "id " << id;
  }
  EXPECT_EQ(index_.Stats().tombstones, 0u);
}

TEST_F(IvfMaintenanceTest, WritesBetweenPlanAndApplyAreKept) {
  IvfIndex::SplitPlan plan;
  ASSERT_TRUE(index_.PlanSplit(index_.Current(), 0, 10, &plan));
  // Meanwhile: a new vector lands in partition 0, one is deleted, one
  // (id 5, in partition 0) is rewritten.
  const std::vector<float> fresh = Blob(1, 0.5f, 9);
  index_.Upsert(next_id_, fresh.data());
  ASSERT_TRUE(index_.Remove(0));
  const std::vector<float> rewritten = Blob(1, -6.0f, 10);
  index_.Upsert(5, rewritten.data());

  std::vector<uint32_t> reassign;
  ASSERT_TRUE(index_.ApplySplit(plan, 8, 10, &reassign, &counters_));
  const IvfIndex::ReassignPlan moves = index_.PlanReassign(index_.Current(), reassign);
  // A write after the reassignment was planned: that plan entry is stale.
  const std::vector<float> again = Blob(1, 6.0f, 11);
  index_.Upsert(7, again.data());
  index_.ApplyReassign(moves, &counters_);
  ExpectConsistent(index_);

  EXPECT_TRUE(index_.Contains(next_id_));
  EXPECT_FALSE(index_.Contains(0));
  ASSERT_NE(index_.VectorOf(5), nullptr);
  EXPECT_EQ(std::vector<float>(index_.VectorOf(5), index_.VectorOf(5) + kDim), rewritten);
  ASSERT_NE(index_.VectorOf(7), nullptr);
  EXPECT_EQ(std::vector<float>(index_.VectorOf(7), index_.VectorOf(7) + kDim), again);
  EXPECT_EQ(index_.size(), live_);  // one added, one deleted
}

TEST_F(IvfMaintenanceTest, PlansAgainstAReplacedVersionChangeNothing) {
  IvfIndex::SplitPlan plan;
  ASSERT_TRUE(index_.PlanSplit(index_.Current(), 0, 10, &plan));
  const IvfIndex::ReassignPlan moves = index_.PlanReassign(index_.Current(), {0, 1, 2});
  // Another action publishes a new version first.
  ASSERT_TRUE(index_.Remove(200));
  ASSERT_TRUE(index_.Compact(1, &counters_));
  const std::shared_ptr<const IndexVersion> compacted = index_.Current();

  std::vector<uint32_t> reassign;
  EXPECT_FALSE(index_.ApplySplit(plan, 8, 10, &reassign, &counters_));
  EXPECT_EQ(index_.ApplyReassign(moves, &counters_), 0u);
  EXPECT_EQ(index_.Current(), compacted);
  EXPECT_EQ(counters_.splits, 0u);
  ExpectConsistent(index_);
}

TEST_F(IvfMaintenanceTest, SplitIsRefusedWhenAHalfWouldBeTooSmall) {
  IvfIndex::SplitPlan plan;
  // Each group holds 100 of partition 0's 200: a half of 150 is too much.
  EXPECT_FALSE(index_.PlanSplit(index_.Current(), 0, 150, &plan));
  // Planned with a feasible bound, applied with one the halves miss.
  ASSERT_TRUE(index_.PlanSplit(index_.Current(), 0, 10, &plan));
  std::vector<uint32_t> reassign;
  EXPECT_FALSE(index_.ApplySplit(plan, 8, 150, &reassign, &counters_));
  EXPECT_EQ(index_.Current()->partitions.size(), 3u);
  ExpectConsistent(index_);
}

}  // namespace
}  // namespace quiver::index
