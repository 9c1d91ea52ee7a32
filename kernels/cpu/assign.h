// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Fused distance + argmin of points against a set of centroids, on all CPU
// cores. Points are processed in blocks that stay in cache together with a
// tile of centroids; the n x k distance matrix is never materialised.

#ifndef QUIVER_KERNELS_CPU_ASSIGN_H_
#define QUIVER_KERNELS_CPU_ASSIGN_H_

#include <cstddef>
#include <cstdint>

#include "quiver/types.h"

namespace quiver::kernels {

// For each of the n rows of x (n x d) writes the index of the nearest of the
// k rows of c (k x d) to labels[n] and its distance (smaller is closer, see
// quiver::Metric) to dists[n] (may be null). Ties go to the smaller index.
// For kCosine, x and c must already be normalised. Runs on oneTBB.
//
// c_norms_sqr (k entries, may be null) are ||c_j||^2, used by kL2.
void AssignNearest(Metric metric, const float* x, size_t n, const float* c,
                   const float* c_norms_sqr, size_t k, size_t d,
                   uint32_t* labels, float* dists);

// For each of the n rows of x, the `nearest` (<= k) closest rows of c, in
// increasing distance, to labels[n * nearest] (and dists, may be null).
// Used for coarse quantisation (nprobe partitions per query).
void NearestCentroids(Metric metric, const float* x, size_t n, const float* c,
                      size_t k, size_t d, size_t nearest, uint32_t* labels,
                      float* dists);

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_ASSIGN_H_
