// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Internal to the CPU k-means (kmeans_cpu.cc): the exact kL2 assignment
// step with group lower bounds.

#ifndef QUIVER_KERNELS_CPU_BOUNDED_ASSIGN_H_
#define QUIVER_KERNELS_CPU_BOUNDED_ASSIGN_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace quiver::kernels {

// Exact assignment with group lower bounds (Yinyang k-means, Ding et al.
// 2015, with groups of consecutive centroids). The centroids are split into
// G <= 64 groups of 16 * gp consecutive centroids; for every point and
// group a lower bound on its distance (not squared) to every centroid of
// the group other than the point's own is kept. Each iteration:
//   - the exact distance u to the point's own centroid is computed (the
//     objective needs it anyway);
//   - if u is at most the smallest group bound, or at most half the
//     distance from its centroid to the nearest other centroid (Hamerly's
//     test), the assignment provably has not changed: skip the point;
//   - otherwise only the groups whose bound is below u are compared with
//     the point, by the blocked top-2 kernel per group, which also yields
//     the new bounds of those groups.
// After every update each group bound drops by the largest drift of a
// centroid in that group. Bounds from the fast dot-product distances keep
// a small safety margin for fp32 rounding, so a point is skipped only when
// its assignment is not a near-tie: the result is that of comparing every
// point with every centroid, up to such ties.
//
// Not thread-safe; one instance per k-means run. `data` must outlive it.
class BoundedAssign {
 public:
  static constexpr size_t kMaxGroups = 64;

  // Null when the n x G bounds would take too much memory (> 2 GiB).
  static std::unique_ptr<BoundedAssign> Make(const float* data, size_t n,
                                             size_t d, size_t k);

  // Forces a full comparison of point i at the next assignment.
  void Reset(size_t i) { std::fill_n(&lower_[i * G_], G_, 0.0f); }

  // Assigns every point (labels, squared distances to dists). `full`
  // compares every point with every centroid (the first iteration);
  // otherwise labels must hold the previous assignment. c_norms are
  // ||c_j||^2. Returns the number of points compared with at least one
  // group.
  size_t Assign(bool full, const float* centroids, const float* c_norms,
                uint32_t* labels, float* dists);

  // After the update from `old` to `now`: every group bound drops by the
  // largest drift of a centroid of the group.
  void Drift(const float* old, const float* now);

 private:
  BoundedAssign(const float* data, size_t n, size_t d, size_t k,
                size_t group_size, size_t groups);

  // Allowance for the rounding of ||x||^2 + ||c||^2 - 2 <x, c> in fp32.
  static float Margin(float a_norm, float c_max);

  const float* data_;
  size_t n_, d_, k_, group_size_, G_;
  std::vector<float> x_norms_;
  std::vector<float> lower_;  // n x G
  std::vector<float> half_sep_;
  std::vector<uint64_t> flags_;
  std::vector<uint32_t> need_;
  std::vector<uint64_t> masks_;
  std::vector<uint32_t> g_idx_, sep_labels_;
  std::vector<float> g_best_, g_second_, sep_best_, sep_second_;
};

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_BOUNDED_ASSIGN_H_
