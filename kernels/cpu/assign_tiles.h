// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Internal to assign.cc: the register-blocked AVX2+FMA micro-kernel of the
// fused distance + argmin / top-2 / values, and its blocking over packed
// centroid panels. A 6-point x 16-centroid tile of dot products (12 ymm
// accumulators, the classic AVX2 sgemm shape) is accumulated over d with
// FMA against a panel of 16 centroids stored d x 16, then turned into
// values bias_j + scale * <x, c_j> and reduced lane-wise in registers.

#ifndef QUIVER_KERNELS_CPU_ASSIGN_TILES_H_
#define QUIVER_KERNELS_CPU_ASSIGN_TILES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "kernels/cpu/aligned_buffer.h"
#include "kernels/cpu/simd_avx2.h"

namespace quiver::kernels::tiles {

inline constexpr size_t kMR = 6;    // points per micro-tile
inline constexpr size_t kNR = 16;   // centroids per micro-tile (= per panel)
inline constexpr size_t kKC = 256;  // depth chunk: a panel chunk (16 KiB) stays in L1
inline constexpr float kInf = std::numeric_limits<float>::infinity();

// Centroids repacked for the micro-kernel: panel p holds centroids
// [16p, 16p + 16) as d rows of 16 floats. Padding centroids are zero with
// bias +inf, so they never win.
struct Packed {
  size_t k = 0, kpad = 0, d = 0;
  float scale = -2.0f;
  AlignedBuffer<float> panels;
  AlignedBuffer<float> bias;
};

#if QUIVER_X86

enum class TileOut { kPartial, kArgmin, kTop2, kValues };

// Where a finished tile goes (the members its TileOut uses).
struct TileSink {
  float* bv = nullptr;    // kArgmin/kTop2: best value, 6 rows x 8 lanes
  int32_t* bi = nullptr;  // kArgmin/kTop2: its centroid index
  float* bv2 = nullptr;   // kTop2: second-best value per lane
  float* out = nullptr;   // kValues: row r at out + r * out_stride
  size_t out_stride = 0;
};

// One 6 x 16 tile over depth [0, len): acc = (accumulate ? tile : 0) +
// sum_q x_r[q] * panel[q][j]. Then, by kOut:
//   kPartial: acc -> tile (96 floats)
//   kArgmin:  value = bias + scale * acc; lane-wise running min into
//             sink.bv / sink.bi, centroid index base j0
//   kTop2:    as kArgmin, and the lane-wise second-smallest into sink.bv2
//   kValues:  value -> sink.out rows (16 floats per row)
// Per lane the centroid indices arrive in increasing order and only a
// strictly smaller value replaces the best, so ties keep the smaller index.
template <TileOut kOut>
QUIVER_AVX2 inline void Tile6x16(const float* const* xr, const float* panel,
                                 size_t len, float* tile, bool accumulate,
                                 const float* bias, float scale, int32_t j0,
                                 const TileSink& sink) {
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
    if constexpr (kOut == TileOut::kArgmin || kOut == TileOut::kTop2) {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i idx0 = _mm256_add_epi32(_mm256_set1_epi32(j0), lane);
      const __m256i idx1 = _mm256_add_epi32(_mm256_set1_epi32(j0 + 8), lane);
      auto update = [&](int row, __m256 v0, __m256 v1) QUIVER_AVX2 {
        float* bvp = sink.bv + row * 8;
        int32_t* bip = sink.bi + row * 8;
        __m256 best = _mm256_load_ps(bvp);
        __m256i bidx = _mm256_load_si256(reinterpret_cast<const __m256i*>(bip));
        __m256 m0 = _mm256_cmp_ps(v0, best, _CMP_LT_OQ);
        if constexpr (kOut == TileOut::kTop2) {
          float* bv2p = sink.bv2 + row * 8;
          __m256 second = _mm256_load_ps(bv2p);
          // second' = v < best ? best : min(second, v)
          second = _mm256_blendv_ps(_mm256_min_ps(second, v0), best, m0);
          best = _mm256_blendv_ps(best, v0, m0);
          bidx = _mm256_castps_si256(_mm256_blendv_ps(
              _mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx0), m0));
          const __m256 m1 = _mm256_cmp_ps(v1, best, _CMP_LT_OQ);
          second = _mm256_blendv_ps(_mm256_min_ps(second, v1), best, m1);
          best = _mm256_blendv_ps(best, v1, m1);
          bidx = _mm256_castps_si256(_mm256_blendv_ps(
              _mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx1), m1));
          _mm256_store_ps(bv2p, second);
        } else {
          best = _mm256_blendv_ps(best, v0, m0);
          bidx = _mm256_castps_si256(_mm256_blendv_ps(
              _mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx0), m0));
          const __m256 m1 = _mm256_cmp_ps(v1, best, _CMP_LT_OQ);
          best = _mm256_blendv_ps(best, v1, m1);
          bidx = _mm256_castps_si256(_mm256_blendv_ps(
              _mm256_castsi256_ps(bidx), _mm256_castsi256_ps(idx1), m1));
        }
        _mm256_store_ps(bvp, best);
        _mm256_store_si256(reinterpret_cast<__m256i*>(bip), bidx);
      };
      update(0, _mm256_fmadd_ps(c00, vs, bias0), _mm256_fmadd_ps(c01, vs, bias1));
      update(1, _mm256_fmadd_ps(c10, vs, bias0), _mm256_fmadd_ps(c11, vs, bias1));
      update(2, _mm256_fmadd_ps(c20, vs, bias0), _mm256_fmadd_ps(c21, vs, bias1));
      update(3, _mm256_fmadd_ps(c30, vs, bias0), _mm256_fmadd_ps(c31, vs, bias1));
      update(4, _mm256_fmadd_ps(c40, vs, bias0), _mm256_fmadd_ps(c41, vs, bias1));
      update(5, _mm256_fmadd_ps(c50, vs, bias0), _mm256_fmadd_ps(c51, vs, bias1));
    } else {
      auto store = [&](int row, __m256 v0, __m256 v1) QUIVER_AVX2 {
        _mm256_storeu_ps(sink.out + row * sink.out_stride, v0);
        _mm256_storeu_ps(sink.out + row * sink.out_stride + 8, v1);
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
  AlignedBuffer<float> bv2;      // MB x 8 (top-2 only)
  AlignedBuffer<float> values;   // MB x tile width (top-m path)
};

// Row pointers of the micro-tile starting at position g of the block; the
// points are x rows g.. (or rows[g..] when rows is not null); positions
// past `end` repeat the last valid one (their results are ignored).
inline void RowPointers(const float* x, const uint32_t* rows, size_t d,
                        size_t g, size_t end, const float** xr) {
  for (size_t r = 0; r < kMR; ++r) {
    const size_t t = std::min(g + r, end - 1);
    const size_t i = rows != nullptr ? rows[t] : t;
    xr[r] = x + i * d;
  }
}

// Runs the tiles of block positions [b0, b1) against panels [p0, p1), over
// the full depth in chunks of kKC, with output kOut (not kPartial).
template <TileOut kOut>
QUIVER_AVX2 inline void BlockTiles(const Packed& pk, const float* x,
                            const uint32_t* rows, size_t b0, size_t b1,
                            size_t p0, size_t p1, BlockScratch* s,
                            size_t values_stride) {
  const size_t d = pk.d;
  const size_t groups = (b1 - b0 + kMR - 1) / kMR;
  // Equal depth chunks (a multiple of 8 where possible) of at most kKC.
  const size_t nchunks = (d + kKC - 1) / kKC;
  const size_t chunk = nchunks == 1 ? d : ((d + nchunks - 1) / nchunks + 7) / 8 * 8;
  const float* xr[kMR];
  for (size_t pj = p0; pj < p1; ++pj) {
    const float* panel = pk.panels.data() + pj * d * kNR;
    const float* bias = pk.bias.data() + pj * kNR;
    const int32_t j0 = static_cast<int32_t>(pj * kNR);
    for (size_t q0 = 0; q0 < d; q0 += chunk) {
      const size_t len = std::min(chunk, d - q0);
      const bool first = q0 == 0;
      const bool last = q0 + len == d;
      for (size_t g = 0; g < groups; ++g) {
        RowPointers(x, rows, d, b0 + g * kMR, b1, xr);
        for (size_t r = 0; r < kMR; ++r) xr[r] += q0;
        float* tile = s->partial.data() + g * kMR * kNR;
        TileSink sink;
        if (!last) {
          Tile6x16<TileOut::kPartial>(xr, panel + q0 * kNR, len, tile, !first,
                                      nullptr, 0.0f, 0, sink);
          continue;
        }
        if constexpr (kOut == TileOut::kValues) {
          sink.out = s->values.data() + g * kMR * values_stride + (pj - p0) * kNR;
          sink.out_stride = values_stride;
        } else {
          sink.bv = s->bv.data() + g * kMR * 8;
          sink.bi = s->bi.data() + g * kMR * 8;
          if constexpr (kOut == TileOut::kTop2) sink.bv2 = s->bv2.data() + g * kMR * 8;
        }
        Tile6x16<kOut>(xr, panel + q0 * kNR, len, tile, !first, bias, pk.scale, j0, sink);
      }
    }
  }
}

// Reduces the 8 lanes of one point: the best value (ties to the smaller
// index) and, for top-2, the second-smallest value over all centroids.
inline void ReduceLanes(const float* v, const int32_t* id, const float* v2,
                        float* best_out, int32_t* id_out, float* second_out) {
  int bl = 0;
  for (int l = 1; l < 8; ++l) {
    if (v[l] < v[bl] || (v[l] == v[bl] && id[l] < id[bl])) bl = l;
  }
  *best_out = v[bl];
  *id_out = id[bl];
  if (second_out != nullptr) {
    float second = v2[bl];
    for (int l = 0; l < 8; ++l) {
      if (l != bl) second = std::min(second, v[l]);
    }
    *second_out = second;
  }
}

#endif  // QUIVER_X86

}  // namespace quiver::kernels::tiles

#endif  // QUIVER_KERNELS_CPU_ASSIGN_TILES_H_
