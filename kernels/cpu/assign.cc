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
#include "kernels/cpu/assign_tiles.h"
#include "kernels/cpu/distance.h"
#include "kernels/cpu/simd_avx2.h"
#include "kernels/cpu/topk.h"

namespace quiver::kernels {
namespace {

using tiles::kInf;
using tiles::kMR;
using tiles::kNR;
using tiles::Packed;
#if QUIVER_X86
using tiles::BlockScratch;
using tiles::BlockTiles;
using tiles::ReduceLanes;
using tiles::TileOut;
#endif

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

// Runs fn(b0, b1, scratch) for the blocks [b0, b1) of BlockPoints(n, d)
// points that cover [0, n), in parallel on oneTBB. `scratch` is one
// BlockScratch per task, reused by the blocks it runs (a null void* where
// there is no x86 path).
template <typename Fn>
void ForEachPointBlock(size_t n, size_t d, Fn&& fn) {
  const size_t mb = BlockPoints(n, d);
  const size_t blocks = (n + mb - 1) / mb;
  tbb::parallel_for(tbb::blocked_range<size_t>(0, blocks, 1),
                    [&](const tbb::blocked_range<size_t>& r) {
#if QUIVER_X86
                      BlockScratch scratch;
                      BlockScratch* sp = &scratch;
#else
                      void* sp = nullptr;
#endif
                      for (size_t b = r.begin(); b < r.end(); ++b) {
                        fn(b * mb, std::min(n, b * mb + mb), sp);
                      }
                    });
}

float FinalDistance(Metric metric, float value, float x_norm) {
  if (metric == Metric::kL2) return std::max(0.0f, x_norm + value);
  return value;
}

// ---------------------------------------------------------------------------
// AVX2 + FMA path.
#if QUIVER_X86

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
  BlockTiles<TileOut::kArgmin>(pk, x, nullptr, b0, b1, 0, pk.kpad / kNR, s, 0);
  for (size_t i = 0; i < m; ++i) {
    float best;
    int32_t best_id;
    ReduceLanes(s->bv.data() + i * 8, s->bi.data() + i * 8, nullptr, &best,
                &best_id, nullptr);
    labels[b0 + i] = static_cast<uint32_t>(best_id);
    if (dists != nullptr) {
      const float xn = metric == Metric::kL2
                           ? avx2::Dot(x + (b0 + i) * pk.d, x + (b0 + i) * pk.d, pk.d)
                           : 0.0f;
      dists[b0 + i] = FinalDistance(metric, best, xn);
    }
  }
}

// Top-2 of block positions [b0, b1) of `rows`.
QUIVER_AVX2 void NearestTwoBlockAvx2(const Packed& pk, const float* x,
                                     const uint32_t* rows, size_t b0,
                                     size_t b1, BlockScratch* s,
                                     uint32_t* labels, float* best,
                                     float* second) {
  const size_t m = b1 - b0;
  const size_t mpad = (m + kMR - 1) / kMR * kMR;
  s->partial.Reserve(mpad * kNR);
  s->bv.Reserve(mpad * 8);
  s->bi.Reserve(mpad * 8);
  s->bv2.Reserve(mpad * 8);
  for (size_t i = 0; i < mpad * 8; ++i) {
    s->bv[i] = kInf;
    s->bv2[i] = kInf;
    s->bi[i] = 0;
  }
  BlockTiles<TileOut::kTop2>(pk, x, rows, b0, b1, 0, pk.kpad / kNR, s, 0);
  for (size_t i = 0; i < m; ++i) {
    int32_t id;
    ReduceLanes(s->bv.data() + i * 8, s->bi.data() + i * 8, s->bv2.data() + i * 8,
                &best[b0 + i], &id, &second[b0 + i]);
    labels[b0 + i] = static_cast<uint32_t>(id);
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
  if (n < kMR) {
    // A few points (a query): packing the centroids would cost as much as
    // the distances; compare directly.
    std::vector<float> buf(k);
    for (size_t i = 0; i < n; ++i) {
      DistancesToBlock(metric, x + i * d, c, k, d, buf.data());
      size_t best = 0;
      for (size_t j = 1; j < k; ++j) {
        if (buf[j] < buf[best]) best = j;
      }
      labels[i] = static_cast<uint32_t>(best);
      if (dists != nullptr) dists[i] = buf[best];
    }
    return;
  }
  Packed pk;
  Pack(metric, c, c_norms_sqr, k, d, &pk);
  const bool avx2 = simd::UseAvx2();
  ForEachPointBlock(n, d, [&](size_t b0, size_t b1, auto* scratch) {
#if QUIVER_X86
    if (avx2) {
      AssignBlockAvx2(metric, pk, x, b0, b1, scratch, labels, dists);
      return;
    }
#endif
    AssignBlockScalar(metric, pk, x, c, b0, b1, labels, dists);
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
  if (n < kMR) {
    // A few queries: direct distances, then a heap.
    std::vector<float> buf(k);
    std::vector<TopKHeap<uint32_t>::Entry> sorted;
    TopKHeap<uint32_t> heap(m);
    for (size_t i = 0; i < n; ++i) {
      DistancesToBlock(metric, x + i * d, c, k, d, buf.data());
      heap.Clear();
      for (size_t j = 0; j < k; ++j) {
        // A NaN distance (float overflow: inf - inf) ranks last, as +inf:
        // skipped, it would leave labels short of `nearest` valid rows.
        const float v = std::isnan(buf[j]) ? kInf : buf[j];
        if (v <= heap.Threshold()) heap.Push(v, static_cast<uint32_t>(j));
      }
      heap.ExtractSorted(&sorted);
      for (size_t t = 0; t < nearest; ++t) {
        labels[i * nearest + t] = t < sorted.size() ? sorted[t].id : UINT32_MAX;
        if (dists != nullptr) dists[i * nearest + t] = t < sorted.size() ? sorted[t].distance : kInf;
      }
    }
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
              BlockTiles<TileOut::kValues>(pk, x, nullptr, b0, b1, p0, p1,
                                           &scratch, width);
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
                const float v = std::isnan(row[j - jbase]) ? kInf : row[j - jbase];  // as above
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

void NearestTwoL2(const float* x, size_t d, const uint32_t* rows, size_t m,
                  const float* c, const float* c_norms_sqr, size_t k,
                  uint32_t* labels, float* best, float* second) {
  if (m == 0) return;
  Packed pk;
  Pack(Metric::kL2, c, c_norms_sqr, k, d, &pk);
  const bool avx2 = simd::UseAvx2();
  ForEachPointBlock(m, d, [&](size_t b0, size_t b1, auto* scratch) {
#if QUIVER_X86
    if (avx2) {
      NearestTwoBlockAvx2(pk, x, rows, b0, b1, scratch, labels, best, second);
      return;
    }
#endif
    for (size_t t = b0; t < b1; ++t) {
      const float* xi = x + (rows != nullptr ? rows[t] : t) * d;
      float b1v = kInf, b2v = kInf;
      uint32_t id = 0;
      for (size_t j = 0; j < k; ++j) {
        const float v = pk.bias[j] - 2.0f * simd::DotScalar(xi, c + j * d, d);
        if (v < b1v) {
          b2v = b1v;
          b1v = v;
          id = static_cast<uint32_t>(j);
        } else if (v < b2v) {
          b2v = v;
        }
      }
      labels[t] = id;
      best[t] = b1v;
      second[t] = b2v;
    }
  });
}

void GroupedTop2L2(const float* x, size_t d, const uint32_t* rows, size_t m,
                   const uint64_t* masks, const float* c,
                   const float* c_norms_sqr, size_t k, size_t group_size,
                   uint32_t* idx, float* best, float* second) {
  if (m == 0) return;
  Packed pk;
  Pack(Metric::kL2, c, c_norms_sqr, k, d, &pk);
  const size_t G = (k + group_size - 1) / group_size;
  const size_t gp = group_size / kNR;  // panels per group
  const size_t num_panels = pk.kpad / kNR;
  // Larger blocks than the dense path: each group is wanted by only a part
  // of the points, and a tile needs 6 of them to be full.
  // (Still at least ~8 blocks, so that both cores get work.)
  const size_t base = BlockPoints(m, d);
  const size_t per8 = (m / 8 + kMR - 1) / kMR * kMR;
  const size_t mb = std::max(base, std::min(4 * base, per8));
  const size_t blocks = (m + mb - 1) / mb;
  const bool avx2 = simd::UseAvx2();
  tbb::parallel_for(
      tbb::blocked_range<size_t>(0, blocks, 1),
      [&](const tbb::blocked_range<size_t>& r) {
#if QUIVER_X86
        BlockScratch scratch;
#endif
        std::vector<uint32_t> sub_rows, sub_pos;
        for (size_t b = r.begin(); b < r.end(); ++b) {
          const size_t b0 = b * mb;
          const size_t b1 = std::min(m, b0 + mb);
          for (size_t g = 0; g < G; ++g) {
            sub_rows.clear();
            sub_pos.clear();
            for (size_t t = b0; t < b1; ++t) {
              if ((masks[t] >> g) & 1) {
                sub_rows.push_back(rows != nullptr ? rows[t] : uint32_t(t));
                sub_pos.push_back(uint32_t(t));
              }
            }
            const size_t cnt = sub_rows.size();
            if (cnt == 0) continue;
            const size_t p0 = g * gp, p1 = std::min(num_panels, p0 + gp);
#if QUIVER_X86
            if (avx2) {
              const size_t mpad = (cnt + kMR - 1) / kMR * kMR;
              scratch.partial.Reserve(mpad * kNR);
              scratch.bv.Reserve(mpad * 8);
              scratch.bi.Reserve(mpad * 8);
              scratch.bv2.Reserve(mpad * 8);
              for (size_t i = 0; i < mpad * 8; ++i) {
                scratch.bv[i] = kInf;
                scratch.bv2[i] = kInf;
                scratch.bi[i] = 0;
              }
              BlockTiles<TileOut::kTop2>(pk, x, sub_rows.data(), 0, cnt, p0, p1,
                                         &scratch, 0);
              for (size_t u = 0; u < cnt; ++u) {
                const size_t o = size_t(sub_pos[u]) * G + g;
                int32_t id;
                ReduceLanes(scratch.bv.data() + u * 8, scratch.bi.data() + u * 8,
                            scratch.bv2.data() + u * 8, &best[o], &id, &second[o]);
                idx[o] = uint32_t(id);
              }
              continue;
            }
#endif
            const size_t j0 = p0 * kNR, j1 = std::min(k, p1 * kNR);
            for (size_t u = 0; u < cnt; ++u) {
              const float* xi = x + size_t(sub_rows[u]) * d;
              float b1v = kInf, b2v = kInf;
              uint32_t id = uint32_t(j0);
              for (size_t j = j0; j < j1; ++j) {
                const float v = pk.bias[j] - 2.0f * simd::DotScalar(xi, c + j * d, d);
                if (v < b1v) {
                  b2v = b1v;
                  b1v = v;
                  id = uint32_t(j);
                } else if (v < b2v) {
                  b2v = v;
                }
              }
              const size_t o = size_t(sub_pos[u]) * G + g;
              idx[o] = id;
              best[o] = b1v;
              second[o] = b2v;
            }
          }
        }
      });
}

}  // namespace quiver::kernels
