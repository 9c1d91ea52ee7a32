// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Fused k-means assignment: distance products on tensor cores and a running
// argmin in registers; the n x k distance matrix never exists.
//
// One block owns kAssignTileM = 128 points and walks all centroids in tiles
// of kAssignTileN = 128. Rows are cut into 128-byte chunks (64 fp16 / 32 fp32
// components); a chunk of the centroid tile (and of the point tile, unless
// the whole point tile stays resident in shared memory, which it does when
// a row is at most 512 bytes) is brought in by cp.async, kStages deep, in an
// XOR-swizzled layout that ldmatrix reads without bank conflicts. Four warps
// each compute a 64 x 64 block of dot products with mma.sync (m16n8k16 for
// fp16/bf16, m16n8k8 for TF32, three TF32 products for 3xTF32), then fold
// score = bias[j] + alpha * dot into the per-row (min, argmin) they keep in
// registers. Ties go to the smaller centroid index, as on the CPU.
//
// On Hopper, fp16 / bf16 / TF32 with rows of 64 or 128 elements, and fp16 /
// bf16 with rows of any multiple of 64, go to the wgmma + TMA kernels in
// assign_wgmma.cu instead (QUIVER_ASSIGN=v1 forces this one).

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/cuda/argmin.cuh"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kStages = 3;
constexpr int kRowBytes = 128;                      // one chunk of a row
constexpr int kTileBytes = kAssignTileM * kRowBytes;  // 16 KiB (M == N)
constexpr int kMaxResidentChunks = 4;               // rows of <= 512 bytes

static_assert(kAssignTileM == kAssignTileN, "tiles share one layout");

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src,
                                          bool valid) {
  const int bytes = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst),
               "l"(src), "r"(bytes));
}
__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(addr));
}

__device__ __forceinline__ uint32_t ToTf32(uint32_t f) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(__uint_as_float(f)));
  return r;
}

template <Arith A>
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4],
                                    uint32_t b0, uint32_t b1) {
  if constexpr (A == Arith::kF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else if constexpr (A == Arith::kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, "
        "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Loads rows [row0, row0 + 128) x chunk `kc` (8 x 16 bytes) into a swizzled
// 16 KiB tile; rows >= nrows and 16-byte pieces past the row are zero.
__device__ __forceinline__ void LoadTile(uint8_t* tile, const uint8_t* base,
                                         size_t row0, size_t nrows,
                                         size_t row_bytes, int kc, int tid) {
  const int row_pieces = static_cast<int>(row_bytes >> 4);
#pragma unroll
  for (int m = 0; m < (kAssignTileM * 8) / kThreads; ++m) {
    const int i = tid + m * kThreads;
    const int r = i >> 3;
    const int c = i & 7;
    const int piece = kc * 8 + c;
    const bool valid = (row0 + r < nrows) && (piece < row_pieces);
    const uint8_t* src =
        valid ? base + (row0 + r) * row_bytes + static_cast<size_t>(piece) * 16
              : base;
    CpAsync16(SmemAddr(tile + r * kRowBytes + ((c ^ (r & 7)) << 4)), src,
              valid);
  }
}

template <Arith A>
__global__ void __launch_bounds__(kThreads, 2)
    fused_assign_kernel(const AssignArgs args) {
  if (args.state != nullptr && args.state->stop) return;
  extern __shared__ __align__(128) uint8_t smem[];

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp >> 1;
  const int warp_n = warp & 1;
  const int b = blockIdx.y;
  const size_t row0 = static_cast<size_t>(blockIdx.x) * kAssignTileM;
  const size_t ebytes = (A == Arith::kF16 || A == Arith::kBf16) ? 2 : 4;
  const size_t row_bytes = args.ld * ebytes;
  const uint8_t* x = static_cast<const uint8_t*>(args.x) +
                     static_cast<size_t>(b) * args.n * row_bytes;
  const uint8_t* c = static_cast<const uint8_t*>(args.c) +
                     static_cast<size_t>(b) * args.kpad * row_bytes;
  const float* cbias = args.cbias + static_cast<size_t>(b) * args.kpad;

  const int nk = static_cast<int>((row_bytes + kRowBytes - 1) / kRowBytes);
  const int row_pieces = static_cast<int>(row_bytes >> 4);
  const int ntiles = args.kpad / kAssignTileN;
  const bool resident = nk <= kMaxResidentChunks;
  uint8_t* xres = smem;
  uint8_t* stages = smem + (resident ? nk * kTileBytes : 0);
  const int stage_bytes = resident ? kTileBytes : 2 * kTileBytes;
  const int total = ntiles * nk;

  if (resident) {
    for (int kc = 0; kc < nk; ++kc) {
      LoadTile(xres + kc * kTileBytes, x, row0, args.n, row_bytes, kc, tid);
    }
  }
  auto issue = [&](int s) {
    if (s < total) {
      const int tile = s / nk;
      const int kc = s - tile * nk;
      uint8_t* st = stages + (s % kStages) * stage_bytes;
      LoadTile(st, c, static_cast<size_t>(tile) * kAssignTileN,
               static_cast<size_t>(args.kpad), row_bytes, kc, tid);
      if (!resident) {
        LoadTile(st + kTileBytes, x, row0, args.n, row_bytes, kc, tid);
      }
    }
    CpAsyncCommit();
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s);

  float acc[4][8][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.f;
  float best_v[4][2];
  uint32_t best_i[4][2];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
    best_v[mi][0] = best_v[mi][1] = FLT_MAX;
    best_i[mi][0] = best_i[mi][1] = 0xffffffffu;
  }
  const float alpha = args.alpha;

  for (int s = 0; s < total; ++s) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();
    issue(s + kStages - 1);
    const int tile = s / nk;
    const int kc = s - tile * nk;
    const uint8_t* st = stages + (s % kStages) * stage_bytes;
    const uint8_t* xs = resident ? xres + kc * kTileBytes : st + kTileBytes;
    const uint8_t* cs = st;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
      if (kc * 8 + ks * 2 >= row_pieces) break;  // past the row: all zero
      uint32_t a[4][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int r = warp_m * 64 + mi * 16 + (lane & 15);
        const int ch = ks * 2 + (lane >> 4);
        LdMatrixX4(a[mi], SmemAddr(xs + r * kRowBytes + ((ch ^ (r & 7)) << 4)));
      }
      uint32_t bf[8][2];
#pragma unroll
      for (int nj = 0; nj < 4; ++nj) {
        const int r = warp_n * 64 + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int ch = ks * 2 + ((lane >> 3) & 1);
        uint32_t t[4];
        LdMatrixX4(t, SmemAddr(cs + r * kRowBytes + ((ch ^ (r & 7)) << 4)));
        bf[2 * nj][0] = t[0];
        bf[2 * nj][1] = t[1];
        bf[2 * nj + 1][0] = t[2];
        bf[2 * nj + 1][1] = t[3];
      }
      if constexpr (A == Arith::kF16 || A == Arith::kBf16) {
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
#pragma unroll
          for (int ni = 0; ni < 8; ++ni)
            Mma<A>(acc[mi][ni], a[mi], bf[ni][0], bf[ni][1]);
      } else if constexpr (A == Arith::kTf32) {
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
#pragma unroll
          for (int e = 0; e < 4; ++e) a[mi][e] = ToTf32(a[mi][e]);
#pragma unroll
        for (int ni = 0; ni < 8; ++ni) {
          const uint32_t b0 = ToTf32(bf[ni][0]);
          const uint32_t b1 = ToTf32(bf[ni][1]);
#pragma unroll
          for (int mi = 0; mi < 4; ++mi) Mma<A>(acc[mi][ni], a[mi], b0, b1);
        }
      } else {  // 3xTF32: a*b ~ a_hi*b_hi + a_hi*b_lo + a_lo*b_hi
        uint32_t alo[4][4];
#pragma unroll
        for (int mi = 0; mi < 4; ++mi)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const uint32_t hi = ToTf32(a[mi][e]);
            alo[mi][e] = ToTf32(__float_as_uint(__uint_as_float(a[mi][e]) -
                                                __uint_as_float(hi)));
            a[mi][e] = hi;
          }
#pragma unroll
        for (int ni = 0; ni < 8; ++ni) {
          const uint32_t h0 = ToTf32(bf[ni][0]);
          const uint32_t h1 = ToTf32(bf[ni][1]);
          const uint32_t l0 = ToTf32(__float_as_uint(
              __uint_as_float(bf[ni][0]) - __uint_as_float(h0)));
          const uint32_t l1 = ToTf32(__float_as_uint(
              __uint_as_float(bf[ni][1]) - __uint_as_float(h1)));
#pragma unroll
          for (int mi = 0; mi < 4; ++mi) {
            Mma<A>(acc[mi][ni], alo[mi], h0, h1);
            Mma<A>(acc[mi][ni], a[mi], l0, l1);
            Mma<A>(acc[mi][ni], a[mi], h0, h1);
          }
        }
      }
    }
    if (kc == nk - 1) {
      // Fold this centroid tile into the running (min, argmin).
      const int j0 = tile * kAssignTileN + warp_n * 64 + 2 * (lane & 3);
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) {
        const int j = j0 + ni * 8;
        const float2 bias = *reinterpret_cast<const float2*>(cbias + j);
#pragma unroll
        for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            FoldPair(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1], bias, alpha,
                     static_cast<uint32_t>(j), best_v[mi][h], best_i[mi][h]);
            acc[mi][ni][2 * h] = 0.f;
            acc[mi][ni][2 * h + 1] = 0.f;
          }
        }
      }
    }
  }

  // Reduce over the 4 lanes sharing a row, then over the two warps (warp_n)
  // sharing a row block.
  CpAsyncWait<0>();
  __syncthreads();
  float* red_v = reinterpret_cast<float*>(smem);
  uint32_t* red_i = reinterpret_cast<uint32_t*>(smem) + 2 * kAssignTileM;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float v = best_v[mi][h];
      uint32_t i = best_i[mi][h];
      QuadArgmin(v, i);
      if ((lane & 3) == 0) {
        const int r = warp_m * 64 + mi * 16 + h * 8 + (lane >> 2);
        red_v[warp_n * kAssignTileM + r] = v;
        red_i[warp_n * kAssignTileM + r] = i;
      }
    }
  }
  __syncthreads();

  double dsum = 0.0;
  {
    const int r = tid;  // kThreads == kAssignTileM
    float v = red_v[r];
    uint32_t i = red_i[r];
    const float v1 = red_v[kAssignTileM + r];
    const uint32_t i1 = red_i[kAssignTileM + r];
    if (Better(v1, i1, v, i)) {
      v = v1;
      i = i1;
    }
    const size_t row = row0 + r;
    if (row < args.n) {
      const size_t g = static_cast<size_t>(b) * args.n + row;
      float dist;
      if constexpr (A == Arith::kTf32x3) {
        // Exact mode: the tensor cores' accumulation truncates, and
        // ||x||^2 + ||c||^2 - 2<x,c> cancels; recompute the winner's
        // distance directly in fp32 (n * d work, beside n * k * d).
        const float4* xr = reinterpret_cast<const float4*>(x + row * row_bytes);
        const float4* cr = reinterpret_cast<const float4*>(c + i * row_bytes);
        float acc0 = 0.f, acc1 = 0.f;
        for (size_t q = 0; q < args.ld / 4; ++q) {
          const float4 xv = __ldg(xr + q);
          const float4 cv = __ldg(cr + q);
          if (args.metric == 0) {
            const float d0 = xv.x - cv.x, d1 = xv.y - cv.y, d2 = xv.z - cv.z, d3 = xv.w - cv.w;
            acc0 = fmaf(d0, d0, fmaf(d1, d1, acc0));
            acc1 = fmaf(d2, d2, fmaf(d3, d3, acc1));
          } else {
            acc0 = fmaf(xv.x, cv.x, fmaf(xv.y, cv.y, acc0));
            acc1 = fmaf(xv.z, cv.z, fmaf(xv.w, cv.w, acc1));
          }
        }
        const float t = acc0 + acc1;
        dist = args.metric == 0 ? t : args.metric == 1 ? -t : 1.f - t;
      } else {
        dist = ScoreDistance(args, g, v);
      }
      args.labels[g] = static_cast<uint32_t>(b) * args.k + i;
      if (args.dist != nullptr) args.dist[g] = dist;
      dsum = dist;
    }
  }
  if (args.objective != nullptr) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      dsum += __shfl_xor_sync(0xffffffffu, dsum, off);
    }
    __syncthreads();
    double* red_d = reinterpret_cast<double*>(smem);
    if (lane == 0) red_d[warp] = dsum;
    __syncthreads();
    if (tid == 0) {
      double t = 0.0;
      for (int w = 0; w < kThreads / 32; ++w) t += red_d[w];
      atomicAdd(args.objective + b, t);
    }
  }
}

template <Arith A>
Status Launch(const AssignArgs& args, cudaStream_t stream) {
  const size_t row_bytes = args.ld * static_cast<size_t>(ArithBytes(A));
  const int nk = static_cast<int>(CeilDiv(row_bytes, kRowBytes));
  const bool resident = nk <= kMaxResidentChunks;
  const int smem = resident ? (nk + kStages) * kTileBytes : kStages * 2 * kTileBytes;
  QUIVER_CUDA_RETURN(cudaFuncSetAttribute(
      fused_assign_kernel<A>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  const dim3 grid(static_cast<unsigned>(CeilDiv(args.n, kAssignTileM)),
                  static_cast<unsigned>(args.batch));
  fused_assign_kernel<A><<<grid, kThreads, smem, stream>>>(args);
  QUIVER_CUDA_LAUNCH_CHECK();
  return Status::OK();
}

}  // namespace

// assign_wgmma.cu: the Hopper kernels (see WgmmaAssignCovers).
bool WgmmaAssignCovers(Arith arith, const AssignArgs& args);
Status LaunchWgmmaAssign(Arith arith, const AssignArgs& args, cudaStream_t stream);

Status LaunchAssign(Arith arith, const AssignArgs& args, cudaStream_t stream) {
  if (args.n == 0) return Status::OK();
  if ((args.ld * ArithBytes(arith)) % 16 != 0 || args.kpad % kAssignTileN != 0) {
    return Status::InvalidArgument("assign: rows must be 16-byte multiples");
  }
  if (WgmmaAssignCovers(arith, args)) {
    const Status s = LaunchWgmmaAssign(arith, args, stream);
    if (s.code() != Status::Code::kNotSupported) return s;  // else: v1 below
  }
  switch (arith) {
    case Arith::kF16:
      return Launch<Arith::kF16>(args, stream);
    case Arith::kBf16:
      return Launch<Arith::kBf16>(args, stream);
    case Arith::kTf32:
      return Launch<Arith::kTf32>(args, stream);
    case Arith::kTf32x3:
      return Launch<Arith::kTf32x3>(args, stream);
  }
  return Status::InvalidArgument("assign: unknown arithmetic");
}

}  // namespace quiver::kernels::cuda
