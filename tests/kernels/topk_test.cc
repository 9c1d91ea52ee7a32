// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cpu/topk.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

namespace quiver::kernels {
namespace {

TEST(TopKHeapTest, KeepsTheKSmallestSorted) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> small(0, 50);  // many equal distances
  for (size_t k : {0, 1, 2, 5, 64, 1000}) {
    std::vector<std::pair<float, uint64_t>> all;
    TopKHeap<uint64_t> heap(k);
    for (uint64_t id = 0; id < 500; ++id) {
      // Ids pushed in a scrambled order.
      const uint64_t scrambled = (id * 7919) % 500;
      const float dist = float(small(rng)) * 0.5f;
      all.emplace_back(dist, scrambled);
      heap.Push(dist, scrambled);
      EXPECT_LE(heap.size(), k);
    }
    std::sort(all.begin(), all.end());
    all.resize(std::min(k, all.size()));
    if (k > 0 && k <= 500) {
      EXPECT_EQ(heap.Threshold(), all.back().first);
    }
    std::vector<TopKHeap<uint64_t>::Entry> out;
    heap.ExtractSorted(&out);
    EXPECT_EQ(heap.size(), 0u);
    ASSERT_EQ(out.size(), all.size()) << "k = " << k;
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_EQ(out[i].distance, all[i].first);
      EXPECT_EQ(out[i].id, all[i].second);
    }
  }
}

TEST(TopKHeapTest, ThresholdAndMerge) {
  TopKHeap<uint32_t> a(3), b(3);
  EXPECT_EQ(a.Threshold(), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(a.Push(5.0f, 1));
  EXPECT_TRUE(a.Push(1.0f, 2));
  EXPECT_TRUE(a.Push(3.0f, 3));
  EXPECT_EQ(a.Threshold(), 5.0f);
  EXPECT_FALSE(a.Push(6.0f, 4));
  EXPECT_FALSE(a.Push(5.0f, 9));  // equal distance, larger id: not better
  EXPECT_TRUE(a.Push(5.0f, 0));   // equal distance, smaller id: better
  b.Push(0.5f, 10);
  b.Push(4.0f, 11);
  a.Merge(b);
  std::vector<TopKHeap<uint32_t>::Entry> out;
  a.ExtractSorted(&out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].id, 10u);
  EXPECT_EQ(out[1].id, 2u);
  EXPECT_EQ(out[2].id, 3u);
}

}  // namespace
}  // namespace quiver::kernels
