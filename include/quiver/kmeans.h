// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Exact k-means (Lloyd's algorithm), the primitive quiver re-clusters its
// index with, usable on its own.
//
//   quiver::KMeansOptions opt;
//   opt.max_iterations = 20;
//   quiver::KMeansResult res;
//   quiver::Status s = quiver::KMeans(opt, data, n, d, k, &res);
//   // res.centroids: k x d, res.assignments: n, res.objective: per iteration
//
// "Exact" means every point is compared with every centroid in every
// iteration (no sampling, no approximate assignment). On the CPU the
// assignment runs over blocks of points on all cores (oneTBB), so the n x k
// distance matrix is never held whole; on a CUDA GPU the distance and the
// argmin are fused in one kernel and the centroid update sorts points by
// cluster. Both paths compute the same function; results agree up to
// floating-point rounding and near-ties.
//
// Thread safety: KMeans() is reentrant; concurrent calls share the CPU cores
// (and the GPU).

#ifndef QUIVER_KMEANS_H_
#define QUIVER_KMEANS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "quiver/export.h"
#include "quiver/status.h"
#include "quiver/types.h"

namespace quiver {

enum class KMeansInit : uint8_t {
  kKMeansPlusPlus = 0,  // D^2 sampling (Arthur & Vassilvitskii)
  kRandom = 1,          // k distinct points drawn uniformly
  kGiven = 2,           // KMeansOptions::initial_centroids (warm start)
};

// Arithmetic of the distance products on the GPU. Norms, sums and centroids
// are always fp32. The CPU always computes in fp32 and ignores this.
enum class KMeansPrecision : uint8_t {
  kFp32 = 0,  // exact fp32 products
  kTf32 = 1,  // tensor cores with TF32 operands, fp32 accumulation
  kFp16 = 2,  // points and centroids rounded to fp16, fp32 accumulation
  kBf16 = 3,  // points and centroids rounded to bf16, fp32 accumulation
};

// What one finished iteration reports to KMeansOptions::progress.
struct KMeansIterationInfo {
  int iteration = 0;        // 0-based
  double objective = 0.0;   // sum over points of the distance to its centroid
  int empty_clusters = 0;   // re-seeded in this iteration
};

struct KMeansOptions {
  // Lloyd iterations at most. Default 25.
  int max_iterations = 25;

  // Stop once the objective changes by less than this fraction of itself
  // between two iterations. 0 runs exactly max_iterations. Default 1e-4.
  double tolerance = 1e-4;

  // Seeds every random choice: the same seed, data and options give the same
  // result on the same device.
  uint64_t seed = 1234;

  KMeansInit init = KMeansInit::kKMeansPlusPlus;

  // k x d row-major centroids to start from when init == kGiven; must stay
  // valid for the duration of the call. Ignored otherwise.
  const float* initial_centroids = nullptr;

  // kL2 minimises the sum of squared distances (classic k-means).
  // kInnerProduct assigns each point to the centroid of largest inner product
  // and keeps centroids on the unit sphere (spherical k-means over the raw
  // points). kCosine normalises the points first, then does the same.
  Metric metric = Metric::kL2;

  Device device = Device::kAuto;

  // GPU only: see KMeansPrecision. Default exact fp32.
  KMeansPrecision precision = KMeansPrecision::kFp32;

  // GPU only: true when `data` is a device pointer of the current CUDA
  // device. The data is then used in place and never copied to the host.
  bool data_on_device = false;

  // GPU only, host data: the CUDA devices to spread the run over (distinct
  // ids). Each takes a contiguous share of the points, holds or streams it,
  // and computes the assignment and partial centroid sums of its share; one
  // NCCL all-reduce per iteration combines the partial sums, and every GPU
  // then computes the same centroids. The result is the same function as
  // on one GPU (up to the order of floating-point sums; a run over several
  // GPUs re-seeds an empty cluster by splitting the largest one). One
  // listed device runs the single-GPU path there. Empty (the default): the
  // current GPU and the next ones, as many as get 262,144 points each
  // (below that one GPU is faster), when NCCL (libnccl.so.2) can be
  // loaded; else the current GPU alone. Ignored with data_on_device (the current
  // device). A listed team without NCCL returns NotSupported. Runs over the
  // same GPUs take turns.
  std::vector<int> devices;

  // Called after every iteration, on the calling thread. Returning false
  // stops the run with Status::Aborted.
  std::function<bool(const KMeansIterationInfo&)> progress;
};

struct KMeansResult {
  std::vector<float> centroids;       // k x d, row-major
  std::vector<uint32_t> assignments;  // n cluster ids in [0, k)
  std::vector<double> objective;      // one entry per iteration run
  int iterations = 0;                 // iterations run
  bool converged = false;             // stopped by `tolerance`
  Device device = Device::kCpu;       // where it ran (never kAuto)
};

// Clusters the n x d row-major points `data` into k clusters.
//
// REQUIRES: 1 <= k <= n, d >= 1, every component finite. A violated
// precondition returns InvalidArgument; kGpu without a usable GPU returns
// NotSupported; a GPU out of memory returns ResourceExhausted.
QUIVER_EXPORT Status KMeans(const KMeansOptions& options, const float* data,
                            size_t n, size_t d, size_t k, KMeansResult* result);

// Writes to `assignments` (n entries) the index of the nearest of the k
// centroids for each point, and to `distances` (n entries, may be null) the
// distance to it, under `metric`. For kCosine the points are normalised
// first and the centroids are expected normalised.
QUIVER_EXPORT Status KMeansPredict(Metric metric, const float* centroids,
                                   size_t k, const float* data, size_t n,
                                   size_t d, uint32_t* assignments,
                                   float* distances);

}  // namespace quiver

#endif  // QUIVER_KMEANS_H_
