// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Fused k-means assignment for Hopper (sm_90a), fp16 / bf16 / TF32 operands:
// wgmma (m64n128, fp32 accumulators in registers) fed by the bulk tensor
// copy engine (TMA) through mbarriers. Same function as fused_assign_kernel
// in assign.cu (score = bias[j] + alpha * <x, c_j>, running (min, argmin),
// ties to the smaller index, same label / distance / objective outputs);
// covers rows of 64 or 128 elements (ld), and for fp16 / bf16 any multiple
// of 64 (wgmma_assign_dstream_kernel, below); any n, k, batch. Other shapes
// and precisions (3xTF32) use assign.cu.
//
// Persistent grid, one block per SM:
//   warpgroup 0  producer: one thread issues TMA loads. Per point tile: the
//                tile (A operand, loaded once and kept while every centroid
//                tile streams past), then the centroid tiles of 128 rows
//                (B operand), kStages deep ring. Both arrive 128B-swizzled,
//                as wgmma reads them. The next point tile is requested as
//                soon as the ring has been filled for the current one.
//   warpgroups 1 .. C  consumers: each owns one m64 slice of the point tile
//                and computes its block of dot products per centroid tile,
//                then folds it into its running (min, argmin). They take
//                turns at the tensor cores, round robin (named barriers,
//                FA3-style): a consumer issues its products and passes the
//                turn at once, so the next one's products queue behind them
//                while it waits for its own and runs its argmin. The argmin
//                overlaps the products only in part (kernels/cuda/NOTES.md,
//                v4 and v5).
//
// Tile shapes (TileShape below). fp16 / bf16: three consumers, 192 points a
// tile, both operands read by wgmma from shared memory (k16 steps), A double
// buffered. TF32 (fp32 rows, twice the bytes): two consumers, 128 points a
// tile. Its A goes from shared memory to registers once per tile, rounded
// there with cvt.rna as v1 rounds it (wgmma reading fp32 from shared memory
// would truncate, biasing every product the same way), and its buffer is
// handed back at once, so one A buffer suffices. The centroid kernel copy is
// already TF32-rounded by the update (update.cu), so B is read as stored.

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/argmin.cuh"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels::cuda {
namespace {

constexpr int kCentRows = 128;  // centroids per streamed tile (== kAssignTileN)
constexpr int kChunkBytes = 128;  // a row is cut into 128-byte chunks (swizzle atom rows)
constexpr int kBChunkBytes = kCentRows * kChunkBytes;  // 16 KiB
constexpr int kSmemBudget = 224 * 1024;  // of the 227 KiB a block may have
static_assert(kCentRows == kAssignTileN, "centroid padding is per 128 rows");

// NK = chunks per row (ld * element bytes / 128). Every wgmma k-step covers
// 32 bytes of a row (k16 of fp16 / bf16, k8 of TF32): 4 steps a chunk. Each
// consumer warpgroup owns one m64 slice of the point tile.
template <Arith A, int NK>
struct TileShape {
  static constexpr bool kTf32 = A == Arith::kTf32;
  // Consumer warpgroups: three for 16-bit rows, so that two argmins run
  // while the third's products do (on the H100 at the key shape 0.5-1.5%
  // faster per Lloyd iteration than two consumers of two m64 slices each,
  // in five device calls; kernels/cuda/NOTES.md, v5); two for TF32, whose A
  // lives in registers (64 more a thread).
  static constexpr int kConsumers = kTf32 ? 2 : 3;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kElemBytes = kTf32 ? 4 : 2;
  static constexpr int kChunkElems = kChunkBytes / kElemBytes;
  static constexpr int kPointRows = kConsumers * 64;
  static constexpr int kASlots = kTf32 ? 1 : 2;
  static constexpr int kAChunkBytes = kPointRows * kChunkBytes;
  static constexpr int kKSteps = NK * 4;
  static constexpr int kStagesFit =
      (kSmemBudget - kASlots * NK * kAChunkBytes) / (NK * kBChunkBytes);
  static constexpr int kStages = kStagesFit > 6 ? 6 : kStagesFit;
  static constexpr int kSmemBytes = kASlots * NK * kAChunkBytes +
                                    kStages * NK * kBChunkBytes +
                                    (2 * kASlots + 2 * kStages) * 8 + 1024;
  // Registers: a block holds 64 Ki. At launch each thread gets an equal
  // share (in whole warps of 256); the producer gives back all but 24 and
  // the consumers take what that frees (setmaxnreg, multiples of 8).
  static constexpr int kLaunchRegs = 65536 / (kThreads / 32) / 256 * 256 / 32;
  static constexpr int kProducerRegs = 24;
  static constexpr int kConsumerRegsFit =
      (kLaunchRegs + (kLaunchRegs - kProducerRegs) / kConsumers) / 8 * 8;
  static constexpr int kConsumerRegs = kConsumerRegsFit > 232 ? 232 : kConsumerRegsFit;
  static_assert(128 * (kProducerRegs + kConsumers * kConsumerRegs) <= kThreads * kLaunchRegs,
                "setmaxnreg hands out no more registers than the block was given");
  static_assert(kStages >= 2, "centroid ring needs two stages");
};

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QUIVER_WGMMA_OK 1
#endif

#ifdef QUIVER_WGMMA_OK
__device__ __forceinline__ uint32_t Smem(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void MbarExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
               "r"(bytes) : "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_%=;\n}\n" ::"r"(bar),
      "r"(parity) : "memory");
}
__device__ __forceinline__ void Tma3d(uint32_t dst, const CUtensorMap* map, int c0,
                                      int c1, int c2, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void NamedSync(int id) {
  asm volatile("bar.sync %0, 256;\n" ::"r"(id) : "memory");
}
__device__ __forceinline__ void NamedArrive(int id) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(id) : "memory");
}

// n (full, empty) mbarrier pairs, 8 bytes apart: full completes on the
// producer's arrival plus its copies' bytes, empty on the consumer warps'.
__device__ __forceinline__ void InitSlots(uint32_t full, uint32_t empty, int n,
                                          int consumer_warps) {
  for (int i = 0; i < n; ++i) {
    MbarInit(full + 8 * i, 1);
    MbarInit(empty + 8 * i, consumer_warps);
  }
}

// A walk around a ring of N stages: the stage, and the parity of the phase
// its full barrier is in (the empty one is a phase behind, for the producer).
template <int N>
struct Ring {
  int stage = 0;
  uint32_t phase = 0;
  __device__ __forceinline__ void Advance() {
    if (++stage == N) {
      stage = 0;
      phase ^= 1;
    }
  }
};

// K-major operand, 128-byte swizzle: 8-row atoms of 1024 bytes (SBO).
__device__ __forceinline__ uint64_t Desc(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) |
         (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}
// The descriptor of base + offset, from base's. The start address is the
// low field (address >> 4, 14 bits); shared memory ends below 2^18 bytes, so
// adding there never carries out of it. With offset a compile-time constant
// this is one add per wgmma instead of Desc's mask, shift and or.
__device__ __forceinline__ uint64_t DescAt(uint64_t base, uint32_t offset) {
  return base + (offset >> 4);
}

#define QUIVER_WG_REGS                                                       \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "  \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, "   \
  "%30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "   \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, "   \
  "%58, %59, %60, %61, %62, %63}"
#define QUIVER_WG_OUTS(d)                                                     \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),     \
      "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]),            \
      "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),        \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),        \
      "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),        \
      "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),        \
      "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),        \
      "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),        \
      "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),        \
      "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),        \
      "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),        \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),        \
      "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

template <Arith A>
__device__ __forceinline__ void Wgmma(float (&d)[64], uint64_t da, uint64_t db,
                                      int scale_d) {
  if constexpr (A == Arith::kF16) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " QUIVER_WG_REGS
        ", %64, %65, p, 1, 1, 0, 0;\n}\n"
        : QUIVER_WG_OUTS(d)
        : "l"(da), "l"(db), "r"(scale_d));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " QUIVER_WG_REGS
        ", %64, %65, p, 1, 1, 0, 0;\n}\n"
        : QUIVER_WG_OUTS(d)
        : "l"(da), "l"(db), "r"(scale_d));
  }
}
#define QUIVER_WG_REGS128 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, " \
  "%14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, " \
  "%28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, " \
  "%42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, " \
  "%56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, " \
  "%70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, " \
  "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, " \
  "%98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, " \
  "%126, %127}"
#define QUIVER_WG_OUTS128(d) \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), \
  "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), \
  "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), \
  "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), \
  "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), \
  "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), \
  "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), \
  "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), \
  "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), \
  "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
  "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), \
  "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), \
  "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), \
  "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
  "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), \
  "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), \
  "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), \
  "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
  "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), \
  "+f"(d[126]), "+f"(d[127])

// m64n256k16, both operands from shared memory (the streamed-D kernel).
template <Arith A>
__device__ __forceinline__ void Wgmma256(float (&d)[128], uint64_t da, uint64_t db, int scale_d) {
  if constexpr (A == Arith::kF16) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 " QUIVER_WG_REGS128
        ", %128, %129, p, 1, 1, 0, 0;\n}\n"
        : QUIVER_WG_OUTS128(d)
        : "l"(da), "l"(db), "r"(scale_d));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 " QUIVER_WG_REGS128
        ", %128, %129, p, 1, 1, 0, 0;\n}\n"
        : QUIVER_WG_OUTS128(d)
        : "l"(da), "l"(db), "r"(scale_d));
  }
}

// TF32 products, A (this thread's 4 elements of the m64 x k8 slice) from
// registers, B from shared memory.
__device__ __forceinline__ void WgmmaTf32(float (&d)[64], const uint32_t (&a)[4],
                                          uint64_t db, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " QUIVER_WG_REGS
      ", {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
      : QUIVER_WG_OUTS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
__device__ __forceinline__ uint32_t LdsTf32(uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(addr));
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return r;
}
template <int N>
__device__ __forceinline__ void FenceOperand(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}


// Folds 128 columns of scores (bias + alpha * dot) into each row's running
// (min, argmin): columns [128 Q, 128 Q + 128) of the accumulators. Layout of
// wgmma m64nN (fp32): acc[4i + 2h + e] is row (lane / 4) + 8h of the warp's
// 16 rows of the m64 slice, column cbase + 8i + e, where cbase = tile start +
// 2 (lane % 4). bias: this group's 16 column pairs.
template <int Q, int N>
__device__ __forceinline__ void FoldTile(const float (&acc)[N], const float2 (&bias)[16],
                                         float alpha, int cbase, float (&best_v)[2],
                                         uint32_t (&best_i)[2]) {
  static_assert(N >= 64 * (Q + 1), "column group inside the accumulators");
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const uint32_t j = static_cast<uint32_t>(cbase + 128 * Q + 8 * i);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      FoldPair(acc[64 * Q + 4 * i + 2 * h], acc[64 * Q + 4 * i + 2 * h + 1], bias[i], alpha, j,
               best_v[h], best_i[h]);
    }
  }
}

// Bias of this thread's 32 columns of a 128-column group (see FoldTile);
// +inf (the score of a padding column) when `valid` is false.
__device__ __forceinline__ void LoadBias(const float* cbias, int cbase, float2 (&bias)[16],
                                         bool valid = true) {
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    bias[i] = valid ? __ldg(reinterpret_cast<const float2*>(cbias + cbase + 8 * i))
                    : make_float2(INFINITY, INFINITY);
  }
}

// Adds this warp's objective share of problem b (wsum) to the objective.
__device__ __forceinline__ void FlushObjective(const AssignArgs& args, int b, double wsum,
                                               int lane) {
  if (b < 0 || args.objective == nullptr) return;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) wsum += __shfl_xor_sync(0xffffffffu, wsum, off);
  if (lane == 0) atomicAdd(args.objective + b, wsum);
}

// This thread's rows of a warpgroup's m64 slice of a point tile: the wgmma
// accumulator layout gives lane the rows (lane / 4) + 8 h, h = 0, 1, of its
// warp's 16.
__device__ __forceinline__ size_t TileRow(size_t first_row, int h, int wl, int lane) {
  return first_row + wl * 16 + h * 8 + (lane >> 2);
}

// ||x||^2 of this thread's rows (L2; lanes that write a row only), loaded
// when a point tile starts so that WriteRows does not wait for them.
__device__ __forceinline__ void LoadRowNorms(const AssignArgs& args, int b, size_t first_row,
                                             int wl, int lane, float (&xnorm)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const size_t row = TileRow(first_row, h, wl, lane);
    xnorm[h] = (args.metric == 0 && (lane & 3) == 0 && row < args.n)
                   ? __ldg(args.xnorm + static_cast<size_t>(b) * args.n + row)
                   : 0.f;
  }
}

// Rows of a finished point tile: reduces each row's (min, argmin) over the 4
// lanes that share it, writes label and distance, adds the distance to wsum.
// first_row: the warpgroup's first row of problem b.
__device__ __forceinline__ void WriteRows(const AssignArgs& args, int b, size_t first_row,
                                          int wl, int lane, const float (&xnorm)[2],
                                          const float (&best_v)[2], const uint32_t (&best_i)[2],
                                          double& wsum) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float v = best_v[h];
    uint32_t i = best_i[h];
    QuadArgmin(v, i);
    const size_t row = TileRow(first_row, h, wl, lane);
    if ((lane & 3) == 0 && row < args.n) {
      const size_t g = static_cast<size_t>(b) * args.n + row;
      const float dist = ScoreDistance(args.metric, xnorm[h], v);
      args.labels[g] = static_cast<uint32_t>(b) * args.k + i;
      if (args.dist != nullptr) args.dist[g] = dist;
      wsum += dist;
    }
  }
}
#endif  // QUIVER_WGMMA_OK

template <Arith A, int NK>
__global__ void __launch_bounds__(TileShape<A, NK>::kThreads, 1)
    wgmma_assign_kernel(const AssignArgs args, const __grid_constant__ CUtensorMap tmx,
                        const __grid_constant__ CUtensorMap tmc) {
#ifdef QUIVER_WGMMA_OK
  using S = TileShape<A, NK>;
  constexpr int kStages = S::kStages;
  constexpr int C = S::kConsumers;
  constexpr int kASlots = S::kASlots;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  uint8_t* abuf = smem;                                      // [ASlots][NK][AChunk]
  uint8_t* bbuf = smem + kASlots * NK * S::kAChunkBytes;     // [S][NK][16 KiB]
  uint64_t* bars = reinterpret_cast<uint64_t*>(bbuf + kStages * NK * kBChunkBytes);
  const uint32_t full_a = Smem(bars);                       // [ASlots]
  const uint32_t empty_a = Smem(bars + kASlots);            // [ASlots]
  const uint32_t full_b = Smem(bars + 2 * kASlots);         // [S]
  const uint32_t empty_b = Smem(bars + 2 * kASlots + kStages);  // [S]

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  if (tid == 0) {
    InitSlots(full_a, empty_a, kASlots, 4 * C);
    InitSlots(full_b, empty_b, kStages, 4 * C);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  // Set-up above overlaps the end of the kernel before (the update that
  // writes the centroids).
  WaitForPriorKernels();
  AllowNextKernel();
  if (args.state != nullptr && args.state->stop) return;

  const int tiles_per_problem = static_cast<int>((args.n + S::kPointRows - 1) / S::kPointRows);
  const int ptiles = tiles_per_problem * args.batch;
  const int ctiles = args.kpad / kCentRows;

  if (warp < 4) {  // ---- producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(S::kProducerRegs));
    if (tid == 0) {
      // Point tile p (the lp-th of this block) into A slot lp % kASlots.
      auto load_points = [&](int p, int lp) {
        const int b = p / tiles_per_problem;
        const int row0 = (p - b * tiles_per_problem) * S::kPointRows;
        const int slot = lp % kASlots;
        MbarWait(empty_a + 8 * slot, ((lp / kASlots) & 1) ^ 1);
        MbarExpectTx(full_a + 8 * slot, NK * S::kAChunkBytes);
#pragma unroll
        for (int kc = 0; kc < NK; ++kc) {
          Tma3d(Smem(abuf + (slot * NK + kc) * S::kAChunkBytes), &tmx,
                kc * S::kChunkElems, row0, b, full_a + 8 * slot);
        }
      };
      Ring<kStages> ring;
      int lp = 0;
      if (static_cast<int>(blockIdx.x) < ptiles) load_points(blockIdx.x, 0);
      const int next_at = (ctiles < kStages ? ctiles : kStages) - 1;
      for (int p = blockIdx.x; p < ptiles; p += gridDim.x, ++lp) {
        const int b = p / tiles_per_problem;
        for (int t = 0; t < ctiles; ++t) {
          MbarWait(empty_b + 8 * ring.stage, ring.phase ^ 1);
          MbarExpectTx(full_b + 8 * ring.stage, NK * kBChunkBytes);
#pragma unroll
          for (int kc = 0; kc < NK; ++kc) {
            Tma3d(Smem(bbuf + (ring.stage * NK + kc) * kBChunkBytes), &tmc,
                  kc * S::kChunkElems, t * kCentRows, b, full_b + 8 * ring.stage);
          }
          ring.Advance();
          // The ring is full for this tile: request the next point tile.
          if (t == next_at && p + static_cast<int>(gridDim.x) < ptiles) {
            load_points(p + gridDim.x, lp + 1);
          }
        }
      }
    }
    return;
  }

  // ---- consumers
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(S::kConsumerRegs));
  const int wg = (warp >> 2) - 1;  // 0 .. C - 1
  const int wl = warp & 3;         // warp within the warpgroup
  const float alpha = args.alpha;
  // Turns at the tensor cores go round the consumers: warpgroup w waits at
  // named barrier 1 + w, which warpgroup w - 1 (mod C) arrives at.
  const int next_turn = 1 + (wg + 1) % C;
  if (wg == C - 1) NamedArrive(1);  // warpgroup 0 goes first

  float acc[64];
  // TF32: this thread's share of its m64 x ld slice of the point tile, in
  // the wgmma A-register layout (rows g and g + 8 of the warp's 16, columns
  // t and t + 4 of each k8 step; g = lane / 4, t = lane % 4), rounded.
  uint32_t afrag[S::kTf32 ? S::kKSteps : 1][4];
  Ring<kStages> ring;
  int lp = 0;
  double wsum = 0.0;  // this warp's objective share for problem cur_b
  int cur_b = -1;
  for (int p = blockIdx.x; p < ptiles; p += gridDim.x, ++lp) {
    const int b = p / tiles_per_problem;
    const size_t row0 = static_cast<size_t>(p - b * tiles_per_problem) * S::kPointRows;
    const int slot = lp % kASlots;
    const float* cbias = args.cbias + static_cast<size_t>(b) * args.kpad;
    const int my_rows = wg * 64;  // first tile row of this warpgroup
    const uint32_t a_base = Smem(abuf + slot * NK * S::kAChunkBytes) + my_rows * kChunkBytes;
    float best_v[2] = {FLT_MAX, FLT_MAX};
    uint32_t best_i[2] = {0xffffffffu, 0xffffffffu};
    const uint64_t da0 = Desc(a_base);
    float xnorm[2];  // this thread's rows' ||x||^2, for WriteRows
    LoadRowNorms(args, b, row0 + my_rows, wl, lane, xnorm);
    MbarWait(full_a + 8 * slot, (lp / kASlots) & 1);
    if constexpr (S::kTf32) {
      const int r = wl * 16 + (lane >> 2);  // and r + 8: same r & 7
      const uint32_t row_lo = a_base + r * kChunkBytes + (lane & 3) * 4;
      const uint32_t row_hi = row_lo + 8 * kChunkBytes;
#pragma unroll
      for (int ks = 0; ks < S::kKSteps; ++ks) {
        const uint32_t chunk = (ks >> 2) * S::kAChunkBytes;
        const uint32_t p0 = ((((ks & 3) * 2) ^ (r & 7)) << 4) + chunk;      // columns t
        const uint32_t p1 = ((((ks & 3) * 2 + 1) ^ (r & 7)) << 4) + chunk;  // columns t + 4
        afrag[ks][0] = LdsTf32(row_lo + p0);
        afrag[ks][1] = LdsTf32(row_hi + p0);
        afrag[ks][2] = LdsTf32(row_lo + p1);
        afrag[ks][3] = LdsTf32(row_hi + p1);
      }
      __syncwarp();
      if (lane == 0) MbarArrive(empty_a + 8 * slot);  // the tile lives in registers now
    }

    for (int t = 0; t < ctiles; ++t) {
      MbarWait(full_b + 8 * ring.stage, ring.phase);
      const uint64_t db0 = Desc(Smem(bbuf + ring.stage * NK * kBChunkBytes));
      NamedSync(1 + wg);  // my turn at the tensor cores
      FenceOperand(acc);
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
      for (int ks = 0; ks < S::kKSteps; ++ks) {
        const uint32_t koff = (ks & 3) * 32;  // k-step inside the 128-byte row
        const uint64_t db = DescAt(db0, (ks >> 2) * kBChunkBytes + koff);
        if constexpr (S::kTf32) {
          WgmmaTf32(acc, afrag[ks], db, ks > 0 ? 1 : 0);
        } else {
          Wgmma<A>(acc, DescAt(da0, (ks >> 2) * S::kAChunkBytes + koff), db, ks > 0 ? 1 : 0);
        }
      }
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      // The next warpgroup's turn: its products queue behind these.
      NamedArrive(next_turn);
      // Bias of this thread's 32 columns while the products run.
      const int cbase = t * kCentRows + 2 * (lane & 3);
      float2 bias[16];
      LoadBias(cbias, cbase, bias);
      asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
      FenceOperand(acc);
      __syncwarp();
      if (lane == 0) {
        MbarArrive(empty_b + 8 * ring.stage);
        if (!S::kTf32 && t == ctiles - 1) MbarArrive(empty_a + 8 * slot);
      }
      ring.Advance();
      FoldTile<0>(acc, bias, alpha, cbase, best_v, best_i);
    }

    // Rows of this point tile.
    if (b != cur_b) {
      FlushObjective(args, cur_b, wsum, lane);
      wsum = 0.0;
      cur_b = b;
    }
    WriteRows(args, b, row0 + my_rows, wl, lane, xnorm, best_v, best_i, wsum);
  }
  if (wg == 0) NamedSync(1);  // matches warpgroup C - 1's last arrive
  FlushObjective(args, cur_b, wsum, lane);
#endif  // QUIVER_WGMMA_OK
}

// Rows longer than 128 elements, fp16 / bf16 (ld a multiple of 64): a tile of
// points no longer fits beside the centroid ring (256 points of 768-element
// fp16 rows are 384 KiB), so both operands stream along the row. A stage
// holds one 64-element chunk of 128 points (A, 16 KiB) and of 256 centroids
// (B, 32 KiB); ld / 64 stages make one 128 x 256 block of products, each
// consumer warpgroup 64 of the points (m64n256, 128 accumulators a thread).
// Both consumers take every stage (no ping-pong: the argmin runs once per
// ld / 64 stages, a small share of the time here), keep one stage's products
// in flight and hand a stage back when its products are done. A block reads
// its points once per 256 centroids; 128-point tiles keep what all blocks
// re-read (132 x 192 KiB at ld = 768) within L2, where 256-point tiles
// (twice that) fell through to DRAM (ncu: 91% of DRAM bandwidth, 40% L2 hits).
constexpr int kDThreads = 384;  // a producer and two consumer warpgroups
constexpr int kDStages = 4;
constexpr int kDPointRows = 128;
constexpr int kDCentRows = 256;
constexpr int kDABytes = kDPointRows * kChunkBytes;             // 16 KiB
constexpr int kDStageBytes = kDABytes + kDCentRows * kChunkBytes;  // 48 KiB
constexpr int kDSmemBytes = kDStages * kDStageBytes + 2 * kDStages * 8 + 1024;

template <Arith A>
__global__ void __launch_bounds__(kDThreads, 1)
    wgmma_assign_dstream_kernel(const AssignArgs args, const __grid_constant__ CUtensorMap tmx,
                                const __grid_constant__ CUtensorMap tmc) {
#ifdef QUIVER_WGMMA_OK
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t{1023});
  // Stage s: A chunk at s * kDStageBytes, B chunk right after it.
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + kDStages * kDStageBytes);
  const uint32_t full = Smem(bars);              // [kDStages]
  const uint32_t empty = Smem(bars + kDStages);  // [kDStages]

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  if (tid == 0) {
    InitSlots(full, empty, kDStages, 8);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  WaitForPriorKernels();
  AllowNextKernel();
  if (args.state != nullptr && args.state->stop) return;

  const int tiles_per_problem = static_cast<int>((args.n + kDPointRows - 1) / kDPointRows);
  const int ptiles = tiles_per_problem * args.batch;
  // The last tile may reach 128 rows past kpad: TMA fills them with zeros
  // and their bias reads as +inf.
  const int ctiles = (args.kpad + kDCentRows - 1) / kDCentRows;
  const int nk = static_cast<int>(args.ld / 64);  // chunks per row

  if (warp < 4) {  // ---- producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (tid == 0) {
      Ring<kDStages> ring;
      for (int p = blockIdx.x; p < ptiles; p += gridDim.x) {
        const int b = p / tiles_per_problem;
        const int row0 = (p - b * tiles_per_problem) * kDPointRows;
        for (int t = 0; t < ctiles; ++t) {
          for (int kc = 0; kc < nk; ++kc) {
            MbarWait(empty + 8 * ring.stage, ring.phase ^ 1);
            MbarExpectTx(full + 8 * ring.stage, kDStageBytes);
            const uint32_t dst = Smem(smem + ring.stage * kDStageBytes);
            Tma3d(dst, &tmx, kc * 64, row0, b, full + 8 * ring.stage);
            Tma3d(dst + kDABytes, &tmc, kc * 64, t * kDCentRows, b, full + 8 * ring.stage);
            ring.Advance();
          }
        }
      }
    }
    return;
  }

  // ---- consumers
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
  const int wg = (warp >> 2) - 1;  // 0 or 1: rows [64 wg, 64 wg + 64) of the tile
  const int wl = warp & 3;
  const float alpha = args.alpha;
  float acc[128];
  Ring<kDStages> ring;
  double wsum = 0.0;
  int cur_b = -1;
  for (int p = blockIdx.x; p < ptiles; p += gridDim.x) {
    const int b = p / tiles_per_problem;
    const size_t row0 = static_cast<size_t>(p - b * tiles_per_problem) * kDPointRows;
    const float* cbias = args.cbias + static_cast<size_t>(b) * args.kpad;
    float best_v[2] = {FLT_MAX, FLT_MAX};
    uint32_t best_i[2] = {0xffffffffu, 0xffffffffu};
    float xnorm[2];
    LoadRowNorms(args, b, row0 + wg * 64, wl, lane, xnorm);
    for (int t = 0; t < ctiles; ++t) {
      int prev = -1;  // stage whose products may still run
      for (int kc = 0; kc < nk; ++kc) {
        MbarWait(full + 8 * ring.stage, ring.phase);
        const uint64_t da0 =
            Desc(Smem(smem + ring.stage * kDStageBytes) + wg * 64 * kChunkBytes);
        const uint64_t db0 = Desc(Smem(smem + ring.stage * kDStageBytes) + kDABytes);
        FenceOperand(acc);
        asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
          Wgmma256<A>(acc, DescAt(da0, ks * 32), DescAt(db0, ks * 32),
                      (kc > 0 || ks > 0) ? 1 : 0);
        }
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
        if (prev >= 0) {  // the previous stage's products are done: hand it back
          asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
          __syncwarp();
          if (lane == 0) MbarArrive(empty + 8 * prev);
        }
        prev = ring.stage;
        ring.Advance();
      }
      const int cbase = t * kDCentRows + 2 * (lane & 3);
      float2 bias[16];
      LoadBias(cbias, cbase, bias);
      asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
      FenceOperand(acc);
      __syncwarp();
      if (lane == 0) MbarArrive(empty + 8 * prev);
      FoldTile<0>(acc, bias, alpha, cbase, best_v, best_i);
      LoadBias(cbias, cbase + 128, bias, t * kDCentRows + 128 < args.kpad);
      FoldTile<1>(acc, bias, alpha, cbase, best_v, best_i);
    }
    if (b != cur_b) {
      FlushObjective(args, cur_b, wsum, lane);
      wsum = 0.0;
      cur_b = b;
    }
    WriteRows(args, b, row0 + wg * 64, wl, lane, xnorm, best_v, best_i, wsum);
  }
  FlushObjective(args, cur_b, wsum, lane);
#endif  // QUIVER_WGMMA_OK
}

PFN_cuTensorMapEncodeTiled_v12000 EncodeFn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000,
                                         cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      p = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// rows x ld elements (elem_bytes each) per problem, `batch` problems; box of
// one 128-byte chunk x box_rows.
bool MakeMap(CUtensorMap* map, const void* base, size_t ld, int elem_bytes, size_t rows,
             int batch, int box_rows) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = EncodeFn();
  if (enc == nullptr) return false;
  const cuuint64_t dims[3] = {ld, rows, static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[2] = {ld * elem_bytes, rows * ld * elem_bytes};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(kChunkBytes / elem_bytes),
                             static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t estr[3] = {1, 1, 1};
  return enc(map, elem_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_UINT16 : CU_TENSOR_MAP_DATA_TYPE_UINT32,
             3, const_cast<void*>(base), dims, strides, box, estr,
             CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

// Encodes the tensor maps of the points (boxes of point_rows rows) and of
// the centroids (cent_rows rows) and launches `kernel` as a persistent grid:
// one block per SM, or per point tile where there are fewer.
template <typename Kernel>
Status LaunchPersistent(Kernel kernel, const AssignArgs& args, int elem_bytes, int point_rows,
                        int cent_rows, int threads, int smem_bytes, int sms,
                        cudaStream_t stream) {
  CUtensorMap tmx, tmc;
  if (!MakeMap(&tmx, args.x, args.ld, elem_bytes, args.n, args.batch, point_rows) ||
      !MakeMap(&tmc, args.c, args.ld, elem_bytes, static_cast<size_t>(args.kpad), args.batch,
               cent_rows)) {
    return Status::NotSupported("assign: tensor map encoding failed");
  }
  QUIVER_CUDA_RETURN(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes));
  const size_t ptiles = CeilDiv(args.n, static_cast<size_t>(point_rows)) * args.batch;
  const int grid = static_cast<int>(ptiles < static_cast<size_t>(sms) ? ptiles : sms);
  return LaunchAfterPrior(KernelShape{static_cast<unsigned>(grid), static_cast<unsigned>(threads),
                                      static_cast<size_t>(smem_bytes)},
                          stream, kernel, args, tmx, tmc);
}

template <Arith A, int NK>
Status LaunchW(const AssignArgs& args, int sms, cudaStream_t stream) {
  using S = TileShape<A, NK>;
  static_assert(NK * S::kChunkElems == 64 || NK * S::kChunkElems == 128,
                "rows of 64 or 128 elements");
  static_assert(S::kKSteps * 32 == NK * kChunkBytes, "a k-step covers 32 bytes");
  return LaunchPersistent(wgmma_assign_kernel<A, NK>, args, S::kElemBytes, S::kPointRows,
                          kCentRows, S::kThreads, S::kSmemBytes, sms, stream);
}

template <Arith A>
Status LaunchDStream(const AssignArgs& args, int sms, cudaStream_t stream) {
  return LaunchPersistent(wgmma_assign_dstream_kernel<A>, args, 2, kDPointRows, kDCentRows,
                          kDThreads, kDSmemBytes, sms, stream);
}

}  // namespace

// Returns true when the Hopper kernels cover this call.
bool WgmmaAssignCovers(Arith arith, const AssignArgs& args) {
  if (arith == Arith::kTf32x3) return false;
  const bool streams_rows = arith != Arith::kTf32 && args.ld > 128 && args.ld % 64 == 0;
  if (args.ld != 64 && args.ld != 128 && !streams_rows) return false;
  if (args.kpad % kCentRows != 0 || args.n == 0) return false;
  if (args.n > (size_t{1} << 31) || args.batch > 65535) return false;
  if (reinterpret_cast<uintptr_t>(args.x) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(args.c) % 16 != 0) {
    return false;  // TMA needs 16-byte aligned global addresses
  }
  const char* env = std::getenv("QUIVER_ASSIGN");
  if (env != nullptr && std::strcmp(env, "v1") == 0) return false;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  if (major != 9 || minor != 0) return false;  // sm_90a machine code only
  return EncodeFn() != nullptr;
}

Status LaunchWgmmaAssign(Arith arith, const AssignArgs& args, cudaStream_t stream) {
  int dev = 0, sms = 0;
  QUIVER_CUDA_RETURN(cudaGetDevice(&dev));
  QUIVER_CUDA_RETURN(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const bool wide = args.ld == 128;
  if (args.ld > 128) {
    return arith == Arith::kF16 ? LaunchDStream<Arith::kF16>(args, sms, stream)
                                : LaunchDStream<Arith::kBf16>(args, sms, stream);
  }
  switch (arith) {
    case Arith::kF16:
      if (wide) return LaunchW<Arith::kF16, 2>(args, sms, stream);
      return LaunchW<Arith::kF16, 1>(args, sms, stream);
    case Arith::kBf16:
      return wide ? LaunchW<Arith::kBf16, 2>(args, sms, stream)
                  : LaunchW<Arith::kBf16, 1>(args, sms, stream);
    case Arith::kTf32:
      return wide ? LaunchW<Arith::kTf32, 4>(args, sms, stream)
                  : LaunchW<Arith::kTf32, 2>(args, sms, stream);
    default:
      return Status::NotSupported("assign: no Hopper kernel for this arithmetic");
  }
}

}  // namespace quiver::kernels::cuda
