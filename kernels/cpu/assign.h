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
// increasing distance, to labels[n * nearest] (and dists, may be null). A
// NaN distance (overflow of huge components) ranks as +inf: every label is
// a row of c.
// Used for coarse quantisation (nprobe partitions per query).
void NearestCentroids(Metric metric, const float* x, size_t n, const float* c,
                      size_t k, size_t d, size_t nearest, uint32_t* labels,
                      float* dists);

// For the m points x[rows[t]] (t < m; rows null means rows[t] = t), the two
// nearest of the k centroids under kL2, as values v_j = ||c_j||^2 -
// 2 <x, c_j> (the squared distance is ||x||^2 + v_j): labels[t] the nearest
// (ties to the smaller index), best[t] its value, second[t] the smallest
// value among the other centroids (+inf when k == 1). The building block of
// the bounded (Hamerly) assignment of k-means. c_norms_sqr may be null.
// Runs on oneTBB.
void NearestTwoL2(const float* x, size_t d, const uint32_t* rows, size_t m,
                  const float* c, const float* c_norms_sqr, size_t k,
                  uint32_t* labels, float* best, float* second);

// Group-wise top-2 under kL2, the building block of the group-bounded
// (Yinyang-style) assignment of k-means. The centroids are split into
// groups of `group_size` consecutive centroids (a multiple of 16; the last
// group may be shorter); G = ceil(k / group_size) <= 64. For each of the m
// points x[rows[t]] and each group g whose bit is set in masks[t], writes
// the group's nearest centroid to idx[t * G + g], its value
// ||c||^2 - 2 <x, c> to best[t * G + g] and the second-smallest value in
// the group to second[t * G + g] (+inf for a one-centroid group). Entries
// of groups not asked for are left untouched. Runs on oneTBB.
void GroupedTop2L2(const float* x, size_t d, const uint32_t* rows, size_t m,
                   const uint64_t* masks, const float* c,
                   const float* c_norms_sqr, size_t k, size_t group_size,
                   uint32_t* idx, float* best, float* second);

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_ASSIGN_H_
