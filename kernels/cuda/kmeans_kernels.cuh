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
  int blocks_done;    // scratch of the update kernel (its last block tests convergence)
  unsigned clusters_seen;  // distinct keys the reductions of an iteration met
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
// atomics); adds the number of distinct keys to state->clusters_seen (the
// vector kernel; state may be null).
Status LaunchReduceSorted(const void* x, Elem elem, size_t ld, size_t d,
                          const uint32_t* keys_sorted,
                          const uint32_t* idx_sorted, size_t items,
                          float* sums, int* counts, DeviceState* state,
                          cudaStream_t stream);
// Kernel copy (+ bias) from master centroids (normalised in place first
// when `normalize`).
Status LaunchLoadCentroids(const float* master, int batch, int k, size_t d,
                           void* ckern, Arith arith, size_t ld, int kpad,
                           float* cbias, bool l2, bool normalize,
                           cudaStream_t stream);

// Everything an iteration does after the sums and counts are complete.
struct UpdateArgs {
  int batch = 1;
  int k = 0;
  size_t d = 0;
  // This iteration's sums (batch * k * d) and counts (batch * k); zero again
  // when the update is done, for the next iteration.
  float* sums = nullptr;
  int* counts = nullptr;
  // Empty clusters. With keys_sorted (resident runs on one GPU: the sorted
  // order, per-point distances and the points are at hand) each is
  // re-seeded with the farthest member of the then-largest cluster (the
  // CPU path's rule), fixing labels, counts and sums. What stays empty is
  // split from its problem's fullest cluster, perturbed (FAISS's split).
  const uint32_t* keys_sorted = nullptr;
  const uint32_t* idx_sorted = nullptr;
  const float* dist = nullptr;    // per point
  const void* x = nullptr;        // points, rows of ld elements of x_elem
  Elem x_elem = Elem::kF32;
  uint32_t* labels = nullptr;
  size_t n = 0;                   // points per problem
  int* donor = nullptr;           // batch: scratch
  int* empties = nullptr;         // batch: clusters re-seeded (or split) this iteration
  // New centroids: each cluster's mean, normalised when `spherical`, into
  // master (batch * k * d) and the kernel copy (+ bias) for the next
  // assignment.
  bool spherical = false;
  uint64_t seed = 0;              // the split's perturbation
  int iteration = 0;
  float* master = nullptr;
  void* ckern = nullptr;
  Arith arith = Arith::kF16;
  size_t ld = 0;
  int kpad = 0;
  float* cbias = nullptr;
  bool l2 = true;
  // Convergence test on objective[iteration * batch ...] against the
  // iteration before (relative change below `tolerance` in every problem).
  const double* objective = nullptr;
  double tolerance = 0;
  DeviceState* state = nullptr;
};
// One cooperative kernel: empty clusters, new centroids, the sums reset,
// the convergence test (iterations after a stop return at once).
Status LaunchUpdateCentroids(const UpdateArgs& args, cudaStream_t stream);

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
