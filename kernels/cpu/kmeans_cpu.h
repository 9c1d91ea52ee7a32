// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Lloyd's k-means on all CPU cores (oneTBB). The public quiver::KMeans()
// validates its arguments and then calls this (or the CUDA path).

#ifndef QUIVER_KERNELS_CPU_KMEANS_CPU_H_
#define QUIVER_KERNELS_CPU_KMEANS_CPU_H_

#include <cstddef>

#include "quiver/kmeans.h"

namespace quiver::kernels {

// REQUIRES: arguments already validated by quiver::KMeans (1 <= k <= n,
// finite data, initial_centroids set when init == kGiven). For kCosine the
// caller has already normalised `data`.
Status KMeansCpu(const KMeansOptions& options, const float* data, size_t n,
                 size_t d, size_t k, KMeansResult* result);

// Picks k initial centroids (k x d) from data with options.init and
// options.seed. Shared by the CPU and GPU paths so both start identically.
Status InitCentroids(const KMeansOptions& options, const float* data, size_t n,
                     size_t d, size_t k, float* centroids);

// Tests and benchmarks. For kL2, KMeansCpu skips the comparisons that
// provably cannot change a point's nearest centroid (group lower bounds)
// when the problem is large enough (k >= 64, n * k >= 2^22). Both ways give
// the same result up to near-ties. Disable: always compare every point with
// every centroid (plain Lloyd). Force: use the bounds whatever the size
// (Disable wins over Force).
void DisableBoundsForTesting(bool disable);
bool DisableBoundsForTesting();
void ForceBoundsForTesting(bool force);
bool ForceBoundsForTesting();

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_KMEANS_CPU_H_
