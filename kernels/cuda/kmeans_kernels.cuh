// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Launchers of the k-means kernels (one .cu file each), for the driver in
// kmeans_driver.cu. Every launcher takes its stream explicitly, checks the
// launch and returns a Status; none allocates except where it says so.
//
// Layouts shared by all of them:
//   points    rows of `ld` elements (ld * element bytes a multiple of 16,
//             components d..ld-1 zero), problem b at b * n rows;
//   centroids "kernel copy": rows of `ld` elements in the arithmetic's
//             element type, `kpad` (a multiple of kAssignTileN) rows per
//             problem, padding rows zero with bias +inf; "master": k x d
//             fp32 per problem;
//   labels    one uint32 per point: b * k + cluster (the key the centroid
//             update sorts by).

#ifndef QUIVER_KERNELS_CUDA_KMEANS_KERNELS_CUH_
#define QUIVER_KERNELS_CUDA_KMEANS_KERNELS_CUH_

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "quiver/status.h"

namespace quiver::kernels::cuda {

// Arithmetic of the assignment's dot products.
enum class Arith : uint8_t {
  kF16 = 0,     // fp16 operands (mma.sync m16n8k16), fp32 accumulation
  kBf16 = 1,    // bf16 operands
  kTf32 = 2,    // fp32 operands rounded to TF32 (cvt.rna); centroid copy stored rounded
  kTf32x3 = 3,  // 3xTF32 split: fp32-level accuracy on tensor cores
};

inline int ArithBytes(Arith a) { return (a == Arith::kF16 || a == Arith::kBf16) ? 2 : 4; }

// Element type of a points buffer read by convert / reduce / init kernels.
enum class Elem : uint8_t { kF32 = 0, kF16 = 1, kBf16 = 2 };

__host__ __device__ inline Elem ArithElem(Arith a) {
  return a == Arith::kF16 ? Elem::kF16 : a == Arith::kBf16 ? Elem::kBf16 : Elem::kF32;
}
inline int ElemBytes(Elem e) { return e == Elem::kF32 ? 4 : 2; }

constexpr int kAssignTileM = 128;  // points per block
constexpr int kAssignTileN = 128;  // centroids per streamed tile

// Small per-run state the device updates and the host reads back.
struct DeviceState {
  int stop;        // 1 once converged (kernels of later iterations return)
  int converged;   // stopped by tolerance
  int iterations;  // iterations completed
  int pad;
};

// ---- assign.cu ----------------------------------------------------------
struct AssignArgs {
  const void* x = nullptr;  // points (rows of ld elements)
  size_t n = 0;             // points per problem
  int batch = 1;
  const void* c = nullptr;      // centroid kernel copy (batch * kpad rows)
  const float* cbias = nullptr; // batch * kpad: ||c||^2 (L2) or 0; +inf pad
  size_t ld = 0;                // elements per row, points and centroids
  int kpad = 0;
  int k = 0;
  float alpha = -2.0f;          // score = cbias + alpha * <x, c>
  int metric = 0;               // 0 L2, 1 inner product, 2 cosine
  const float* xnorm = nullptr; // batch * n, ||x||^2 (L2 only)
  uint32_t* labels = nullptr;   // batch * n, written as b * k + j
  float* dist = nullptr;        // batch * n, may be null
  double* objective = nullptr;  // batch entries, atomically accumulated
  const DeviceState* state = nullptr;  // may be null
};
Status LaunchAssign(Arith arith, const AssignArgs& args, cudaStream_t stream);

// ---- convert.cu ---------------------------------------------------------
// Copies `rows` rows of d components (source row stride src_ld elements)
// into dst (rows of dst_ld elements of dst_elem, zero padded), normalising
// each row first when `normalize`; writes ||row||^2 of what was stored to
// norms (may be null) and sets *nonfinite to 1 on a NaN/Inf component (may
// be null). dst may be null (norms / check only).
Status LaunchConvertRows(const void* src, Elem src_elem, size_t src_ld,
                         size_t rows, size_t d, void* dst, Elem dst_elem,
                         size_t dst_ld, bool normalize, float* norms,
                         int* nonfinite, cudaStream_t stream);

// ---- update.cu ----------------------------------------------------------
// Bytes of temporary storage SortByCluster needs for `items` pairs whose
// labels are below 2^key_bits.
Status SortTempBytes(size_t items, int key_bits, size_t* bytes);
// Sorts the pairs (labels[i], i), i < items, by label into keys_out /
// idx_out: each label's pairs end up contiguous, in ascending label order.
// The order of the pairs within one label is not fixed.
Status SortByCluster(const uint32_t* labels, uint32_t* keys_out, uint32_t* idx_out,
                     size_t items, int key_bits, void* temp, size_t temp_bytes,
                     cudaStream_t stream);
// Adds every point to sums[key * d ...] and counts[key], walking the sorted
// order so that each warp flushes once per cluster it meets (no per-point
// atomics).
Status LaunchReduceSorted(const void* x, Elem elem, size_t ld, size_t d,
                          const uint32_t* keys_sorted,
                          const uint32_t* idx_sorted, size_t items,
                          float* sums, int* counts, const DeviceState* state,
                          cudaStream_t stream);
// Per problem: the fullest cluster (donor for empty ones) and the number of
// empty clusters (written to empties[b]).
Status LaunchClusterStats(const int* counts, int batch, int k, int* donor,
                          int* empties, const DeviceState* state,
                          cudaStream_t stream);
// New centroids: mean of each cluster (an empty one re-seeded from its
// problem's donor, perturbed), normalised when `spherical`; written to
// master and to the kernel copy (+ bias).
Status LaunchFinalizeCentroids(const float* sums, const int* counts,
                               const int* donor, int batch, int k, size_t d,
                               bool spherical, uint64_t seed, int iteration,
                               float* master, void* ckern, Arith arith,
                               size_t ld, int kpad, float* cbias, bool l2,
                               const DeviceState* state, cudaStream_t stream);
// Kernel copy (+ bias) from master centroids (normalised in place first
// when `normalize`).
Status LaunchLoadCentroids(const float* master, int batch, int k, size_t d,
                           void* ckern, Arith arith, size_t ld, int kpad,
                           float* cbias, bool l2, bool normalize,
                           cudaStream_t stream);
// Resident runs: re-seeds each empty cluster with the farthest member of the
// then-largest cluster (the CPU path's rule), fixing labels, counts and
// sums; writes the number re-seeded to empties[b] and, when donor is not
// null, the fullest cluster after re-seeding to donor[b] (what
// LaunchClusterStats would write). dist: per point.
Status LaunchReseedEmpty(int* counts, float* sums, int batch, int k, size_t n,
                         size_t d, const uint32_t* keys_sorted,
                         const uint32_t* idx_sorted, float* dist,
                         const void* x, Elem elem, size_t ld, uint32_t* labels,
                         int* empties, int* donor, const DeviceState* state,
                         cudaStream_t stream);
// Device-side convergence test after iteration `it`.
Status LaunchCheckConvergence(const double* objective, int it, int batch,
                              double tol, DeviceState* state,
                              cudaStream_t stream);

// ---- init.cu ------------------------------------------------------------
// Copies rows idx[i] (device indices) of x into master rows i (fp32, d).
Status LaunchGatherRows(const void* x, Elem elem, size_t ld, size_t d,
                        const uint32_t* idx, size_t count, float* master,
                        cudaStream_t stream);
// k-means++ seeding (D^2 sampling) over device-resident points; writes k
// rows of master. Allocates its scratch.
Status KMeansPlusPlusDevice(const void* x, Elem elem, size_t ld, size_t n,
                            size_t d, size_t k, uint64_t seed, float* master,
                            cudaStream_t stream);

}  // namespace quiver::kernels::cuda

#endif  // QUIVER_KERNELS_CUDA_KMEANS_KERNELS_CUH_
