// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Fused distance + argmin (and distance + top-m) of points against
// centroids. All metrics reduce to   value = bias_j + scale * <x, c_j>
//   kL2:           bias = ||c_j||^2, scale = -2  (distance = ||x||^2 + value)
//   kInnerProduct: bias = 0,         scale = -1  (distance = value)
//   kCosine:       bias = 1,         scale = -1  (distance = value)
// so the hot loop is a dot-product "GEMM" whose result never leaves the
// registers: a 6-point x 16-centroid register tile accumulated over d with
// FMA (the classic AVX2 sgemm micro-kernel shape: 12 accumulators), against
// centroids packed in panels of 16 (d x 16, contiguous), then the running
// argmin per point is updated lane-wise. Points go in blocks sized to stay
// in L2 while every centroid panel streams past them; blocks run on oneTBB.

#include "kernels/cpu/assign.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels/cpu/aligned_buffer.h"
#include "kernels/cpu/distance.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/topk.h"

namespace quiver::kernels {
namespace {

constexpr size_t kMR = 6;    // points per micro-tile
constexpr size_t kNR = 16;   // centroids per micro-tile (= per panel)
constexpr size_t kKC = 256;  // depth chunk: a panel chunk (16 KiB) stays in L1
constexpr float kInf = std::numeric_limits<float>::infinity();

// Centroids repacked for the micro-kernel: panel p holds centroids
// [16p, 16p + 16) as d rows of 16 floats. Padding centroids are zero with
// bias +inf, so they never win.
struct Packed {
  size_t k = 0, kpad = 0, d = 0;
  float scale = -2.0f;
  AlignedBuffer<float> panels;
  AlignedBuffer<float> bias;
};

void Pack(Metric metric, const float* c, const float* c_norms_sqr, size_t k,
          size_t d, Packed* p) {
  p->k = k;
  p->d = d;
  p->kpad = (k + kNR - 1) / kNR * kNR;
  p->scale = metric == Metric::kL2 ? -2.0f : -1.0f;
  p->panels.Reset(p->kpad * d);
  p->bias.Reset(p->kpad);
  const size_t num_panels = p->kpad / kNR;
  auto pack_panel = [&](size_t pj) {
    float* dst = p->panels.data() + pj * d * kNR;
    for (size_t jj = 0; jj < kNR; ++jj) {
      const size_t j = pj * kNR + jj;
      if (j < k) {
        const float* src = c + j * d;
        for (size_t q = 0; q < d; ++q) dst[q * kNR + jj] = src[q];
        float b = 0.0f;
        if (metric == Metric::kL2) {
          b = c_norms_sqr != nullptr ? c_norms_sqr[j] : NormSqr(src, d);
        } else if (metric == Metric::kCosine) {
          b = 1.0f;
        }
        p->bias[j] = b;
      } else {
        for (size_t q = 0; q < d; ++q) dst[q * kNR + jj] = 0.0f;
        p->bias[j] = kInf;
      }
    }
  };
  if (k * d >= (1u << 18)) {
    tbb::parallel_for(size_t{0}, num_panels, pack_panel);
  } else {
    for (size_t pj = 0; pj < num_panels; ++pj) pack_panel(pj);
  }
}

// Points per block: the block (MB x d floats) should stay in L2 (~256 KiB of
// it) while all the panels stream past; at least ~8 blocks per call so both
// cores get work.
size_t BlockPoints(size_t n, size_t d) {
  size_t mb = (size_t{64} * 1024) / std::max<size_t>(d, 1);
  mb = std::clamp<size_t>(mb / kMR * kMR, kMR, 600);
  const size_t per8 = (n / 8 + kMR - 1) / kMR * kMR;
  return std::max(kMR, std::min(mb, per8));
}

float FinalDistance(Metric metric, float value, float x_norm) {
  if (metric == Metric::kL2) return std::max(0.0f, x_norm + value);
  return value;
}

// ---------------------------------------------------------------------------
// AVX2 + FMA path.
#if QUIVER_X86

enum class TileOut { kPartial, kArgmin, kValues };

// One 6 x 16 tile over depth [0, len): acc = (accumulate ? tile : 0) +
// sum_q x_i[q] * panel[q][j]. Then, by kOut:
//   kPartial: acc -> tile (96 floats)
//   kArgmin:  value = bias + scale * acc; lane-wise running min into
//             bv/bi (6 rows x 8 lanes), centroid index base j0
//   kValues:  value -> out + i * out_stride (16 floats per row)
template <TileOut kOut>
QUIVER_AVX2 inline void Tile6x16(const float* const* xr, const float* panel,
                                 size_t len, float* tile, bool accumulate,
                                 const float* bias, float scale, int32_t j0,
                                 float* bv, int32_t* bi, float* out,
                                 size_t out_stride) {
  __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (accumulate) {
    c00 = _mm256_load_ps(tile + 0);   c01 = _mm256_load_ps(tile + 8);
    c10 = _mm256_load_ps(tile + 16);  c11 = _mm256_load_ps(tile + 24);
    c20 = _mm256_load_ps(tile + 32);  c21 = _mm256_load_ps(tile + 40);
    c30 = _mm256_load_ps(tile + 48);  c31 = _mm256_load_ps(tile + 56);
    c40 = _mm256_load_ps(tile + 64);  c41 = _mm256_load_ps(tile + 72);
    c50 = _mm256_load_ps(tile + 80);  c51 = _mm256_load_ps(tile + 88);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = _mm256_setzero_ps();
    c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
  }
  const float* x0 = xr[0];
  const float* x1 = xr[1];
  const float* x2 = xr[2];
  const float* x3 = xr[3];
  const float* x4 = xr[4];
  const float* x5 = xr[5];
  for (size_t q = 0; q < len; ++q) {
    const __m256 b0 = _mm256_load_ps(panel + q * kNR);
    const __m256 b1 = _mm256_load_ps(panel + q * kNR + 8);
    __m256 a = _mm256_broadcast_ss(x0 + q);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(x1 + q);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(x2 + q);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(x3 + q);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(x4 + q);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(x5 + q);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
  }
  if constexpr (kOut == TileOut::kPartial) {
    _mm256_store_ps(tile + 0, c00);   _mm256_store_ps(tile + 8, c01);
    _mm256_store_ps(tile + 16, c10);  _mm256_store_ps(tile + 24, c11);
    _mm256_store_ps(tile + 32, c20);  _mm256_store_ps(tile + 40, c21);
    _mm256_store_ps(tile + 48, c30);  _mm256_store_ps(tile + 56, c31);
    _mm256_store_ps(tile + 64, c40);  _mm256_store_ps(tile + 72, c41);
    _mm256_store_ps(tile + 80, c50);  _mm256_store_ps(tile + 88, c51);
  } else {
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 bias0 = _mm256_load_ps(bias);
    const __m256 bias1 = _mm256_load_ps(bias + 8);
    if constexpr (kOut == TileOut::kArgmin) {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i idx0 = _mm256_add_epi32(_mm256_set1_epi32(j0), lane);
      const __m256i idx1 = _mm256_add_epi32(_mm256_set1_epi32(j0 + 8), lane);
      auto update = [&](int row, __m256 v0, __m256 v1) QUIVER_AVX2 {
        __m256 best = _mm256_load_ps(bv + row * 8);
        __m256i bidx = _mm256_load_si256(reinterpret_cast<const __m256i*>(bi + row * 8));
        __m256 m = _mm256_cmp_ps(v0, best, _CMP_LT_OQ);
        best = _mm256_blendv_ps(best, v0, m);
        bidx = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx0), m));
        m = _mm256_cmp_ps(v1, best, _CMP_LT_OQ);
        best = _mm256_blendv_ps(best, v1, m);
        bidx = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx1), m));
        _mm256_store_ps(bv + row * 8, best);
        _mm256_store_si256(reinterpret_cast<__m256i*>(bi + row * 8), bidx);
      };
      update(0, _mm256_fmadd_ps(c00, vs, bias0), _mm256_fmadd_ps(c01, vs, bias1));
      update(1, _mm256_fmadd_ps(c10, vs, bias0), _mm256_fmadd_ps(c11, vs, bias1));
      update(2, _mm256_fmadd_ps(c20, vs, bias0), _mm256_fmadd_ps(c21, vs, bias1));
      update(3, _mm256_fmadd_ps(c30, vs, bias0), _mm256_fmadd_ps(c31, vs, bias1));
      update(4, _mm256_fmadd_ps(c40, vs, bias0), _mm256_fmadd_ps(c41, vs, bias1));
      update(5, _mm256_fmadd_ps(c50, vs, bias0), _mm256_fmadd_ps(c51, vs, bias1));
    } else {
      auto store = [&](int row, __m256 v0, __m256 v1) QUIVER_AVX2 {
        _mm256_storeu_ps(out + row * out_stride, v0);
        _mm256_storeu_ps(out + row * out_stride + 8, v1);
      };
      store(0, _mm256_fmadd_ps(c00, vs, bias0), _mm256_fmadd_ps(c01, vs, bias1));
      store(1, _mm256_fmadd_ps(c10, vs, bias0), _mm256_fmadd_ps(c11, vs, bias1));
      store(2, _mm256_fmadd_ps(c20, vs, bias0), _mm256_fmadd_ps(c21, vs, bias1));
      store(3, _mm256_fmadd_ps(c30, vs, bias0), _mm256_fmadd_ps(c31, vs, bias1));
      store(4, _mm256_fmadd_ps(c40, vs, bias0), _mm256_fmadd_ps(c41, vs, bias1));
      store(5, _mm256_fmadd_ps(c50, vs, bias0), _mm256_fmadd_ps(c51, vs, bias1));
    }
  }
}

// Scratch of one block, reused by the blocks a thread runs.
struct BlockScratch {
  AlignedBuffer<float> partial;  // MB/6 tiles x 96 floats
  AlignedBuffer<float> bv;       // MB x 8
  AlignedBuffer<int32_t> bi;     // MB x 8
  AlignedBuffer<float> values;   // MB x tile width (top-m path)
};

// Row pointers of the micro-tile starting at point g; rows past `end`
// repeat the last valid row (their results are ignored).
inline void RowPointers(const float* x, size_t d, size_t g, size_t end,
                        const float** xr) {
  for (size_t r = 0; r < kMR; ++r) {
    const size_t i = std::min(g + r, end - 1);
    xr[r] = x + i * d;
  }
}

// Runs the tiles of points [b0, b1) against panels [p0, p1), over the full
// depth in chunks of kKC, with output kOut (kArgmin or kValues).
template <TileOut kOut>
QUIVER_AVX2 void BlockTiles(const Packed& pk, const float* x, size_t b0,
                            size_t b1, size_t p0, size_t p1, BlockScratch* s,
                            size_t values_stride) {
  const size_t d = pk.d;
  const size_t groups = (b1 - b0 + kMR - 1) / kMR;
  const float* xr[kMR];
  for (size_t pj = p0; pj < p1; ++pj) {
    const float* panel = pk.panels.data() + pj * d * kNR;
    const float* bias = pk.bias.data() + pj * kNR;
    const int32_t j0 = static_cast<int32_t>(pj * kNR);
    for (size_t q0 = 0; q0 < d; q0 += kKC) {
      const size_t len = std::min(kKC, d - q0);
      const bool first = q0 == 0;
      const bool last = q0 + len == d;
      for (size_t g = 0; g < groups; ++g) {
        RowPointers(x, d, b0 + g * kMR, b1, xr);
        for (size_t r = 0; r < kMR; ++r) xr[r] += q0;
        float* tile = s->partial.data() + g * kMR * kNR;
        if (!last) {
          Tile6x16<TileOut::kPartial>(xr, panel + q0 * kNR, len, tile, !first,
                                      nullptr, 0.0f, 0, nullptr, nullptr,
                                      nullptr, 0);
        } else if constexpr (kOut == TileOut::kArgmin) {
          Tile6x16<TileOut::kArgmin>(xr, panel + q0 * kNR, len, tile, !first,
                                     bias, pk.scale, j0,
                                     s->bv.data() + g * kMR * 8,
                                     s->bi.data() + g * kMR * 8, nullptr, 0);
        } else {
          Tile6x16<TileOut::kValues>(
              xr, panel + q0 * kNR, len, tile, !first, bias, pk.scale, 0,
              nullptr, nullptr,
              s->values.data() + g * kMR * values_stride + (pj - p0) * kNR,
              values_stride);
        }
      }
    }
  }
}

QUIVER_AVX2 void AssignBlockAvx2(Metric metric, const Packed& pk,
                                 const float* x, size_t b0, size_t b1,
                                 BlockScratch* s, uint32_t* labels,
                                 float* dists) {
  const size_t m = b1 - b0;
  const size_t mpad = (m + kMR - 1) / kMR * kMR;
  s->partial.Reserve(mpad * kNR);
  s->bv.Reserve(mpad * 8);
  s->bi.Reserve(mpad * 8);
  for (size_t i = 0; i < mpad * 8; ++i) {
    s->bv[i] = kInf;
    s->bi[i] = 0;
  }
  BlockTiles<TileOut::kArgmin>(pk, x, b0, b1, 0, pk.kpad / kNR, s, 0);
  for (size_t i = 0; i < m; ++i) {
    const float* v = s->bv.data() + i * 8;
    const int32_t* id = s->bi.data() + i * 8;
    float best = v[0];
    int32_t best_id = id[0];
    for (int l = 1; l < 8; ++l) {
      if (v[l] < best || (v[l] == best && id[l] < best_id)) {
        best = v[l];
        best_id = id[l];
      }
    }
    labels[b0 + i] = static_cast<uint32_t>(best_id);
    if (dists != nullptr) {
      const float xn = metric == Metric::kL2
                           ? avx2::Dot(x + (b0 + i) * pk.d, x + (b0 + i) * pk.d, pk.d)
                           : 0.0f;
      dists[b0 + i] = FinalDistance(metric, best, xn);
    }
  }
}

#endif  // QUIVER_X86

// ---------------------------------------------------------------------------
// Portable path: one dot product per (point, centroid).

void AssignBlockScalar(Metric metric, const Packed& pk, const float* x,
                       const float* c, size_t b0, size_t b1, uint32_t* labels,
                       float* dists) {
  const size_t d = pk.d;
  for (size_t i = b0; i < b1; ++i) {
    const float* xi = x + i * d;
    float best = kInf;
    uint32_t best_id = 0;
    for (size_t j = 0; j < pk.k; ++j) {
      const float v = pk.bias[j] + pk.scale * simd::DotScalar(xi, c + j * d, d);
      if (v < best) {
        best = v;
        best_id = static_cast<uint32_t>(j);
      }
    }
    labels[i] = best_id;
    if (dists != nullptr) {
      const float xn = metric == Metric::kL2 ? simd::NormSqrScalar(xi, d) : 0.0f;
      dists[i] = FinalDistance(metric, best, xn);
    }
  }
}

}  // namespace

void AssignNearest(Metric metric, const float* x, size_t n, const float* c,
                   const float* c_norms_sqr, size_t k, size_t d,
                   uint32_t* labels, float* dists) {
  if (n == 0) return;
  if (k == 0 || d == 0) {
    for (size_t i = 0; i < n; ++i) {
      labels[i] = 0;
      if (dists != nullptr) dists[i] = metric == Metric::kCosine ? 1.0f : 0.0f;
    }
    return;
  }
  Packed pk;
  Pack(metric, c, c_norms_sqr, k, d, &pk);
  const size_t mb = BlockPoints(n, d);
  const size_t blocks = (n + mb - 1) / mb;
  const bool avx2 = simd::UseAvx2();
  tbb::parallel_for(
      tbb::blocked_range<size_t>(0, blocks, 1),
      [&](const tbb::blocked_range<size_t>& r) {
#if QUIVER_X86
        BlockScratch scratch;
#endif
        for (size_t b = r.begin(); b < r.end(); ++b) {
          const size_t b0 = b * mb;
          const size_t b1 = std::min(n, b0 + mb);
#if QUIVER_X86
          if (avx2) {
            AssignBlockAvx2(metric, pk, x, b0, b1, &scratch, labels, dists);
            continue;
          }
#endif
          AssignBlockScalar(metric, pk, x, c, b0, b1, labels, dists);
        }
      });
}

void NearestCentroids(Metric metric, const float* x, size_t n, const float* c,
                      size_t k, size_t d, size_t nearest, uint32_t* labels,
                      float* dists) {
  if (n == 0 || nearest == 0) return;
  const size_t m = std::min(nearest, k);
  if (nearest == 1) {
    // The fused argmin is exactly the top-1 (ties to the smaller index).
    AssignNearest(metric, x, n, c, nullptr, k, d, labels, dists);
    return;
  }
  Packed pk;
  Pack(metric, c, nullptr, k, d, &pk);
  const size_t mb = std::min<size_t>(BlockPoints(n, d), 96);
  const size_t blocks = (n + mb - 1) / mb;
  const size_t num_panels = pk.kpad / kNR;
  constexpr size_t kTilePanels = 16;  // 256 centroids per value tile
  const bool avx2 = simd::UseAvx2();
  tbb::parallel_for(
      tbb::blocked_range<size_t>(0, blocks, 1),
      [&](const tbb::blocked_range<size_t>& r) {
        std::vector<TopKHeap<uint32_t>> heaps;
        std::vector<TopKHeap<uint32_t>::Entry> sorted;
#if QUIVER_X86
        BlockScratch scratch;
#endif
        std::vector<float> values;
        for (size_t b = r.begin(); b < r.end(); ++b) {
          const size_t b0 = b * mb;
          const size_t b1 = std::min(n, b0 + mb);
          const size_t cnt = b1 - b0;
          heaps.assign(cnt, TopKHeap<uint32_t>(m));
          for (size_t p0 = 0; p0 < num_panels; p0 += kTilePanels) {
            const size_t p1 = std::min(num_panels, p0 + kTilePanels);
            const size_t width = (p1 - p0) * kNR;
            const size_t jbase = p0 * kNR;
            const size_t jend = std::min(k, p1 * kNR);
            const float* vals = nullptr;
#if QUIVER_X86
            if (avx2) {
              const size_t mpad = (cnt + kMR - 1) / kMR * kMR;
              scratch.partial.Reserve(mpad * kNR);
              scratch.values.Reserve(mpad * width);
              BlockTiles<TileOut::kValues>(pk, x, b0, b1, p0, p1, &scratch,
                                           width);
              vals = scratch.values.data();
            }
#endif
            if (vals == nullptr) {
              values.resize(cnt * width);
              for (size_t i = 0; i < cnt; ++i) {
                for (size_t j = jbase; j < jend; ++j) {
                  values[i * width + (j - jbase)] =
                      pk.bias[j] +
                      pk.scale * simd::DotScalar(x + (b0 + i) * d, c + j * d, d);
                }
              }
              vals = values.data();
            }
            for (size_t i = 0; i < cnt; ++i) {
              TopKHeap<uint32_t>& h = heaps[i];
              const float* row = vals + i * width;
              for (size_t j = jbase; j < jend; ++j) {
                const float v = row[j - jbase];
                if (v <= h.Threshold()) h.Push(v, static_cast<uint32_t>(j));
              }
            }
          }
          for (size_t i = 0; i < cnt; ++i) {
            heaps[i].ExtractSorted(&sorted);
            const float xn = metric == Metric::kL2
                                 ? NormSqr(x + (b0 + i) * d, d)
                                 : 0.0f;
            uint32_t* lo = labels + (b0 + i) * nearest;
            float* dout = dists != nullptr ? dists + (b0 + i) * nearest : nullptr;
            for (size_t t = 0; t < nearest; ++t) {
              if (t < sorted.size()) {
                lo[t] = sorted[t].id;
                if (dout != nullptr) {
                  dout[t] = FinalDistance(metric, sorted[t].distance, xn);
                }
              } else {
                lo[t] = UINT32_MAX;
                if (dout != nullptr) dout[t] = kInf;
              }
            }
          }
        }
      });
}

}  // namespace quiver::kernels
