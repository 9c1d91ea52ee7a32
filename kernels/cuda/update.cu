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
// same whatever the cluster sizes. Then one cooperative kernel finishes
// the iteration: each centroid its segment's mean; an empty cluster
// re-seeded with the farthest member of the largest one (resident runs on
// one GPU) or split from its problem's fullest cluster, perturbed (FAISS's
// split); the sums zeroed for the next iteration; the device-side
// convergence test.

#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
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
                             int col_blocks, DeviceState* state) {
  constexpr int G = 32 / L;            // rows per warp step
  constexpr int P = VecTraits<E>::kPerChunk;
  constexpr int kSteps = 32 / G;       // steps per 32 items
  constexpr int B = kSteps < kVecBatch ? kSteps : kVecBatch;
  WaitForPriorKernels();
  AllowNextKernel();
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
    // Clusters met: the items whose key differs from the one before.
    uint32_t last = begin > 0 ? keys[begin - 1] : kNoKey;
    int starts = 0;
    for (size_t base = begin; base < end; base += 32) {
      const uint32_t my_key = nk, my_idx = ni;
      const size_t nb = base + 32 + lane;
      nk = kNoKey;  // past the slice: no row (never keep the last chunk's pair)
      ni = 0u;
      if (nb < end) { nk = keys[nb]; ni = idx[nb]; }
      const uint32_t up = __shfl_up_sync(0xffffffffu, my_key, 1);
      starts += my_key != kNoKey && my_key != (lane == 0 ? last : up);
      last = __shfl_sync(0xffffffffu, my_key, 31);
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
    if (cb == 0 && state != nullptr) {
      for (int off = 16; off > 0; off >>= 1) starts += __shfl_xor_sync(0xffffffffu, starts, off);
      if (lane == 0 && starts > 0) atomicAdd(&state->clusters_seen, static_cast<unsigned>(starts));
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

// Writes centroid row `mrow` of master, component i = value(i), and the
// same row of the kernel copy and its bias. One warp.
template <typename Value>
__device__ void WriteKernelRow(Value value, float* mrow, size_t d, void* ckern, Arith arith,
                               size_t ld, size_t krow, float* bias, bool l2, int lane) {
  const Elem elem = ArithElem(arith);
  float nn = 0.f;
  for (size_t i = lane; i < d; i += 32) {
    const float v = value(i);
    mrow[i] = v;
    const float r = RoundOperand(v, arith);
    StoreElem(ckern, elem, krow * ld + i, r);
    nn += r * r;
  }
  nn = WarpSum(nn);
  if (lane == 0) *bias = l2 ? nn : 0.f;
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
  float* mrow = master + j * d;
  WriteKernelRow([&](size_t i) { return mrow[i] * scale; }, mrow, d, ckern, arith, ld,
                 b * kpad + jj, cbias + b * kpad + jj, l2, lane);
}

// ---- The update: one cooperative kernel of kUpdateThreads-thread blocks.
// Phase 1 (a block per problem): the problem's empty clusters, and its
// donor (the cluster that what stays empty is split from; -1 when none is
// empty). A grid barrier. Phase 2 (a warp per centroid): the new centroid,
// then its sums and count zeroed, except a donor's, which other warps may
// still read. The last block to finish zeroes the donors' rows and tests
// convergence: no block of the grid reads the state after that.
constexpr int kUpdateThreads = 256;

// Block reduction of (value, index): the larger value, ties to the smaller
// index. Every thread gets the result.
template <typename T>
__device__ void BlockArgMax(T& v, uint32_t& i, T* s_v, uint32_t* s_i) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  auto fold = [](T& v, uint32_t& i) {
    for (int off = 16; off > 0; off >>= 1) {
      const T ov = __shfl_xor_sync(0xffffffffu, v, off);
      const uint32_t oi = __shfl_xor_sync(0xffffffffu, i, off);
      if (ov > v || (ov == v && oi < i)) { v = ov; i = oi; }
    }
  };
  fold(v, i);
  __syncthreads();  // the previous use of s_v / s_i is over
  if (lane == 0) { s_v[warp] = v; s_i[warp] = i; }
  __syncthreads();
  const int nwarps = blockDim.x >> 5;
  v = s_v[lane < nwarps ? lane : 0];
  i = s_i[lane < nwarps ? lane : 0];
  fold(v, i);
}

__device__ int BlockSum(int v, int* s) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  __syncthreads();
  if (lane == 0) s[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x >> 5) ? s[lane] : 0;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Phase 1 for problem b when the sorted order is at hand: each empty
// cluster, in increasing order, takes the member farthest from its centroid
// of the cluster that is largest at that moment (ties to the smaller
// index), moving that point's row from the donor's sum to its own.
__device__ void ReseedEmpty(const UpdateArgs& a, int b) {
  __shared__ int s_v[32];
  __shared__ float s_f[32];
  __shared__ uint32_t s_i[32];
  int* cnt = a.counts + static_cast<size_t>(b) * a.k;
  const size_t items = static_cast<size_t>(a.batch) * a.n;
  int reseeded = 0;
  int donor = -1;
  for (;;) {
    // The first empty cluster (as the largest of -index) and the largest one.
    int first = INT_MIN, best = -1;
    uint32_t first_j = 0, best_j = 0;
    for (int j = threadIdx.x; j < a.k; j += blockDim.x) {
      const int c = cnt[j];
      if (c == 0 && -j > first) { first = -j; first_j = j; }
      if (c > best) { best = c; best_j = j; }
    }
    BlockArgMax(first, first_j, s_v, s_i);
    BlockArgMax(best, best_j, s_v, s_i);
    if (first == INT_MIN) { donor = -1; break; }  // none empty
    donor = static_cast<int>(best_j);
    if (best < 2) break;  // nothing to split
    const uint32_t empty = first_j;
    // The largest cluster's segment of the sorted order.
    const uint32_t key = static_cast<uint32_t>(b) * a.k + best_j;
    size_t lo = 0, hi = items;
    while (lo < hi) { const size_t m = (lo + hi) / 2; if (a.keys_sorted[m] < key) lo = m + 1; else hi = m; }
    const size_t seg_begin = lo;
    hi = items;
    while (lo < hi) { const size_t m = (lo + hi) / 2; if (a.keys_sorted[m] <= key) lo = m + 1; else hi = m; }
    const size_t seg_end = lo;
    // Its farthest member not moved already (ties to the smaller index).
    float far = -1.f;
    uint32_t pick = 0xffffffffu;
    for (size_t t = seg_begin + threadIdx.x; t < seg_end; t += blockDim.x) {
      const uint32_t p = a.idx_sorted[t];
      const float v = a.dist[p];
      if (a.labels[p] == key && (v > far || (v == far && p < pick))) { far = v; pick = p; }
    }
    BlockArgMax(far, pick, s_f, s_i);
    if (pick == 0xffffffffu) break;  // every member already moved
    __syncthreads();  // every thread has read the counts and labels above
    if (threadIdx.x == 0) {
      a.labels[pick] = static_cast<uint32_t>(b) * a.k + empty;  // also marks it moved
      cnt[best_j] -= 1;
      cnt[empty] = 1;
    }
    ++reseeded;
    float* s_from = a.sums + (static_cast<size_t>(b) * a.k + best_j) * a.d;
    float* s_to = a.sums + (static_cast<size_t>(b) * a.k + empty) * a.d;
    for (size_t i = threadIdx.x; i < a.d; i += blockDim.x) {
      const float v = LoadElem(a.x, a.x_elem, static_cast<size_t>(pick) * a.ld + i);
      s_from[i] -= v;
      s_to[i] = v;
    }
    __syncthreads();  // the moves are seen by the next round's reads
  }
  if (threadIdx.x == 0) {
    a.donor[b] = donor;
    if (a.empties != nullptr) a.empties[b] = reseeded;
  }
}

// Phase 1 for problem b otherwise (streamed runs, teams): the donor is the
// fullest cluster, and every empty one is split from it.
__device__ void FindDonor(const UpdateArgs& a, int b) {
  __shared__ int s_v[32];
  __shared__ uint32_t s_i[32];
  const int* c = a.counts + static_cast<size_t>(b) * a.k;
  int best = -1, empty = 0;
  uint32_t best_j = 0;
  for (int j = threadIdx.x; j < a.k; j += blockDim.x) {
    const int v = c[j];
    if (v > best) { best = v; best_j = j; }
    empty += (v == 0);
  }
  BlockArgMax(best, best_j, s_v, s_i);
  empty = BlockSum(empty, s_v);
  if (threadIdx.x == 0) {
    a.donor[b] = empty > 0 ? static_cast<int>(best_j) : -1;
    if (a.empties != nullptr) a.empties[b] = empty;
  }
}

// Phase 2 for centroid j (one warp): its mean, or the donor's perturbed
// when it is empty; then its sums and count zeroed unless it is the donor.
__device__ void FinalizeCentroid(const UpdateArgs& a, size_t j, int donor, int lane) {
  const size_t b = j / a.k;
  const size_t jj = j - b * a.k;
  const int cnt = a.counts[j];
  size_t src = j;
  bool perturb = false;
  if (cnt == 0) {  // donor >= 0: phase 1 saw this cluster empty
    src = b * a.k + donor;
    perturb = true;
  }
  const float inv = 1.f / static_cast<float>(max(perturb ? a.counts[src] : cnt, 1));
  float* mrow = a.master + j * a.d;
  const float* srow = a.sums + src * a.d;
  constexpr float kEps = 1.f / 1024.f;
  auto mean = [&](size_t i) {
    float v = srow[i] * inv;
    if (perturb) {
      const uint64_t h = Mix(a.seed ^ Mix((static_cast<uint64_t>(a.iteration) << 40) ^
                                          (j << 16) ^ i));
      v += ((h & 1) ? kEps : -kEps) * (fabsf(v) + 1e-6f);
    }
    return v;
  };
  float scale = 1.f;
  bool keep = false;
  if (a.spherical) {
    float ss = 0.f;
    for (size_t i = lane; i < a.d; i += 32) {
      const float v = mean(i);
      ss += v * v;
    }
    ss = WarpSum(ss);
    if (ss > 0.f) scale = 1.f / sqrtf(ss); else keep = true;  // keep the old one
  }
  WriteKernelRow([&](size_t i) { return keep ? mrow[i] : mean(i) * scale; }, mrow, a.d,
                 a.ckern, a.arith, a.ld, b * a.kpad + jj, a.cbias + b * a.kpad + jj, a.l2,
                 lane);
  if (static_cast<int>(jj) == donor) return;  // zeroed by the last block
  float* own = a.sums + j * a.d;
  for (size_t i = lane; i < a.d; i += 32) own[i] = 0.f;
  if (lane == 0) a.counts[j] = 0;
}

__global__ void __launch_bounds__(kUpdateThreads) update_centroids_kernel(const UpdateArgs a) {
  WaitForPriorKernels();
  AllowNextKernel();
  // The state changes only in the last block, after every block read it.
  if (a.state->stop) return;
  const size_t centroids = static_cast<size_t>(a.batch) * a.k;
  // The convergence test's inputs, read now rather than by the last block
  // at the end.
  bool converged = a.iteration > 0 && a.tolerance > 0.0;
  if (threadIdx.x == 0) {
    for (int b = 0; converged && b < a.batch; ++b) {
      const double prev = a.objective[static_cast<size_t>(a.iteration - 1) * a.batch + b];
      const double cur = a.objective[static_cast<size_t>(a.iteration) * a.batch + b];
      converged = fabs(prev - cur) < a.tolerance * fabs(prev);
    }
  }
  // One reduction over every point met every cluster: none is empty, no
  // phase 1 (the answer is the same in every block).
  const bool all_met = a.keys_sorted != nullptr &&
                       a.state->clusters_seen == centroids;
  if (!all_met) {
    for (int b = blockIdx.x; b < a.batch; b += gridDim.x) {
      if (a.keys_sorted != nullptr) ReseedEmpty(a, b); else FindDonor(a, b);
    }
    cooperative_groups::this_grid().sync();
  }
  const size_t warps = static_cast<size_t>(gridDim.x) * (kUpdateThreads / 32);
  const int lane = threadIdx.x & 31;
  for (size_t j = (static_cast<size_t>(blockIdx.x) * kUpdateThreads + threadIdx.x) / 32;
       j < centroids; j += warps) {
    FinalizeCentroid(a, j, all_met ? -1 : a.donor[j / a.k], lane);
  }
  // The last block: every other block is past its reads of the donors' rows.
  __shared__ bool s_last;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    s_last = atomicAdd(&a.state->blocks_done, 1) == static_cast<int>(gridDim.x) - 1;
  }
  __syncthreads();
  if (!s_last) return;
  for (int b = 0; !all_met && b < a.batch; ++b) {
    const int donor = a.donor[b];
    if (donor < 0) continue;
    const size_t j = static_cast<size_t>(b) * a.k + donor;
    for (size_t i = threadIdx.x; i < a.d; i += blockDim.x) a.sums[j * a.d + i] = 0.f;
    if (threadIdx.x == 0) a.counts[j] = 0;
  }
  if (threadIdx.x != 0) return;
  DeviceState* st = a.state;
  st->blocks_done = 0;
  st->clusters_seen = 0;
  st->iterations = a.iteration + 1;
  if (converged) {
    st->stop = 1;
    st->converged = 1;
  }
}

// ---- SortByCluster
// Key spaces of up to 2^kBucketMaxBits labels: a counting sort over tiles
// of kBucketTile labels, in three passes.
//   count: each tile's labels counted in shared memory, written as row
//          `tile` of a tiles x labels matrix;
//   scan:  down each label's column, the exclusive prefix over tiles (a lane
//          per label, a warp per slice of tiles), and each label's total;
//   place: each tile ordered by label in shared memory (its own counts,
//          scanned, and a cursor per label), then written out: a label's
//          pairs from tile t start at (pairs of smaller labels, a scan of the
//          totals every block repeats) + (that label's pairs in tiles < t),
//          so they go to consecutive slots, in runs rather than one
//          scattered word per pair.
// Only shared-memory atomics: a hot label costs no global contention.
// Larger key spaces use CUB's device radix sort.
constexpr int kBucketThreads = 512;
constexpr int kBucketItems = 16;  // per thread, all loaded before any is used
constexpr int kBucketTile = kBucketThreads * kBucketItems;
constexpr int kBucketMaxBits = 13;  // 8,192 labels
constexpr int kBucketKeysPerThread = (1 << kBucketMaxBits) / kBucketThreads;
constexpr int kScanWarps = 32;
// Shared memory of the place pass: the staged tile, then two words per label.
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

// Entries [t * per, t * per + per) of a per-label row (thread t, per =
// kBucketKeysPerThread), zero past nkeys (a power of two).
__device__ __forceinline__ void LoadKeyRow(const uint32_t* row, uint32_t nkeys,
                                           uint32_t (&c)[kBucketKeysPerThread]) {
  const uint32_t k0 = threadIdx.x * kBucketKeysPerThread;
#pragma unroll
  for (int q = 0; q < kBucketKeysPerThread; q += 4) {
    if (k0 + q + 4 <= nkeys) {  // rows of nkeys >= 4 words are 16-byte aligned
      const uint4 v = *reinterpret_cast<const uint4*>(row + k0 + q);
      c[q] = v.x; c[q + 1] = v.y; c[q + 2] = v.z; c[q + 3] = v.w;
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) c[q + e] = k0 + q + e < nkeys ? row[k0 + q + e] : 0u;
    }
  }
}

using BucketScan = cub::BlockScan<uint32_t, kBucketThreads>;

__global__ void __launch_bounds__(kBucketThreads)
    bucket_count_kernel(const uint32_t* labels, size_t items, uint32_t nkeys, uint32_t* matrix) {
  __shared__ uint32_t hist[1 << kBucketMaxBits];
  WaitForPriorKernels();
  AllowNextKernel();
  uint32_t key[kBucketItems];
  LoadTile(labels, items, key);
  for (uint32_t k = threadIdx.x; k < nkeys; k += kBucketThreads) hist[k] = 0;
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kBucketItems; ++j) {
    if (key[j] != kNoKey) atomicAdd(hist + key[j], 1u);
  }
  __syncthreads();
  uint32_t* row = matrix + static_cast<size_t>(blockIdx.x) * nkeys;
  for (uint32_t k = threadIdx.x; k < nkeys; k += kBucketThreads) row[k] = hist[k];
}

// Block: labels [32 * blockIdx.x, + 32), a lane each; warp w: a slice of
// the tiles. Writes prefix[t][l] = sum of counts[t'][l], t' < t, and
// totals[l]. Two walks over the slice, whose loads do not wait on one
// another: its total, then (offset by the slices before) the prefixes.
__global__ void __launch_bounds__(kScanWarps * 32)
    bucket_scan_kernel(const uint32_t* counts, uint32_t tiles, uint32_t nkeys, uint32_t* prefix,
                       uint32_t* totals) {
  __shared__ uint32_t part[kScanWarps][32];
  WaitForPriorKernels();
  AllowNextKernel();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint32_t l = blockIdx.x * 32 + lane;
  const bool active = l < nkeys;
  const uint32_t per = (tiles + kScanWarps - 1) / kScanWarps;
  const uint32_t t0 = min(tiles, warp * per), t1 = min(tiles, t0 + per);
  uint32_t sum = 0;
  if (active) {
#pragma unroll 8
    for (uint32_t t = t0; t < t1; ++t) sum += counts[static_cast<size_t>(t) * nkeys + l];
  }
  part[warp][lane] = sum;
  __syncthreads();
  uint32_t before = 0, total = 0;
#pragma unroll
  for (int w = 0; w < kScanWarps; ++w) {
    before += w < warp ? part[w][lane] : 0u;
    total += part[w][lane];
  }
  if (!active) return;
#pragma unroll 8
  for (uint32_t t = t0; t < t1; ++t) {
    const size_t at = static_cast<size_t>(t) * nkeys + l;
    const uint32_t v = counts[at];
    prefix[at] = before;
    before += v;
  }
  if (warp == 0) totals[l] = total;
}

__global__ void __launch_bounds__(kBucketThreads)
    bucket_place_kernel(const uint32_t* labels, size_t items, uint32_t nkeys,
                        const uint32_t* counts, const uint32_t* prefix, const uint32_t* totals,
                        uint32_t* keys_out, uint32_t* idx_out) {
  __shared__ BucketScan::TempStorage scan;
  extern __shared__ uint32_t smem[];
  uint32_t* stage_key = smem;                             // [kBucketTile]
  uint32_t* stage_idx = stage_key + kBucketTile;          // [kBucketTile]
  uint32_t* cursor = stage_idx + kBucketTile;             // [nkeys]: next place in the tile
  uint32_t* shift = cursor + nkeys;                       // [nkeys]: output slot - place
  WaitForPriorKernels();
  AllowNextKernel();
  const size_t tile = blockIdx.x;
  uint32_t key[kBucketItems];
  LoadTile(labels, items, key);
  // Label k's first place in the tile (its counts scanned), its first slot
  // of all (the totals scanned) and its pairs in earlier tiles.
  uint32_t place[kBucketKeysPerThread], first[kBucketKeysPerThread],
      before[kBucketKeysPerThread];
  LoadKeyRow(counts + tile * nkeys, nkeys, place);
  LoadKeyRow(totals, nkeys, first);
  LoadKeyRow(prefix + tile * nkeys, nkeys, before);
  BucketScan(scan).ExclusiveSum(place, place);
  __syncthreads();  // `scan` is used again
  BucketScan(scan).ExclusiveSum(first, first);
#pragma unroll
  for (int q = 0; q < kBucketKeysPerThread; ++q) {
    const uint32_t k = threadIdx.x * kBucketKeysPerThread + q;
    if (k < nkeys) {
      cursor[k] = place[q];
      shift[k] = first[q] + before[q] - place[q];  // mod 2^32: place <= the final place
    }
  }
  __syncthreads();
  const uint32_t first_item = static_cast<uint32_t>(tile) * kBucketTile + threadIdx.x;
#pragma unroll
  for (int j = 0; j < kBucketItems; ++j) {
    if (key[j] == kNoKey) continue;
    const uint32_t at = atomicAdd(cursor + key[j], 1u);
    stage_key[at] = key[j];
    stage_idx[at] = first_item + static_cast<uint32_t>(j) * kBucketThreads;
  }
  __syncthreads();
  const size_t tile_begin = tile * kBucketTile;
  const uint32_t in_tile =
      static_cast<uint32_t>(items - tile_begin < kBucketTile ? items - tile_begin : kBucketTile);
  for (uint32_t at = threadIdx.x; at < in_tile; at += kBucketThreads) {
    const uint32_t k = stage_key[at];
    const uint32_t slot = shift[k] + at;
    keys_out[slot] = k;
    idx_out[slot] = stage_idx[at];
  }
}

__global__ void iota_kernel(uint32_t* out, size_t n) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<uint32_t>(i);
}

// Temporary storage of the two ways, laid out from `temp`:
//   counting sort: counts [tiles x nkeys], prefixes [same], totals [nkeys];
//   radix sort:    point indices [items], sort storage.
size_t MatrixEntries(size_t items, int key_bits) {
  return (size_t{1} << key_bits) * CeilDiv(items, size_t{kBucketTile});
}

}  // namespace

Status SortTempBytes(size_t items, int key_bits, size_t* bytes) {
  if (key_bits < 1 || key_bits > 31) return Status::InvalidArgument("sort: key bits out of range");
  if (key_bits <= kBucketMaxBits) {
    *bytes = (2 * MatrixEntries(items, key_bits) + (size_t{1} << key_bits)) * 4;
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
  uint32_t* counts = t32;
  uint32_t* prefix = counts + entries;
  uint32_t* totals = prefix + entries;
  const unsigned tiles = static_cast<unsigned>(CeilDiv(items, size_t{kBucketTile}));
  QUIVER_RETURN_IF_ERROR(LaunchAfterPrior(KernelShape{tiles, kBucketThreads}, stream,
                                          bucket_count_kernel, labels, items, nkeys, counts));
  QUIVER_RETURN_IF_ERROR(LaunchAfterPrior(
      KernelShape{static_cast<unsigned>(CeilDiv(nkeys, 32)), kScanWarps * 32}, stream,
      bucket_scan_kernel, counts, tiles, nkeys, prefix, totals));
  const size_t smem = BucketPlaceSmem(nkeys);
  QUIVER_CUDA_RETURN(cudaFuncSetAttribute(
      bucket_place_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  return LaunchAfterPrior(KernelShape{tiles, kBucketThreads, smem}, stream, bucket_place_kernel,
                          labels, items, nkeys, counts, prefix, totals, keys_out, idx_out);
}

static bool VecReduceEnabled() {
  const char* env = std::getenv("QUIVER_REDUCE");  // read per launch, as QUIVER_ASSIGN is
  return env == nullptr || std::strcmp(env, "v1") != 0;
}

template <Elem E>
static Status LaunchVec(int lanes, int col_blocks, unsigned blocks, const void* x, size_t ld,
                      size_t d, const uint32_t* keys, const uint32_t* idx, size_t items,
                      float* sums, int* counts, bool vec_atomics,
                      DeviceState* state, cudaStream_t stream) {
#define QUIVER_VEC_CASE(L)                                                    \
  case L:                                                                     \
    return LaunchAfterPrior(KernelShape{blocks, kReduceThreads}, stream,     \
                            reduce_sorted_vec_kernel<E, L>, x, ld, d, keys,   \
                            idx, items, sums, counts, vec_atomics,            \
                            col_blocks, state);
  switch (lanes) {
    QUIVER_VEC_CASE(4)
    QUIVER_VEC_CASE(8)
    QUIVER_VEC_CASE(16)
    QUIVER_VEC_CASE(32)
  }
#undef QUIVER_VEC_CASE
  return Status::InvalidArgument("reduce: lanes per row must be 4, 8, 16 or 32");
}

Status LaunchReduceSorted(const void* x, Elem elem, size_t ld, size_t d,
                          const uint32_t* keys_sorted,
                          const uint32_t* idx_sorted, size_t items,
                          float* sums, int* counts, DeviceState* state,
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
        return LaunchVec<Elem::kF32>(lanes, col_blocks, blocks, x, ld, d, keys_sorted,
                                     idx_sorted, items, sums, counts, vec_atomics, state,
                                     stream);
      case Elem::kF16:
        return LaunchVec<Elem::kF16>(lanes, col_blocks, blocks, x, ld, d, keys_sorted,
                                     idx_sorted, items, sums, counts, vec_atomics, state,
                                     stream);
      case Elem::kBf16:
        return LaunchVec<Elem::kBf16>(lanes, col_blocks, blocks, x, ld, d, keys_sorted,
                                      idx_sorted, items, sums, counts, vec_atomics, state,
                                      stream);
    }
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

Status LaunchUpdateCentroids(const UpdateArgs& args, cudaStream_t stream) {
  if (args.state == nullptr || args.donor == nullptr || args.batch < 1 || args.k < 1) {
    return Status::InvalidArgument("update: state, donor, batch and k are required");
  }
  // Cooperative: every block resident at once (the grid barrier), so at
  // most what fits; the warps then stride over the centroids.
  int dev = 0, sms = 0, per_sm = 0;
  QUIVER_CUDA_RETURN(cudaGetDevice(&dev));
  QUIVER_CUDA_RETURN(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  QUIVER_CUDA_RETURN(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, update_centroids_kernel, kUpdateThreads, 0));
  const size_t want = CeilDiv(static_cast<size_t>(args.batch) * args.k, kUpdateThreads / 32);
  const unsigned grid = static_cast<unsigned>(
      std::max<size_t>(1, std::min(want, static_cast<size_t>(per_sm) * sms)));
  return LaunchAfterPrior(KernelShape{grid, kUpdateThreads, 0, true}, stream,
                          update_centroids_kernel, args);
}

}  // namespace quiver::kernels::cuda
