// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The fused assignment kernels directly (kernels/cuda/kmeans_kernels.cuh):
// the Hopper wgmma kernels (assign_wgmma.cu: fp16 / bf16 / TF32 rows of 64
// or 128, and fp16 / bf16 rows of any multiple of 64) against a float64 reference on the same rounded operands and
// against the v1 mma.sync kernel (QUIVER_ASSIGN=v1), with every output
// poisoned first. TF32 points are given unrounded (the kernels round them),
// centroids TF32-rounded, as the update stores them.
// On a GPU the wgmma kernel does not cover (not sm_90) both runs are v1.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_kernels.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace quiver::kernels::cuda {
bool WgmmaAssignCovers(Arith arith, const AssignArgs& args);
}

namespace quiver {
namespace {

using kernels::cuda::Arith;
using kernels::cuda::AssignArgs;

struct Out {
  std::vector<uint32_t> labels;
  std::vector<float> dist;
  std::vector<double> obj;
};

// cvt.rna.tf32.f32 for finite v: nearest, ties away from zero.
float RoundTf32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}

// Stores v as the kernel copy of `a` holds it at dst (element i) and returns
// the value the products use. Points in TF32 are stored as given.
float Store(float v, Arith a, bool point, std::vector<uint8_t>* dst, size_t i) {
  if (a == Arith::kTf32) {
    const float stored = point ? v : RoundTf32(v);
    std::memcpy(dst->data() + 4 * i, &stored, 4);
    return RoundTf32(v);
  }
  if (a == Arith::kF16) {
    const __half h = __float2half_rn(v);
    std::memcpy(dst->data() + 2 * i, &h, 2);
    return __half2float(h);
  }
  const __nv_bfloat16 h = __float2bfloat16_rn(v);
  std::memcpy(dst->data() + 2 * i, &h, 2);
  return __bfloat162float(h);
}

void CheckShape(Arith arith, int metric, size_t n, size_t d, size_t k, int batch,
                uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "arith " << int(arith) << " metric " << metric << " n "
                                  << n << " d " << d << " k " << k << " batch " << batch);
  const size_t ld = d;  // 64, 128 or a multiple of 64 here
  const size_t kpad = (k + 127) / 128 * 128;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  // Points near the centroids (clustered, so argmins are meaningful), with
  // a few exact duplicates of centroids (ties of the distance to 0).
  const size_t eb = kernels::cuda::ArithBytes(arith);
  std::vector<uint8_t> xb(batch * n * ld * eb), cb(batch * kpad * ld * eb, 0);
  std::vector<float> xr(batch * n * ld), cr(batch * kpad * ld, 0.f);
  std::vector<float> cbias(batch * kpad, std::numeric_limits<float>::infinity());
  std::vector<float> xnorm(batch * n);
  for (int b = 0; b < batch; ++b) {
    for (size_t j = 0; j < k; ++j) {
      double s = 0;
      for (size_t e = 0; e < d; ++e) {
        const size_t o = (b * kpad + j) * ld + e;
        cr[o] = Store(g(rng), arith, false, &cb, o);
        s += double(cr[o]) * cr[o];
      }
      cbias[b * kpad + j] = metric == 0 ? float(s) : 0.f;
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t j = rng() % k;
      double s = 0;
      for (size_t e = 0; e < d; ++e) {
        const size_t o = (b * n + i) * ld + e;
        const float v = (i % 97 == 0) ? cr[(b * kpad + j) * ld + e]
                                      : cr[(b * kpad + j) * ld + e] + 0.5f * g(rng);
        xr[o] = Store(v, arith, true, &xb, o);
        // ||x||^2 of the stored point, as the driver computes it.
        const float stored = arith == Arith::kTf32 ? v : xr[o];
        s += double(stored) * stored;
      }
      xnorm[b * n + i] = float(s);
    }
  }
  void *dx, *dc;
  float *dbias, *dxn, *ddist;
  uint32_t* dlab;
  double* dobj;
  ASSERT_EQ(cudaMalloc(&dx, xb.size()), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dc, cb.size()), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dbias, cbias.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dxn, xnorm.size() * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&ddist, batch * n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dlab, batch * n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dobj, batch * 8), cudaSuccess);
  cudaMemcpy(dx, xb.data(), xb.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(dc, cb.data(), cb.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(dbias, cbias.data(), cbias.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dxn, xnorm.data(), xnorm.size() * 4, cudaMemcpyHostToDevice);

  AssignArgs a;
  a.x = dx;
  a.n = n;
  a.batch = batch;
  a.c = dc;
  a.cbias = dbias;
  a.ld = ld;
  a.kpad = int(kpad);
  a.k = int(k);
  a.alpha = metric == 0 ? -2.f : -1.f;
  a.metric = metric;
  a.xnorm = dxn;
  a.labels = dlab;
  a.dist = ddist;
  a.objective = dobj;
  const bool covered = kernels::cuda::WgmmaAssignCovers(arith, a);
  int dev = 0, major = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (major == 9) EXPECT_TRUE(covered) << "the wgmma kernel should take this shape";

  auto run = [&](bool v1, Out* o) {
    if (v1) setenv("QUIVER_ASSIGN", "v1", 1);
    cudaMemset(dlab, 0xff, batch * n * 4);   // poison: label 0xffffffff
    cudaMemset(ddist, 0xff, batch * n * 4);  // poison: NaN
    cudaMemset(dobj, 0, batch * 8);
    const Status s = kernels::cuda::LaunchAssign(arith, a, nullptr);
    if (v1) unsetenv("QUIVER_ASSIGN");
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    o->labels.resize(batch * n);
    o->dist.resize(batch * n);
    o->obj.resize(batch);
    cudaMemcpy(o->labels.data(), dlab, batch * n * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(o->dist.data(), ddist, batch * n * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(o->obj.data(), dobj, batch * 8, cudaMemcpyDeviceToHost);
  };
  Out w, v;
  run(false, &w);
  run(true, &v);
  size_t hard = 0, differ = 0;
  for (int b = 0; b < batch; ++b) {
    double obj = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t gi = b * n + i;
      const uint32_t lab = w.labels[gi];
      ASSERT_GE(lab, uint32_t(b * k)) << "row " << gi;
      ASSERT_LT(lab, uint32_t((b + 1) * k)) << "row " << gi;
      ASSERT_TRUE(std::isfinite(w.dist[gi])) << "row " << gi;
      // float64 reference scores on the same rounded operands.
      double best = std::numeric_limits<double>::infinity(), mine = 0;
      for (size_t j = 0; j < k; ++j) {
        double dot = 0;
        for (size_t e = 0; e < d; ++e) {
          dot += double(xr[gi * ld + e]) * cr[(b * kpad + j) * ld + e];
        }
        const double sc = double(cbias[b * kpad + j]) + a.alpha * dot;
        best = std::min(best, sc);
        if (j == lab - b * k) mine = sc;
      }
      const double scale = metric == 0 ? double(xnorm[gi]) + 1.0 : 1.0 + std::abs(best);
      if (mine - best > 1e-4 * scale) ++hard;
      const double ref_dist = metric == 0 ? std::max(0.0, xnorm[gi] + mine)
                              : metric == 1 ? mine : 1.0 + mine;
      EXPECT_NEAR(w.dist[gi], ref_dist, 1e-4 * scale) << "row " << gi;
      obj += w.dist[gi];
      if (lab != v.labels[gi]) ++differ;
      else EXPECT_NEAR(w.dist[gi], v.dist[gi], 1e-5 * scale) << "row " << gi;
    }
    EXPECT_NEAR(w.obj[b], obj, 1e-6 * std::abs(obj) + 1e-3);
    EXPECT_NEAR(w.obj[b], v.obj[b], 1e-5 * std::abs(v.obj[b]) + 1e-3);
  }
  EXPECT_EQ(hard, 0u);
  EXPECT_LE(differ, batch * n / 100 + 1) << "labels differing from v1";
  cudaFree(dx);
  cudaFree(dc);
  cudaFree(dbias);
  cudaFree(dxn);
  cudaFree(ddist);
  cudaFree(dlab);
  cudaFree(dobj);
}

TEST(AssignKernel, WgmmaMatchesReferenceAndV1) {
  QUIVER_SKIP_WITHOUT_GPU("the assignment kernel tests");
  CheckShape(Arith::kF16, 0, 1000, 128, 300, 1, 1);    // k tiles odd, n not a tile multiple
  CheckShape(Arith::kF16, 0, 20000, 128, 1024, 1, 2);  // key shape's d and k, many tiles
  CheckShape(Arith::kBf16, 0, 777, 64, 129, 2, 3);     // rows of 64, batch 2
  CheckShape(Arith::kF16, 1, 3000, 128, 200, 1, 4);    // inner product
  CheckShape(Arith::kBf16, 2, 513, 128, 64, 3, 5);     // cosine scores, batch 3
  CheckShape(Arith::kF16, 0, 50, 64, 5, 1, 6);         // fewer points than a tile
  // Rows longer than 128 elements: both operands streamed along D.
  CheckShape(Arith::kF16, 0, 3000, 768, 300, 1, 7);    // ld 768, odd k tiles
  CheckShape(Arith::kBf16, 1, 777, 192, 129, 2, 8);    // ld 192, inner product, batch 2
  CheckShape(Arith::kF16, 2, 50, 256, 5, 1, 9);        // cosine, fewer points than a tile
}

TEST(AssignKernel, WgmmaTf32MatchesReferenceAndV1) {
  QUIVER_SKIP_WITHOUT_GPU("the assignment kernel tests");
  CheckShape(Arith::kTf32, 0, 1000, 128, 300, 1, 11);    // odd k tiles, partial point tile
  CheckShape(Arith::kTf32, 0, 20000, 128, 1024, 1, 12);  // key shape's d and k
  CheckShape(Arith::kTf32, 0, 777, 64, 129, 2, 13);      // rows of 64, batch 2
  CheckShape(Arith::kTf32, 1, 3000, 128, 200, 1, 14);    // inner product
  CheckShape(Arith::kTf32, 2, 513, 128, 64, 3, 15);      // cosine scores, batch 3
  CheckShape(Arith::kTf32, 0, 50, 64, 5, 1, 16);         // fewer points than a tile
  CheckShape(Arith::kTf32, 0, 300, 128, 128, 1, 17);     // one centroid tile: ring of one
}

}  // namespace
}  // namespace quiver
