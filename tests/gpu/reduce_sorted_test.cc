// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The sorted-segment reduction (LaunchReduceSorted, update.cu) directly:
// random rows, skewed labels (one hot cluster spanning many warp slices,
// empty clusters, several problems' keys), sorted on the host, reduced on
// the GPU into sums / counts that already hold values (the kernel adds),
// against a float64 host sum. Covers the 16-byte-per-lane path (fp16 / bf16
// rows of 64 and 128, fp32 rows of 128, partial last chunks, d % 4 != 0,
// rows over 32 chunks, summed 32 chunks at a time) and the fallback kernel
// (QUIVER_REDUCE=v1). Item counts that are not multiples of 32 exercise the
// partial last chunk of a warp's slice.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_kernels.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace quiver {
namespace {

using kernels::cuda::Elem;

void CheckReduce(Elem elem, size_t items, size_t d, size_t ld, size_t keys, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "elem " << int(elem) << " items " << items << " d " << d
                                  << " ld " << ld << " keys " << keys);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  const size_t esize = elem == Elem::kF32 ? 4 : 2;
  std::vector<unsigned char> xh(items * ld * esize);
  std::vector<double> xv(items * d);
  for (size_t i = 0; i < items; ++i) {
    for (size_t j = 0; j < ld; ++j) {
      const float v = j < d ? u(rng) : std::nanf("");  // padding must not leak
      float back = v;
      unsigned char* dst = xh.data() + (i * ld + j) * esize;
      if (elem == Elem::kF32) {
        std::memcpy(dst, &v, 4);
      } else if (elem == Elem::kF16) {
        const __half h = __float2half_rn(v);
        std::memcpy(dst, &h, 2);
        back = __half2float(h);
      } else {
        const __nv_bfloat16 h = __float2bfloat16_rn(v);
        std::memcpy(dst, &h, 2);
        back = __bfloat162float(h);
      }
      if (j < d) xv[i * d + j] = back;
    }
  }
  // Labels: 40% in one hot cluster, the rest uniform over the even keys
  // (odd keys stay empty).
  std::vector<uint32_t> label(items);
  std::uniform_int_distribution<size_t> pick(0, keys - 1);
  std::bernoulli_distribution hot(0.4);
  for (auto& l : label) l = hot(rng) ? static_cast<uint32_t>(keys / 2) : pick(rng) & ~size_t{1};
  std::vector<uint32_t> order(items);
  std::iota(order.begin(), order.end(), 0u);
  std::shuffle(order.begin(), order.end(), rng);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return label[a] < label[b]; });
  std::vector<uint32_t> ks(items);
  for (size_t i = 0; i < items; ++i) ks[i] = label[order[i]];

  std::vector<double> want(keys * d, 0.5);
  std::vector<int> want_n(keys, 3);
  for (size_t i = 0; i < items; ++i) {
    ++want_n[label[i]];
    for (size_t j = 0; j < d; ++j) want[label[i] * d + j] += xv[i * d + j];
  }

  void* dx = nullptr;
  uint32_t *dk = nullptr, *di = nullptr;
  float* ds = nullptr;
  int* dn = nullptr;
  ASSERT_EQ(cudaMalloc(&dx, xh.size()), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dk, items * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&di, items * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&ds, keys * d * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dn, keys * 4), cudaSuccess);
  std::vector<float> s0(keys * d, 0.5f);
  std::vector<int> n0(keys, 3);
  cudaMemcpy(dx, xh.data(), xh.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(dk, ks.data(), items * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(di, order.data(), items * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(ds, s0.data(), s0.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dn, n0.data(), n0.size() * 4, cudaMemcpyHostToDevice);
  ASSERT_TRUE(kernels::cuda::LaunchReduceSorted(dx, elem, ld, d, dk, di, items, ds, dn, nullptr,
                                                nullptr)
                  .ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> got(keys * d);
  std::vector<int> got_n(keys);
  cudaMemcpy(got.data(), ds, got.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(got_n.data(), dn, got_n.size() * 4, cudaMemcpyDeviceToHost);
  cudaFree(dx);
  cudaFree(dk);
  cudaFree(di);
  cudaFree(ds);
  cudaFree(dn);
  EXPECT_EQ(got_n, want_n);
  size_t bad = 0;
  for (size_t j = 0; j < keys; ++j) {
    const double tol = 1e-5 * (want_n[j] + 1) * 2.0 + 1e-4;
    for (size_t e = 0; e < d; ++e) {
      const double w = want[j * d + e], g = got[j * d + e];
      if (!(std::fabs(w - g) <= tol) && bad++ < 5) {
        ADD_FAILURE() << "key " << j << " dim " << e << " want " << w << " got " << g;
      }
    }
  }
  EXPECT_EQ(bad, 0u);
}

TEST(ReduceSorted, MatchesHostSums) {
  QUIVER_SKIP_WITHOUT_GPU("the sorted-reduction tests");
  uint64_t seed = 7;
  // 16-byte-per-lane path.
  CheckReduce(Elem::kF16, 100003, 128, 128, 64, seed++);
  CheckReduce(Elem::kBf16, 20011, 128, 128, 300, seed++);
  CheckReduce(Elem::kF16, 30001, 64, 64, 50, seed++);
  CheckReduce(Elem::kF32, 20000, 128, 128, 40, seed++);
  CheckReduce(Elem::kF16, 7777, 100, 104, 33, seed++);   // partial last chunk
  CheckReduce(Elem::kF32, 5001, 30, 32, 17, seed++);     // d % 4 != 0: scalar atomics
  CheckReduce(Elem::kF16, 17, 16, 16, 3, seed++);        // fewer items than a warp step
  CheckReduce(Elem::kBf16, 4096, 24, 24, 2048, seed++);  // 4 lanes a row, many segments
  CheckReduce(Elem::kF32, 3001, 33, 36, 20, seed++);     // 9 chunks: 16 lanes, 7 idle
  // Rows over 32 chunks: four walks of 32, 32, 32 and 2 chunks.
  CheckReduce(Elem::kF16, 3001, 784, 784, 20, seed++);   // 98 chunks a row
  CheckReduce(Elem::kF32, 2003, 300, 300, 9, seed++);    // 75 chunks, d % 4 == 0
  // Fallback kernel.
  setenv("QUIVER_REDUCE", "v1", 1);
  CheckReduce(Elem::kF16, 3001, 784, 784, 20, seed++);
  CheckReduce(Elem::kF16, 7777, 100, 104, 33, seed++);
  unsetenv("QUIVER_REDUCE");
}

}  // namespace
}  // namespace quiver
