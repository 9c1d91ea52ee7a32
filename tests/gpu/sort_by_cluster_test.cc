// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The bucket placement that sorts (label, point) pairs by label
// (SortByCluster, update.cu), against its contract: keys come out in
// ascending order, each pair exactly once, its key the point's label.
// Labels: uniform, one hot label holding 40% of the points, all one label,
// only every third label used (empty buckets); key spaces from 2 to 2^13
// labels (the counting sort) and 2^15, 2^17 (CUB's radix sort); item counts
// below, at and around one block's tile (8,192) and well past it.

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_kernels.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace quiver {
namespace {

enum class Labels { kUniform, kHot, kOne, kSparse };

void CheckSort(size_t items, int key_bits, Labels kind, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "items " << items << " key_bits " << key_bits << " kind "
                                  << int(kind));
  std::mt19937_64 rng(seed);
  const uint32_t nkeys = 1u << key_bits;
  std::vector<uint32_t> labels(items);
  for (size_t i = 0; i < items; ++i) {
    uint32_t l = static_cast<uint32_t>(rng() % nkeys);
    if (kind == Labels::kHot && rng() % 5 < 2) l = nkeys / 2;
    if (kind == Labels::kOne) l = nkeys - 1;
    if (kind == Labels::kSparse) l = l / 3 * 3;
    labels[i] = l;
  }
  size_t temp_bytes = 0;
  ASSERT_TRUE(kernels::cuda::SortTempBytes(items, key_bits, &temp_bytes).ok());
  uint32_t *dl, *dk, *di;
  void* dt;
  ASSERT_EQ(cudaMalloc(&dl, items * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dk, items * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&di, items * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dt, temp_bytes), cudaSuccess);
  cudaMemcpy(dl, labels.data(), items * 4, cudaMemcpyHostToDevice);
  cudaMemset(dk, 0xff, items * 4);
  cudaMemset(di, 0xff, items * 4);
  // Twice on the same buffers: the counts and cursors start afresh each call.
  for (int rep = 0; rep < 2; ++rep) {
    const Status s = kernels::cuda::SortByCluster(dl, dk, di, items, key_bits, dt, temp_bytes,
                                                  nullptr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }
  std::vector<uint32_t> keys(items), idx(items);
  cudaMemcpy(keys.data(), dk, items * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(idx.data(), di, items * 4, cudaMemcpyDeviceToHost);
  cudaFree(dl);
  cudaFree(dk);
  cudaFree(di);
  cudaFree(dt);
  std::vector<char> seen(items, 0);
  size_t bad = 0;
  for (size_t i = 0; i < items; ++i) {
    if (idx[i] >= items || seen[idx[i]] || keys[i] != labels[idx[i]] ||
        (i > 0 && keys[i] < keys[i - 1])) {
      if (++bad <= 5) ADD_FAILURE() << "slot " << i << ": key " << keys[i] << " idx " << idx[i];
      continue;
    }
    seen[idx[i]] = 1;
  }
  EXPECT_EQ(bad, 0u);
}

TEST(SortByCluster, GroupsEveryPairByLabel) {
  QUIVER_SKIP_WITHOUT_GPU("the sort-by-cluster tests");
  uint64_t seed = 11;
  for (size_t items : {size_t{1}, size_t{31}, size_t{8191}, size_t{8192}, size_t{8193},
                       size_t{100003}}) {
    CheckSort(items, 10, Labels::kUniform, seed++);
  }
  CheckSort(1 << 20, 10, Labels::kUniform, seed++);
  CheckSort(300001, 10, Labels::kHot, seed++);
  CheckSort(50000, 7, Labels::kOne, seed++);
  CheckSort(50000, 12, Labels::kSparse, seed++);
  CheckSort(70001, 1, Labels::kUniform, seed++);
  CheckSort(90001, 12, Labels::kHot, seed++);
  CheckSort(90001, 13, Labels::kHot, seed++);
  CheckSort(200003, 17, Labels::kUniform, seed++);
  CheckSort(200003, 15, Labels::kHot, seed++);
}

TEST(SortByCluster, RejectsTooLittleTemporaryStorage) {
  QUIVER_SKIP_WITHOUT_GPU("the sort-by-cluster tests");
  size_t bytes = 0;
  ASSERT_TRUE(kernels::cuda::SortTempBytes(1000, 10, &bytes).ok());
  EXPECT_FALSE(kernels::cuda::SortByCluster(nullptr, nullptr, nullptr, 1000, 10, nullptr,
                                            bytes - 1, nullptr)
                   .ok());
}

}  // namespace
}  // namespace quiver
