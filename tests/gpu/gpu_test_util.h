// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// What the GPU tests share: the skip when no GPU is visible, the clustered
// test data and the rule by which two k-means results agree.
//
// Agreement rule ("near-ties"): two runs may put a point in different
// clusters only when the two candidate centroids are nearly equidistant
// from it: |d(x, c_a) - d(x, c_b)| <= 1e-3 * (d + 1e-3), both measured to
// the reference run's centroids.

#ifndef QUIVER_TESTS_GPU_GPU_TEST_UTIL_H_
#define QUIVER_TESTS_GPU_GPU_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cuda/kmeans_cuda.h"
#include "quiver/kmeans.h"

// Skips the test, saying why, when no CUDA GPU is visible (`what` names the
// tests: "the GPU k-means tests").
#define QUIVER_SKIP_WITHOUT_GPU(what)                                 \
  do {                                                                \
    if (!::quiver::kernels::CudaDeviceAvailable()) {                  \
      GTEST_SKIP() << "no CUDA GPU visible: " << what << " skip";     \
    }                                                                 \
  } while (0)

// The same, and also when fewer than two GPUs are visible.
#define QUIVER_SKIP_WITHOUT_TWO_GPUS(what)                              \
  do {                                                                  \
    QUIVER_SKIP_WITHOUT_GPU(what);                                      \
    if (::quiver::kernels::CudaDeviceCount() < 2) {                     \
      GTEST_SKIP() << "one CUDA GPU visible: " << what << " skip";      \
    }                                                                   \
  } while (0)

namespace quiver::testing_gpu {

// Gaussian blobs: `clusters` centres in [-10, 10]^d, points with unit noise.
inline std::vector<float> Blobs(size_t n, size_t d, size_t clusters, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-10.f, 10.f);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(clusters * d);
  for (float& c : centres) c = u(rng);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = rng() % clusters;
    for (size_t j = 0; j < d; ++j) x[i * d + j] = centres[c * d + j] + g(rng);
  }
  return x;
}

// Distance of point x to centroid c under `m` (centroids of a cosine run
// are unit length).
inline double Dist(Metric m, const float* x, const float* c, size_t d) {
  double dot = 0, xx = 0, cc = 0;
  for (size_t j = 0; j < d; ++j) {
    dot += double(x[j]) * c[j];
    xx += double(x[j]) * x[j];
    cc += double(c[j]) * c[j];
  }
  if (m == Metric::kL2) return xx + cc - 2 * dot;
  if (m == Metric::kInnerProduct) return -dot;
  return 1 - dot / std::sqrt(xx);
}

// Counts the points `got` assigns differently from `ref` (*mismatches) and,
// of those, the ones that are not near-ties (returned).
inline size_t HardMismatches(Metric m, const std::vector<float>& x, size_t d,
                             const KMeansResult& ref, const KMeansResult& got,
                             size_t* mismatches) {
  size_t hard = 0;
  *mismatches = 0;
  const size_t n = ref.assignments.size();
  for (size_t i = 0; i < n; ++i) {
    const uint32_t a = ref.assignments[i], b = got.assignments[i];
    if (a == b) continue;
    ++*mismatches;
    const double da = Dist(m, &x[i * d], &ref.centroids[a * d], d);
    const double db = Dist(m, &x[i * d], &ref.centroids[b * d], d);
    if (std::abs(da - db) > 1e-3 * (std::abs(da) + 1e-3)) ++hard;
  }
  return hard;
}

}  // namespace quiver::testing_gpu

#endif  // QUIVER_TESTS_GPU_GPU_TEST_UTIL_H_
