// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The full entry point of the CUDA k-means, under quiver::KMeans(): input in
// fp32, fp16 or bf16, on the host or the device, one problem or a batch of
// equal-shape problems, with knobs for streaming and host synchronisation.
// A plain C++ header (no CUDA syntax), used by the benchmark and the tests.
//
//   quiver::kernels::KMeansCudaConfig cfg;
//   cfg.force_streaming = true;  cfg.chunk_points = 1 << 20;
//   std::vector<quiver::KMeansResult> res(1);
//   Status s = KMeansCudaEx(opt, data, KMeansInput::kF32, n, d, k, 1, cfg,
//                           res.data(), nullptr);

#ifndef QUIVER_KERNELS_CUDA_KMEANS_CUDA_EX_H_
#define QUIVER_KERNELS_CUDA_KMEANS_CUDA_EX_H_

#include <cstddef>
#include <cstdint>

#include "quiver/kmeans.h"

namespace quiver::kernels {

// Element type of the caller's points.
enum class KMeansInput : uint8_t { kF32 = 0, kF16 = 1, kBf16 = 2 };

struct KMeansCudaConfig {
  // Host synchronisation (objective read back, convergence seen by the host)
  // every this many iterations; the device itself stops the run at the
  // iteration that converged, so the result does not depend on it. A lone
  // GPU reads the state a batch late (the next batch already enqueued).
  // Forced to 1 when KMeansOptions::progress is set or the data is streamed.
  // Default 4.
  int sync_every = 4;
  // Host data: stream it from (pinned) host memory in chunks every iteration
  // even when it would fit on the GPU. Default false: stream only when the
  // data does not fit in `device_memory_budget`.
  bool force_streaming = false;
  // Points per streamed chunk; 0 picks about 1/8 of the budget per chunk.
  size_t chunk_points = 0;
  // Bytes of GPU memory the run may use; 0 means 90% of the free memory.
  size_t device_memory_budget = 0;
};

// What a run measured (events on the GPU; all in milliseconds).
struct KMeansCudaTimings {
  double setup_ms = 0;    // allocation, copies, conversion, init
  double lloyd_ms = 0;    // all Lloyd iterations run
  int iterations = 0;     // iterations the device ran
  bool streamed = false;  // the data was streamed from the host
  double h2d_gbps = 0;    // streamed: bytes copied per second of Lloyd time
};

// Clusters `batch` independent problems of n x d points each (contiguous,
// row-major, problem b at data + b*n*d), all with k clusters and the same
// options; results[b] receives problem b. `data` is a device pointer when
// options.data_on_device. The options' initial_centroids (kGiven) hold
// batch * k * d floats on the host.
//
// Host data is spread over options.devices (see KMeansOptions::devices):
// GPU g of G takes rows [n*g/G, n*(g+1)/G) and streams or holds them on its
// own; data on the device and batches run on the current GPU.
//
// REQUIRES: 1 <= k <= n, d >= 1, finite data; batch >= 1; batch > 1 only
// with data on the device and init kGiven or kRandom, never streamed.
Status KMeansCudaEx(const KMeansOptions& options, const void* data,
                    KMeansInput input, size_t n, size_t d, size_t k,
                    size_t batch, const KMeansCudaConfig& config,
                    KMeansResult* results, KMeansCudaTimings* timings);

// One GPU's share of the points of KMeansCudaSharded: `rows` rows (d
// elements each, row-major) at `data`, in the memory of GPU `device`.
struct DeviceShard {
  int device = 0;
  const void* data = nullptr;
  size_t rows = 0;
};

// Clusters the points of `count` shards (distinct GPUs; the points are the
// shards' rows in order) as one problem, each GPU working on the rows it
// holds, the partial sums combined over NCCL every iteration.
// result->assignments follows the shards' order. One shard is the
// single-GPU path on that shard's GPU. Several shards start from centroids
// made on the host (kGiven is used as given; kRandom and k-means++ read the
// points back to the host once). NotSupported when NCCL cannot be loaded.
Status KMeansCudaSharded(const KMeansOptions& options, const DeviceShard* shards,
                         size_t count, KMeansInput input, size_t d, size_t k,
                         const KMeansCudaConfig& config, KMeansResult* result,
                         KMeansCudaTimings* timings);

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CUDA_KMEANS_CUDA_EX_H_
