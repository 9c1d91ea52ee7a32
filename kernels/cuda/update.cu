// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Sort-based centroid update. The (cluster, point) pairs are sorted by
// cluster, so each cluster's points form one contiguous segment: a counting
// sort where the key space is small (the common case: one pass to count
// each tile's clusters, a scan, one pass to place; see SortByCluster below),
// CUB's radix sort (only the bits k needs) where it is not. Warps then walk
// fixed-size slices of the sorted order, summing rows in registers and
// flushing a partial sum with atomics only where a slice crosses a segment
// boundary: a hot cluster costs no contention, and the work per warp is the
// same whatever the cluster sizes. Then each centroid is its segment's
// mean; an empty cluster is re-seeded from its problem's fullest cluster,
// perturbed (FAISS's split). Also: the device-side convergence test.

#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/elem.cuh"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {
namespace {

constexpr int kReduceThreads = 256;
constexpr int kItemsPerWarp = 64;
constexpr int kUnroll = 4;

template <Elem E>
__device__ __forceinline__ void LoadEight(const void* x, size_t off, float (&v)[8],
                                          bool second_ok) {
  if constexpr (E == Elem::kF32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(x) + off);
    const float4 a = __ldg(p);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    if (second_ok) {
      const float4 b = __ldg(p + 1);
      v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
      v[4] = v[5] = v[6] = v[7] = 0.f;
    }
  } else {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(
        static_cast<const uint16_t*>(x) + off));
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (E == Elem::kF16) {
        const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
        v[2 * i] = f.x; v[2 * i + 1] = f.y;
      } else {
        const float2 f =
            __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[i]));
        v[2 * i] = f.x; v[2 * i + 1] = f.y;
      }
    }
  }
}

template <Elem E>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_sorted_kernel(const void* x, size_t ld, size_t d,
                         const uint32_t* keys, const uint32_t* idx,
                         size_t items, float* sums, int* counts,
                         const DeviceState* state) {
  if (state != nullptr && state->stop) return;
  const size_t warp_id =
      (static_cast<size_t>(blockIdx.x) * kReduceThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  const size_t begin = warp_id * kItemsPerWarp;
  if (begin >= items) return;
  const size_t end = min(items, begin + kItemsPerWarp);

  for (size_t d0 = 0; d0 < d; d0 += 256) {
    const size_t dim = d0 + static_cast<size_t>(lane) * 8;
    const bool active = dim < d;
    const bool second_ok = dim + 4 < ld;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t cur = keys[begin];
    int run = 0;
    auto flush = [&]() {
      if (active) {
        float* s = sums + static_cast<size_t>(cur) * d + dim;
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          if (dim + e < d) atomicAdd(s + e, acc[e]);
          acc[e] = 0.f;
        }
      }
      if (d0 == 0 && lane == 0) atomicAdd(counts + cur, run);
      run = 0;
    };
    for (size_t i = begin; i < end; i += kUnroll) {
      uint32_t kk[kUnroll];
      float v[kUnroll][8];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (i + u < end) {
          kk[u] = keys[i + u];
          if (active) {
            LoadEight<E>(x, static_cast<size_t>(idx[i + u]) * ld + dim, v[u],
                         second_ok);
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (i + u < end) {
          if (kk[u] != cur) {
            flush();
            cur = kk[u];
          }
          if (active) {
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[e] += v[u][e];
          }
          ++run;
        }
      }
    }
    flush();
  }
}

// v3 reduce (rows whose bytes are a multiple of 16): a group of L lanes owns
// one row (lane c of the group loads chunk c with one 16-byte load), so a
// warp step covers 32 / L rows; rows longer than 32 chunks are summed 32
// chunks at a time, one walk over the slice each. Each warp walks a slice
// of kVecSlice items of the sorted order; (key, index) pairs come in by one
// coalesced load per 32 items (prefetched one chunk ahead) and go to the
// groups by shuffles; the rows of kVecBatch steps are loaded before any is
// summed. Every group keeps its own running sum (its rows are a sorted
// subsequence, so its segments are contiguous) and flushes it with vector
// atomics where its key changes.
constexpr int kVecSlice = 256;
constexpr int kVecBatch = 8;
constexpr uint32_t kNoKey = 0xffffffffu;

template <Elem E>
struct VecTraits {
  static constexpr int kPerChunk = E == Elem::kF32 ? 4 : 8;
};

template <Elem E>
__device__ __forceinline__ void AddChunk(const uint4& r, float (&acc)[VecTraits<E>::kPerChunk]) {
  if constexpr (E == Elem::kF32) {
    acc[0] += __uint_as_float(r.x); acc[1] += __uint_as_float(r.y);
    acc[2] += __uint_as_float(r.z); acc[3] += __uint_as_float(r.w);
  } else {
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float2 f;
      if constexpr (E == Elem::kF16) {
        f = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      } else {
        f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[i]));
      }
      acc[2 * i] += f.x; acc[2 * i + 1] += f.y;
    }
  }
}

template <Elem E, int L>
__global__ void __launch_bounds__(kReduceThreads)
    reduce_sorted_vec_kernel(const void* x, size_t ld, size_t d,
                             const uint32_t* __restrict__ keys,
                             const uint32_t* __restrict__ idx, size_t items,
                             float* sums, int* counts, bool vec_atomics,
                             int col_blocks, const DeviceState* state) {
  constexpr int G = 32 / L;            // rows per warp step
  constexpr int P = VecTraits<E>::kPerChunk;
  constexpr int kSteps = 32 / G;       // steps per 32 items
  constexpr int B = kSteps < kVecBatch ? kSteps : kVecBatch;
  if (state != nullptr && state->stop) return;
  const size_t warp_id =
      (static_cast<size_t>(blockIdx.x) * kReduceThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  const int g = lane / L;
  const int c = lane % L;
  const size_t begin = warp_id * kVecSlice;
  if (begin >= items) return;
  const size_t end = min(items, begin + kVecSlice);
  const char* xb = static_cast<const char*>(x);
  const size_t row_bytes = ld * (E == Elem::kF32 ? 4 : 2);
  // Rows longer than 32 chunks: the slice is walked once per block of 32
  // chunks (L == 32 then); the counts are added on the first walk only.
  for (int cb = 0; cb < col_blocks; ++cb) {
    const size_t dim = static_cast<size_t>(cb * L + c) * P;
    const bool active = dim < d;
    const size_t col_bytes = dim * (E == Elem::kF32 ? 4 : 2);

    float acc[P];
#pragma unroll
    for (int e = 0; e < P; ++e) acc[e] = 0.f;
    uint32_t cur = kNoKey;
    int run = 0;
    auto flush = [&]() {
      if (active) {
        float* s = sums + static_cast<size_t>(cur) * d + dim;
#pragma unroll
        for (int q = 0; q < P; q += 4) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
          if (vec_atomics && dim + q + 4 <= d) {
            atomicAdd(reinterpret_cast<float4*>(s + q),
                      make_float4(acc[q], acc[q + 1], acc[q + 2], acc[q + 3]));
          } else
#endif
          {
#pragma unroll
            for (int e = q; e < q + 4; ++e) {
              if (dim + e < d) atomicAdd(s + e, acc[e]);
            }
          }
        }
      }
#pragma unroll
      for (int e = 0; e < P; ++e) acc[e] = 0.f;
      if (c == 0 && cb == 0) atomicAdd(counts + cur, run);
      run = 0;
    };

    uint32_t nk = begin + lane < end ? keys[begin + lane] : kNoKey;
    uint32_t ni = begin + lane < end ? idx[begin + lane] : 0u;
    for (size_t base = begin; base < end; base += 32) {
      const uint32_t my_key = nk, my_idx = ni;
      const size_t nb = base + 32 + lane;
      nk = kNoKey;  // past the slice: no row (never keep the last chunk's pair)
      ni = 0u;
      if (nb < end) { nk = keys[nb]; ni = idx[nb]; }
#pragma unroll
      for (int s0 = 0; s0 < kSteps; s0 += B) {
        uint4 raw[B];
        uint32_t kk[B];
#pragma unroll
        for (int s = 0; s < B; ++s) {
          const int src = (s0 + s) * G + g;
          kk[s] = __shfl_sync(0xffffffffu, my_key, src);
          const uint32_t p = __shfl_sync(0xffffffffu, my_idx, src);
          if (active && kk[s] != kNoKey) {
            raw[s] = __ldg(reinterpret_cast<const uint4*>(
                xb + static_cast<size_t>(p) * row_bytes + col_bytes));
          } else {
            raw[s] = make_uint4(0u, 0u, 0u, 0u);
          }
        }
#pragma unroll
        for (int s = 0; s < B; ++s) {
          if (kk[s] == kNoKey) continue;
          if (kk[s] != cur) {
            if (run > 0) flush();
            cur = kk[s];
          }
          AddChunk<E>(raw[s], acc);
          ++run;
        }
      }
    }
    if (run > 0) flush();
  }
}

__global__ void cluster_stats_kernel(const int* counts, int k, int* donor,
                                     int* empties, const DeviceState* state) {
  if (state != nullptr && state->stop) return;
  const int b = blockIdx.x;
  const int* c = counts + static_cast<size_t>(b) * k;
  int best = -1, best_j = 0, empty = 0;
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    const int v = c[j];
    if (v > best) {
      best = v;
      best_j = j;
    }
    empty += (v == 0);
  }
  // Largest count, ties to the smaller index; warp then block reduction.
  for (int off = 16; off > 0; off >>= 1) {
    const int ob = __shfl_xor_sync(0xffffffffu, best, off);
    const int oj = __shfl_xor_sync(0xffffffffu, best_j, off);
    empty += __shfl_xor_sync(0xffffffffu, empty, off);
    if (ob > best || (ob == best && oj < best_j)) { best = ob; best_j = oj; }
  }
  __shared__ int s_best[32], s_j[32], s_e[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) { s_best[warp] = best; s_j[warp] = best_j; s_e[warp] = empty; }
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x >> 5;
    best = lane < nw ? s_best[lane] : -1;
    best_j = lane < nw ? s_j[lane] : INT_MAX;
    empty = lane < nw ? s_e[lane] : 0;
    for (int off = 16; off > 0; off >>= 1) {
      const int ob = __shfl_xor_sync(0xffffffffu, best, off);
      const int oj = __shfl_xor_sync(0xffffffffu, best_j, off);
      empty += __shfl_xor_sync(0xffffffffu, empty, off);
      if (ob > best || (ob == best && oj < best_j)) { best = ob; best_j = oj; }
    }
    if (lane == 0) {
      donor[b] = best_j;
      if (empties != nullptr) empties[b] = empty;
    }
  }
}

__device__ __forceinline__ uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The value the assignment's products read for centroid component v: the
// kernel copy's element rounding and, for TF32, the tensor cores' input
// rounding (cvt.rna, as the points get it), so that the bias is the norm of
// what is multiplied and the wgmma kernel, which reads B as stored, sees
// rounded operands.
__device__ __forceinline__ float RoundOperand(float v, Arith arith) {
  if (arith == Arith::kTf32) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
    return __uint_as_float(r);
  }
  return RoundElem(v, ArithElem(arith));
}

// Writes master row j (scaled) to the kernel copy and its bias. One warp.
__device__ void WriteKernelRow(float* mrow, float scale, size_t d, void* ckern,
                               Arith arith, size_t ld, size_t krow, float* bias,
                               bool l2, int lane) {
  const Elem elem = ArithElem(arith);
  float nn = 0.f;
  for (size_t i = lane; i < d; i += 32) {
    const float v = mrow[i] * scale;
    mrow[i] = v;
    const float r = RoundOperand(v, arith);
    StoreElem(ckern, elem, krow * ld + i, r);
    nn += r * r;
  }
  nn = WarpSum(nn);
  if (lane == 0) *bias = l2 ? nn : 0.f;
}

__global__ void finalize_centroids_kernel(const float* sums, const int* counts,
                                          const int* donor, int batch, int k,
                                          size_t d, bool spherical,
                                          uint64_t seed, int iteration,
                                          float* master, void* ckern,
                                          Arith arith, size_t ld, int kpad,
                                          float* cbias, bool l2,
                                          const DeviceState* state) {
  if (state != nullptr && state->stop) return;
  const size_t j = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (j >= static_cast<size_t>(batch) * k) return;
  const size_t b = j / k;
  const size_t jj = j - b * k;
  const int cnt = counts[j];
  size_t src = j;
  bool perturb = false;
  if (cnt == 0) {  // streamed runs only: resident runs re-seed before this
    src = b * k + donor[b];
    perturb = true;
  }
  const float inv = 1.f / static_cast<float>(max(counts[src], 1));
  float* mrow = master + j * d;
  const float* srow = sums + src * d;
  constexpr float kEps = 1.f / 1024.f;
  auto value = [&](size_t i) {
    float v = srow[i] * inv;
    if (perturb) {
      const uint64_t h = Mix(seed ^ Mix((static_cast<uint64_t>(iteration) << 40) ^
                                        (j << 16) ^ i));
      v += ((h & 1) ? kEps : -kEps) * (fabsf(v) + 1e-6f);
    }
    return v;
  };
  float scale = 1.f;
  bool keep = false;
  if (spherical) {
    float ss = 0.f;
    for (size_t i = lane; i < d; i += 32) {
      const float v = value(i);
      ss += v * v;
    }
    ss = WarpSum(ss);
    if (ss > 0.f) scale = 1.f / sqrtf(ss); else keep = true;  // keep the old one
  }
  if (!keep) {
    for (size_t i = lane; i < d; i += 32) mrow[i] = value(i);
  }
  __syncwarp();
  WriteKernelRow(mrow, scale, d, ckern, arith, ld, b * kpad + jj,
                 cbias + b * kpad + jj, l2, lane);
}

// Re-seeds each empty cluster of problem blockIdx.x, in increasing order,
// with the member farthest from its centroid of the cluster that is largest
// at that moment (ties to the smaller index), as the CPU path does: moves
// that point's row from the donor's sum to the empty cluster's. Needs the
// sorted order, the distances and the resident points.
__global__ void reseed_empty_kernel(int* counts, float* sums, int k,
                                    size_t n, size_t d,
                                    const uint32_t* keys_sorted,
                                    const uint32_t* idx_sorted, size_t items,
                                    float* dist, const void* x, Elem elem,
                                    size_t ld, uint32_t* labels, int* empties,
                                    int* donor, const DeviceState* state) {
  if (state != nullptr && state->stop) return;
  const int b = blockIdx.x;
  int* cnt = counts + static_cast<size_t>(b) * k;
  __shared__ int s_a[32], s_b[32];
  __shared__ float s_f[32];
  __shared__ int s_empty, s_largest, s_pick;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nwarps = blockDim.x >> 5;
  int reseeded = 0;
  for (;;) {
    // First empty cluster and the largest one (ties: smaller index).
    int first_empty = INT_MAX, best = -1, best_j = 0;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      const int c = cnt[j];
      if (c == 0 && j < first_empty) first_empty = j;
      if (c > best) { best = c; best_j = j; }
    }
    for (int off = 16; off > 0; off >>= 1) {
      first_empty = min(first_empty, __shfl_xor_sync(0xffffffffu, first_empty, off));
      const int ob = __shfl_xor_sync(0xffffffffu, best, off);
      const int oj = __shfl_xor_sync(0xffffffffu, best_j, off);
      if (ob > best || (ob == best && oj < best_j)) { best = ob; best_j = oj; }
    }
    if (lane == 0) { s_a[warp] = first_empty; s_b[warp] = best; s_f[warp] = __int_as_float(best_j); }
    __syncthreads();
    if (threadIdx.x == 0) {
      int fe = INT_MAX, bb = -1, bj = 0;
      for (int w = 0; w < nwarps; ++w) {
        fe = min(fe, s_a[w]);
        const int oj = __float_as_int(s_f[w]);
        if (s_b[w] > bb || (s_b[w] == bb && oj < bj)) { bb = s_b[w]; bj = oj; }
      }
      s_empty = (fe == INT_MAX || bb < 2) ? -1 : fe;
      s_largest = bj;
    }
    __syncthreads();
    const int empty = s_empty;
    const int largest = s_largest;
    if (empty < 0) break;
    // The largest cluster's segment of the sorted order.
    const uint32_t key = static_cast<uint32_t>(b) * k + largest;
    size_t lo = 0, hi = items;
    while (lo < hi) { const size_t m = (lo + hi) / 2; if (keys_sorted[m] < key) lo = m + 1; else hi = m; }
    const size_t seg_begin = lo;
    hi = items;
    while (lo < hi) { const size_t m = (lo + hi) / 2; if (keys_sorted[m] <= key) lo = m + 1; else hi = m; }
    const size_t seg_end = lo;
    float far = -1.f;
    uint32_t pick = 0xffffffffu;
    for (size_t t = seg_begin + threadIdx.x; t < seg_end; t += blockDim.x) {
      const uint32_t p = idx_sorted[t];
      const float v = dist[p];
      if (labels[p] == key && (v > far || (v == far && p < pick))) { far = v; pick = p; }
    }
    for (int off = 16; off > 0; off >>= 1) {
      const float of = __shfl_xor_sync(0xffffffffu, far, off);
      const uint32_t op = __shfl_xor_sync(0xffffffffu, pick, off);
      if (of > far || (of == far && op < pick)) { far = of; pick = op; }
    }
    __syncthreads();
    if (lane == 0) { s_f[warp] = far; s_a[warp] = static_cast<int>(pick); }
    __syncthreads();
    if (threadIdx.x == 0) {
      float f = -1.f;
      uint32_t pk = 0xffffffffu;
      for (int w = 0; w < nwarps; ++w) {
        const uint32_t op = static_cast<uint32_t>(s_a[w]);
        if (s_f[w] > f || (s_f[w] == f && op < pk)) { f = s_f[w]; pk = op; }
      }
      s_pick = static_cast<int>(pk);
      if (pk != 0xffffffffu) {
        labels[pk] = static_cast<uint32_t>(b) * k + empty;  // also marks it moved
        cnt[largest] -= 1;
        cnt[empty] = 1;
        ++reseeded;
      }
    }
    __syncthreads();
    const int p = s_pick;
    if (p < 0) break;
    float* s_from = sums + (static_cast<size_t>(b) * k + largest) * d;
    float* s_to = sums + (static_cast<size_t>(b) * k + empty) * d;
    for (size_t i = threadIdx.x; i < d; i += blockDim.x) {
      const float v = LoadElem(x, elem, static_cast<size_t>(p) * ld + i);
      s_from[i] -= v;
      s_to[i] = v;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0 && empties != nullptr) empties[b] = reseeded;
  // The fullest cluster after re-seeding (what cluster_stats would find).
  if (threadIdx.x == 0 && donor != nullptr) donor[b] = s_largest;
}

__global__ void load_centroids_kernel(float* master, int batch, int k,
                                      size_t d, void* ckern, Arith arith,
                                      size_t ld, int kpad, float* cbias,
                                      bool l2, bool normalize) {
  const size_t j = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (j >= static_cast<size_t>(batch) * k) return;
  const size_t b = j / k;
  const size_t jj = j - b * k;
  float scale = 1.f;
  if (normalize) {
    float ss = 0.f;
    for (size_t i = lane; i < d; i += 32) ss += master[j * d + i] * master[j * d + i];
    ss = WarpSum(ss);
    if (ss > 0.f) scale = 1.f / sqrtf(ss);
  }
  WriteKernelRow(master + j * d, scale, d, ckern, arith, ld, b * kpad + jj,
                 cbias + b * kpad + jj, l2, lane);
}

__global__ void check_convergence_kernel(const double* objective, int it,
                                         int batch, double tol,
                                         DeviceState* state) {
  if (state->stop) return;
  state->iterations = it + 1;
  if (it == 0 || !(tol > 0.0)) return;
  bool all = true;
  for (int b = 0; b < batch; ++b) {
    const double prev = objective[static_cast<size_t>(it - 1) * batch + b];
    const double cur = objective[static_cast<size_t>(it) * batch + b];
    all = all && (fabs(prev - cur) < tol * fabs(prev));
  }
  if (all) {
    state->stop = 1;
    state->converged = 1;
  }
}

// ---- SortByCluster
// Key spaces of up to 2^kBucketMaxBits labels: a counting sort in two passes
// over tiles of kBucketTile labels. Pass 1 counts each tile's labels in
// shared memory and writes the counts to column `tile` of a labels x tiles
// matrix; an exclusive scan of the matrix (label-major) gives every (label,
// tile) its first slot. Pass 2 orders each tile by label in shared memory
// (its own counts, scanned, and a cursor per label), then writes the
// ordered tile out: a label's pairs from one tile go to consecutive slots,
// so the writes come in runs rather than one scattered word per pair. Only
// shared-memory atomics: a hot label costs no global contention. Larger key
// spaces use CUB's device radix sort.
constexpr int kBucketThreads = 512;
constexpr int kBucketItems = 16;  // per thread, all loaded before any is used
constexpr int kBucketTile = kBucketThreads * kBucketItems;
constexpr int kBucketMaxBits = 13;  // 8,192 labels
constexpr int kBucketKeysPerThread = (1 << kBucketMaxBits) / kBucketThreads;
// Shared memory of pass 2: the staged tile, then two counters per label.
size_t BucketPlaceSmem(uint32_t nkeys) { return size_t{kBucketTile} * 8 + size_t{nkeys} * 8; }

// The labels of this block's tile, item j of thread t at tile offset
// j * kBucketThreads + t (coalesced); past `items`, kNoKey.
__device__ __forceinline__ void LoadTile(const uint32_t* labels, size_t items,
                                         uint32_t (&key)[kBucketItems]) {
  const size_t begin = static_cast<size_t>(blockIdx.x) * kBucketTile + threadIdx.x;
#pragma unroll
  for (int j = 0; j < kBucketItems; ++j) {
    const size_t i = begin + static_cast<size_t>(j) * kBucketThreads;
    key[j] = i < items ? __ldg(labels + i) : kNoKey;
  }
}

__global__ void __launch_bounds__(kBucketThreads)
    bucket_count_kernel(const uint32_t* labels, size_t items, uint32_t nkeys, uint32_t* matrix) {
  __shared__ uint32_t hist[1 << kBucketMaxBits];
  uint32_t key[kBucketItems];
  LoadTile(labels, items, key);
  for (uint32_t k = threadIdx.x; k < nkeys; k += kBucketThreads) hist[k] = 0;
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kBucketItems; ++j) {
    if (key[j] != kNoKey) atomicAdd(hist + key[j], 1u);
  }
  __syncthreads();
  for (uint32_t k = threadIdx.x; k < nkeys; k += kBucketThreads) {
    matrix[static_cast<size_t>(k) * gridDim.x + blockIdx.x] = hist[k];
  }
}

__global__ void __launch_bounds__(kBucketThreads)
    bucket_place_kernel(const uint32_t* labels, size_t items, uint32_t nkeys,
                        const uint32_t* counts, const uint32_t* first_slot, uint32_t* keys_out,
                        uint32_t* idx_out) {
  using BlockScan = cub::BlockScan<uint32_t, kBucketThreads>;
  __shared__ typename BlockScan::TempStorage scan;
  extern __shared__ uint32_t smem[];
  uint32_t* stage_key = smem;                             // [kBucketTile]
  uint32_t* stage_idx = stage_key + kBucketTile;          // [kBucketTile]
  uint32_t* tile_start = stage_idx + kBucketTile;         // [nkeys]: first place in the tile
  uint32_t* cursor = tile_start + nkeys;                  // [nkeys]
  uint32_t key[kBucketItems];
  LoadTile(labels, items, key);
  // Thread t scans labels [t * per, t * per + per), zero past nkeys.
  uint32_t c[kBucketKeysPerThread];
#pragma unroll
  for (int q = 0; q < kBucketKeysPerThread; ++q) {
    const uint32_t k = threadIdx.x * kBucketKeysPerThread + q;
    c[q] = k < nkeys ? counts[static_cast<size_t>(k) * gridDim.x + blockIdx.x] : 0u;
  }
  BlockScan(scan).ExclusiveSum(c, c);
#pragma unroll
  for (int q = 0; q < kBucketKeysPerThread; ++q) {
    const uint32_t k = threadIdx.x * kBucketKeysPerThread + q;
    if (k < nkeys) tile_start[k] = cursor[k] = c[q];
  }
  __syncthreads();
  const uint32_t begin = static_cast<uint32_t>(blockIdx.x) * kBucketTile + threadIdx.x;
#pragma unroll
  for (int j = 0; j < kBucketItems; ++j) {
    if (key[j] == kNoKey) continue;
    const uint32_t at = atomicAdd(cursor + key[j], 1u);
    stage_key[at] = key[j];
    stage_idx[at] = begin + static_cast<uint32_t>(j) * kBucketThreads;
  }
  __syncthreads();
  const size_t begin_item = static_cast<size_t>(blockIdx.x) * kBucketTile;
  const uint32_t in_tile =
      static_cast<uint32_t>(items - begin_item < kBucketTile ? items - begin_item : kBucketTile);
  for (uint32_t at = threadIdx.x; at < in_tile; at += kBucketThreads) {
    const uint32_t k = stage_key[at];
    const uint32_t slot =
        __ldg(first_slot + static_cast<size_t>(k) * gridDim.x + blockIdx.x) + at - tile_start[k];
    keys_out[slot] = k;
    idx_out[slot] = stage_idx[at];
  }
}

__global__ void iota_kernel(uint32_t* out, size_t n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<uint32_t>(i);
}

// Temporary storage of the two ways, laid out from `temp`:
//   counting sort: counts [nkeys x tiles], first slots [same], scan storage;
//   radix sort:    point indices [items], sort storage.
size_t MatrixEntries(size_t items, int key_bits) {
  return (size_t{1} << key_bits) * CeilDiv(items, size_t{kBucketTile});
}

}  // namespace

Status SortTempBytes(size_t items, int key_bits, size_t* bytes) {
  if (key_bits < 1 || key_bits > 31) return Status::InvalidArgument("sort: key bits out of range");
  if (key_bits <= kBucketMaxBits) {
    const size_t entries = MatrixEntries(items, key_bits);
    size_t scan = 0;
    QUIVER_CUDA_RETURN(cub::DeviceScan::ExclusiveSum(
        nullptr, scan, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
        static_cast<int64_t>(entries)));
    *bytes = 2 * entries * 4 + scan;
  } else {
    size_t sort = 0;
    QUIVER_CUDA_RETURN(cub::DeviceRadixSort::SortPairs(
        nullptr, sort, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
        static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
        static_cast<int64_t>(items), 0, key_bits));
    *bytes = RoundUp(items * 4, size_t{256}) + sort;
  }
  return Status::OK();
}

Status SortByCluster(const uint32_t* labels, uint32_t* keys_out, uint32_t* idx_out,
                     size_t items, int key_bits, void* temp, size_t temp_bytes,
                     cudaStream_t stream) {
  if (items == 0) return Status::OK();
  if (items > (size_t{1} << 32)) return Status::InvalidArgument("sort: more than 2^32 items");
  size_t need = 0;
  QUIVER_RETURN_IF_ERROR(SortTempBytes(items, key_bits, &need));
  if (temp_bytes < need) return Status::InvalidArgument("sort: temporary storage too small");
  uint32_t* t32 = static_cast<uint32_t*>(temp);
  if (key_bits > kBucketMaxBits) {
    const size_t skip = RoundUp(items * 4, size_t{256});
    iota_kernel<<<static_cast<unsigned>(CeilDiv(items, size_t{256})), 256, 0, stream>>>(t32,
                                                                                       items);
    QUIVER_CUDA_LAUNCH_CHECK();
    size_t sort_bytes = temp_bytes - skip;
    QUIVER_CUDA_RETURN(cub::DeviceRadixSort::SortPairs(
        static_cast<uint8_t*>(temp) + skip, sort_bytes, labels, keys_out, t32, idx_out,
        static_cast<int64_t>(items), 0, key_bits, stream));
    return Status::OK();
  }
  const uint32_t nkeys = 1u << key_bits;
  const size_t entries = MatrixEntries(items, key_bits);
  uint32_t* matrix = t32;
  uint32_t* first_slot = t32 + entries;
  size_t scan_bytes = temp_bytes - 2 * entries * 4;
  const unsigned blocks = static_cast<unsigned>(CeilDiv(items, size_t{kBucketTile}));
  bucket_count_kernel<<<blocks, kBucketThreads, 0, stream>>>(labels, items, nkeys, matrix);
  QUIVER_CUDA_LAUNCH_CHECK();
  QUIVER_CUDA_RETURN(cub::DeviceScan::ExclusiveSum(first_slot + entries, scan_bytes, matrix,
                                                   first_slot, static_cast<int64_t>(entries),
                                                   stream));
  const size_t smem = BucketPlaceSmem(nkeys);
  QUIVER_CUDA_RETURN(cudaFuncSetAttribute(
      bucket_place_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  bucket_place_kernel<<<blocks, kBucketThreads, smem, stream>>>(
      labels, items, nkeys, matrix, first_slot, keys_out, idx_out);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

static bool VecReduceEnabled() {
  const char* env = std::getenv("QUIVER_REDUCE");  // read per launch, as QUIVER_ASSIGN is
  return env == nullptr || std::strcmp(env, "v1") != 0;
}

template <Elem E>
static void LaunchVec(int lanes, int col_blocks, unsigned blocks, const void* x, size_t ld,
                      size_t d, const uint32_t* keys, const uint32_t* idx, size_t items,
                      float* sums, int* counts, bool vec_atomics,
                      const DeviceState* state, cudaStream_t stream) {
#define QUIVER_VEC_CASE(L)                                                    \
  case L:                                                                     \
    reduce_sorted_vec_kernel<E, L><<<blocks, kReduceThreads, 0, stream>>>(    \
        x, ld, d, keys, idx, items, sums, counts, vec_atomics, col_blocks,    \
        state);                                                               \
    break;
  switch (lanes) {
    QUIVER_VEC_CASE(4)
    QUIVER_VEC_CASE(8)
    QUIVER_VEC_CASE(16)
    QUIVER_VEC_CASE(32)
  }
#undef QUIVER_VEC_CASE
}

Status LaunchReduceSorted(const void* x, Elem elem, size_t ld, size_t d,
                          const uint32_t* keys_sorted,
                          const uint32_t* idx_sorted, size_t items,
                          float* sums, int* counts, const DeviceState* state,
                          cudaStream_t stream) {
  if (items == 0) return Status::OK();
  const size_t esize = elem == Elem::kF32 ? 4 : 2;
  const size_t per_chunk = 16 / esize;
  const size_t chunks = CeilDiv(d, per_chunk);
  if (VecReduceEnabled() && (ld * esize) % 16 == 0 &&
      reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    int lanes = 4;
    while (lanes < 32 && static_cast<size_t>(lanes) < chunks) lanes *= 2;
    const int col_blocks = static_cast<int>(CeilDiv(chunks, static_cast<size_t>(lanes)));
    const size_t warps = CeilDiv(items, static_cast<size_t>(kVecSlice));
    const unsigned blocks =
        static_cast<unsigned>(CeilDiv(warps * 32, kReduceThreads));
    const bool vec_atomics =
        d % 4 == 0 && reinterpret_cast<uintptr_t>(sums) % 16 == 0;
    switch (elem) {
      case Elem::kF32:
        LaunchVec<Elem::kF32>(lanes, col_blocks, blocks, x, ld, d, keys_sorted, idx_sorted,
                              items, sums, counts, vec_atomics, state, stream);
        break;
      case Elem::kF16:
        LaunchVec<Elem::kF16>(lanes, col_blocks, blocks, x, ld, d, keys_sorted, idx_sorted,
                              items, sums, counts, vec_atomics, state, stream);
        break;
      case Elem::kBf16:
        LaunchVec<Elem::kBf16>(lanes, col_blocks, blocks, x, ld, d, keys_sorted, idx_sorted,
                               items, sums, counts, vec_atomics, state, stream);
        break;
    }
    QUIVER_CUDA_LAUNCH_CHECK();
    return Status::OK();
  }
  const size_t warps = CeilDiv(items, kItemsPerWarp);
  const unsigned blocks =
      static_cast<unsigned>(CeilDiv(warps * 32, kReduceThreads));
  switch (elem) {
    case Elem::kF32:
      reduce_sorted_kernel<Elem::kF32><<<blocks, kReduceThreads, 0, stream>>>(
          x, ld, d, keys_sorted, idx_sorted, items, sums, counts, state);
      break;
    case Elem::kF16:
      reduce_sorted_kernel<Elem::kF16><<<blocks, kReduceThreads, 0, stream>>>(
          x, ld, d, keys_sorted, idx_sorted, items, sums, counts, state);
      break;
    case Elem::kBf16:
      reduce_sorted_kernel<Elem::kBf16><<<blocks, kReduceThreads, 0, stream>>>(
          x, ld, d, keys_sorted, idx_sorted, items, sums, counts, state);
      break;
  }
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

Status LaunchClusterStats(const int* counts, int batch, int k, int* donor,
                          int* empties, const DeviceState* state,
                          cudaStream_t stream) {
  cluster_stats_kernel<<<batch, 1024, 0, stream>>>(counts, k, donor, empties,
                                                  state);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

Status LaunchFinalizeCentroids(const float* sums, const int* counts,
                               const int* donor, int batch, int k, size_t d,
                               bool spherical, uint64_t seed, int iteration,
                               float* master, void* ckern, Arith arith,
                               size_t ld, int kpad, float* cbias, bool l2,
                               const DeviceState* state, cudaStream_t stream) {
  const size_t threads = static_cast<size_t>(batch) * k * 32;
  finalize_centroids_kernel<<<static_cast<unsigned>(CeilDiv(threads, 256)), 256,
                              0, stream>>>(
      sums, counts, donor, batch, k, d, spherical, seed, iteration, master,
      ckern, arith, ld, kpad, cbias, l2, state);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

Status LaunchLoadCentroids(const float* master, int batch, int k, size_t d,
                           void* ckern, Arith arith, size_t ld, int kpad,
                           float* cbias, bool l2, bool normalize,
                           cudaStream_t stream) {
  const size_t threads = static_cast<size_t>(batch) * k * 32;
  load_centroids_kernel<<<static_cast<unsigned>(CeilDiv(threads, 256)), 256, 0,
                          stream>>>(const_cast<float*>(master), batch, k, d,
                                    ckern, arith, ld, kpad, cbias,
                                    l2, normalize);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

Status LaunchReseedEmpty(int* counts, float* sums, int batch, int k, size_t n,
                         size_t d, const uint32_t* keys_sorted,
                         const uint32_t* idx_sorted, float* dist,
                         const void* x, Elem elem, size_t ld, uint32_t* labels,
                         int* empties, int* donor, const DeviceState* state,
                         cudaStream_t stream) {
  reseed_empty_kernel<<<batch, 1024, 0, stream>>>(
      counts, sums, k, n, d, keys_sorted, idx_sorted,
      static_cast<size_t>(batch) * n, dist, x, elem, ld, labels, empties, donor,
      state);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

Status LaunchCheckConvergence(const double* objective, int it, int batch,
                              double tol, DeviceState* state,
                              cudaStream_t stream) {
  check_convergence_kernel<<<1, 1, 0, stream>>>(objective, it, batch, tol,
                                                state);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

}  // namespace quiver::kernels::cuda
