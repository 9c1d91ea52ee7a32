// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Lloyd's k-means on the CPU. One iteration:
//   1. assignment: fused distance + argmin over all centroids (blocked and
//      parallel; the n x k matrix is never stored); the objective of the
//      iteration is the sum of these distances (double). For kL2 the
//      comparisons that provably cannot change a point's nearest centroid
//      are skipped (group lower bounds, see BoundedAssign): the same
//      assignment as comparing with every centroid, with less work;
//   2. empty clusters are re-seeded: each takes, from the currently largest
//      cluster, its member farthest from its centroid (deterministic; for
//      kL2 this never increases the objective);
//   3. update: points are bucketed by cluster (a counting sort, the same
//      idea as the GPU's sort-based update), then every cluster sums its
//      members in index order in double, in parallel over clusters. No
//      atomics and no per-thread k x d partial sums, and the result does not
//      depend on thread scheduling.
// kInnerProduct / kCosine (spherical k-means) renormalise every centroid to
// unit length after the update.

#include "kernels/cpu/kmeans_cpu.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cpu/assign.h"
#include "kernels/cpu/bounded_assign.h"
#include "kernels/cpu/distance.h"
#include "kernels/cpu/simd_avx2.h"

namespace quiver::kernels {
namespace {

// A uniform integer in [0, range) from one 64-bit draw (multiply-shift;
// the bias is < range / 2^64). Portable, unlike std::uniform_*_distribution.
uint64_t UniformIndex(std::mt19937_64& rng, uint64_t range) {
  return static_cast<uint64_t>(
      (static_cast<unsigned __int128>(rng()) * range) >> 64);
}

// A uniform double in [0, 1).
double UniformUnit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

void InitRandom(std::mt19937_64& rng, const float* data, size_t n, size_t d,
                size_t k, float* centroids) {
  // Partial Fisher-Yates over the indices: k distinct points.
  std::vector<uint32_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<uint32_t>(i);
  for (size_t j = 0; j < k; ++j) {
    const size_t r = j + UniformIndex(rng, n - j);
    std::swap(idx[j], idx[r]);
    std::memcpy(centroids + j * d, data + static_cast<size_t>(idx[j]) * d,
                d * sizeof(float));
  }
}

// k-means++ (D^2 sampling) with squared Euclidean distances. The running
// minimum distances are updated in parallel; their sum is taken per fixed
// block and then over blocks in order, so the draw does not depend on the
// number of threads.
void InitKMeansPlusPlus(std::mt19937_64& rng, const float* data, size_t n,
                        size_t d, size_t k, float* centroids) {
  constexpr size_t kBlock = 4096;
  const size_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<float> mind(n, std::numeric_limits<float>::infinity());
  std::vector<double> block_sum(blocks);
  size_t chosen = UniformIndex(rng, n);
  for (size_t j = 0;; ++j) {
    const float* c = data + chosen * d;
    std::memcpy(centroids + j * d, c, d * sizeof(float));
    if (j + 1 == k) break;
    tbb::parallel_for(size_t{0}, blocks, [&](size_t b) {
      const size_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
      double s = 0.0;
      for (size_t i = i0; i < i1; ++i) {
        const float dist = L2Sqr(data + i * d, c, d);
        if (dist < mind[i]) mind[i] = dist;
        s += mind[i];
      }
      block_sum[b] = s;
    });
    double total = 0.0;
    for (size_t b = 0; b < blocks; ++b) total += block_sum[b];
    if (!(total > 0.0)) {
      // Every point coincides with a chosen centroid: any point will do
      // (the duplicate centroid's cluster is re-seeded later).
      chosen = UniformIndex(rng, n);
      continue;
    }
    double r = UniformUnit(rng) * total;
    size_t b = 0;
    while (b + 1 < blocks && r >= block_sum[b]) r -= block_sum[b++];
    const size_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
    chosen = n;
    size_t last_positive = n;
    for (size_t i = i0; i < i1; ++i) {
      if (mind[i] <= 0.0f) continue;
      last_positive = i;
      if (r < mind[i]) {
        chosen = i;
        break;
      }
      r -= mind[i];
    }
    if (chosen == n) chosen = last_positive;  // r ran past the end (rounding)
    if (chosen == n) {
      // The block has no weight (rounding again): the last point that has.
      for (size_t i = n; i-- > 0;) {
        if (mind[i] > 0.0f) {
          chosen = i;
          break;
        }
      }
    }
  }
}

// Re-seeds every empty cluster with the member farthest from its centroid
// (by `dists`, ties to the smaller index) of the cluster that is largest at
// that moment (ties to the smaller cluster index). Updates labels and
// counts; returns the number of clusters re-seeded.
template <typename OnMove>
int ReseedEmpty(size_t n, size_t k, const float* dists, uint32_t* labels,
                std::vector<uint32_t>* counts, OnMove on_move) {
  int reseeded = 0;
  std::vector<uint8_t> moved;
  for (size_t j = 0; j < k; ++j) {
    if ((*counts)[j] != 0) continue;
    if (moved.empty()) moved.assign(n, 0);
    const size_t largest = static_cast<size_t>(
        std::max_element(counts->begin(), counts->end()) - counts->begin());
    if ((*counts)[largest] < 2) break;  // cannot happen when k <= n
    size_t pick = n;
    float far = -1.0f;
    for (size_t i = 0; i < n; ++i) {
      if (labels[i] == largest && !moved[i] && dists[i] > far) {
        far = dists[i];
        pick = i;
      }
    }
    if (pick == n) break;
    moved[pick] = 1;
    labels[pick] = static_cast<uint32_t>(j);
    on_move(pick);
    --(*counts)[largest];
    (*counts)[j] = 1;
    ++reseeded;
  }
  return reseeded;
}

#if QUIVER_X86
QUIVER_AVX2 void AccumulateRowAvx2(double* sum, const float* x, size_t d) {
  avx2::AccumulateDouble(sum, x, d);
}
#endif

void AccumulateRow(double* sum, const float* x, size_t d) {
#if QUIVER_X86
  if (simd::UseAvx2()) return AccumulateRowAvx2(sum, x, d);
#endif
  for (size_t q = 0; q < d; ++q) sum[q] += x[q];
}

// Centroids = mean (kL2) or normalised sum (spherical) of their members.
// Clusters without members keep their centroid.
void UpdateCentroids(Metric metric, const float* data, size_t n, size_t d,
                     size_t k, const uint32_t* labels,
                     const std::vector<uint32_t>& counts,
                     std::vector<uint32_t>* order_buf,
                     std::vector<size_t>* offsets_buf, float* centroids) {
  std::vector<size_t>& offsets = *offsets_buf;
  offsets.assign(k + 1, 0);
  for (size_t j = 0; j < k; ++j) offsets[j + 1] = offsets[j] + counts[j];
  std::vector<uint32_t>& order = *order_buf;
  order.resize(n);
  {
    std::vector<size_t> pos(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < n; ++i)
      order[pos[labels[i]]++] = static_cast<uint32_t>(i);
  }
  tbb::parallel_for(tbb::blocked_range<size_t>(0, k, 1),
                    [&](const tbb::blocked_range<size_t>& r) {
                      std::vector<double> sum(d);
                      for (size_t j = r.begin(); j < r.end(); ++j) {
                        const size_t b = offsets[j], e = offsets[j + 1];
                        if (b == e) continue;
                        std::fill(sum.begin(), sum.end(), 0.0);
                        for (size_t t = b; t < e; ++t) {
                          const float* x =
                              data + static_cast<size_t>(order[t]) * d;
                          if (t + 1 < e) {
                            // The next member's row is in a random place: fetch
                            // it early.
                            const char* next = reinterpret_cast<const char*>(
                                data + static_cast<size_t>(order[t + 1]) * d);
                            for (size_t o = 0; o < d * sizeof(float); o += 64) {
                              __builtin_prefetch(next + o);
                            }
                          }
                          AccumulateRow(sum.data(), x, d);
                        }
                        float* c = centroids + j * d;
                        if (metric == Metric::kL2) {
                          const double inv = 1.0 / static_cast<double>(e - b);
                          for (size_t q = 0; q < d; ++q)
                            c[q] = static_cast<float>(sum[q] * inv);
                        } else {
                          double s2 = 0.0;
                          for (size_t q = 0; q < d; ++q) s2 += sum[q] * sum[q];
                          if (s2 > 0.0) {
                            const double inv = 1.0 / std::sqrt(s2);
                            for (size_t q = 0; q < d; ++q)
                              c[q] = static_cast<float>(sum[q] * inv);
                          }
                          // A zero sum keeps the previous (unit) centroid.
                        }
                      }
                    });
}

}  // namespace

namespace {
std::atomic<bool> g_disable_bounds{false};
}  // namespace

std::atomic<bool> g_force_bounds{false};

void DisableBoundsForTesting(bool disable) { g_disable_bounds.store(disable); }
bool DisableBoundsForTesting() { return g_disable_bounds.load(); }
void ForceBoundsForTesting(bool force) { g_force_bounds.store(force); }
bool ForceBoundsForTesting() { return g_force_bounds.load(); }

Status InitCentroids(const KMeansOptions& options, const float* data, size_t n,
                     size_t d, size_t k, float* centroids) {
  if (data == nullptr || centroids == nullptr || d == 0 || k == 0 || k > n) {
    return Status::InvalidArgument("k-means init: bad arguments");
  }
  std::mt19937_64 rng(options.seed);
  switch (options.init) {
    case KMeansInit::kGiven:
      if (options.initial_centroids == nullptr) {
        return Status::InvalidArgument(
            "k-means init: init = kGiven needs initial_centroids");
      }
      std::memcpy(centroids, options.initial_centroids, k * d * sizeof(float));
      break;
    case KMeansInit::kRandom:
      InitRandom(rng, data, n, d, k, centroids);
      break;
    case KMeansInit::kKMeansPlusPlus:
      InitKMeansPlusPlus(rng, data, n, d, k, centroids);
      break;
    default:
      return Status::InvalidArgument("k-means init: unknown init");
  }
  if (options.metric != Metric::kL2) {
    // Spherical k-means keeps its centroids on the unit sphere.
    for (size_t j = 0; j < k; ++j) Normalize(centroids + j * d, d);
  }
  return Status::OK();
}

Status KMeansCpu(const KMeansOptions& options, const float* data, size_t n,
                 size_t d, size_t k, KMeansResult* result) {
  if (result == nullptr) return Status::InvalidArgument("k-means: null result");
  const Metric metric = options.metric;
  std::vector<float> centroids(k * d);
  Status s = InitCentroids(options, data, n, d, k, centroids.data());
  if (!s.ok()) return s;

  std::vector<float> c_norms(metric == Metric::kL2 ? k : 0);
  std::vector<uint32_t> labels(n);
  std::vector<float> dists(n);
  std::vector<uint32_t> counts(k);
  std::vector<uint32_t> order;
  std::vector<size_t> offsets;
  // kL2 skips provably unchanged assignments (group bounds) on problems
  // large enough for the bookkeeping to pay off (measured on SIFT 5K and
  // Fashion-MNIST: at n * k = 1.3M the plain pass is still faster).
  std::unique_ptr<BoundedAssign> bounds;
  if (metric == Metric::kL2 && k >= 2 && !DisableBoundsForTesting() &&
      (ForceBoundsForTesting() ||
       (k >= 64 && double(n) * double(k) >= double(1 << 22)))) {
    bounds = BoundedAssign::Make(data, n, d, k);
  }
  const bool bounded = bounds != nullptr;
  std::vector<float> old_centroids;
  auto assign = [&](bool first, float* out_dists) {
    if (metric == Metric::kL2)
      RowNormsSqr(centroids.data(), k, d, c_norms.data());
    if (bounded) {
      bounds->Assign(first, centroids.data(), c_norms.data(), labels.data(),
                     dists.data());
      return;
    }
    AssignNearest(metric, data, n, centroids.data(),
                  c_norms.empty() ? nullptr : c_norms.data(), k, d,
                  labels.data(), out_dists);
  };

  result->objective.clear();
  result->iterations = 0;
  result->converged = false;
  result->device = Device::kCpu;

  for (int it = 0; it < options.max_iterations; ++it) {
    assign(it == 0, dists.data());
    double objective = 0.0;
    for (size_t i = 0; i < n; ++i) objective += dists[i];

    std::fill(counts.begin(), counts.end(), 0u);
    for (size_t i = 0; i < n; ++i) ++counts[labels[i]];
    const int empty =
        ReseedEmpty(n, k, dists.data(), labels.data(), &counts, [&](size_t i) {
          // The moved point is compared with
          // every centroid next time.
          if (bounded) bounds->Reset(i);
        });
    if (bounded) old_centroids = centroids;
    UpdateCentroids(metric, data, n, d, k, labels.data(), counts, &order,
                    &offsets, centroids.data());
    if (bounded) bounds->Drift(old_centroids.data(), centroids.data());

    result->objective.push_back(objective);
    result->iterations = it + 1;
    bool stop = false;
    if (it > 0 && options.tolerance > 0.0) {
      const double prev = result->objective[it - 1];
      if (std::abs(prev - objective) < options.tolerance * std::abs(prev)) {
        result->converged = true;
        stop = true;
      }
    }
    if (options.progress) {
      KMeansIterationInfo info;
      info.iteration = it;
      info.objective = objective;
      info.empty_clusters = empty;
      if (!options.progress(info)) {
        result->centroids = centroids;
        result->assignments = labels;
        return Status::Aborted(
            "k-means: stopped by the progress callback after iteration " +
            std::to_string(it));
      }
    }
    if (stop) break;
  }

  // Final assignment, so that `assignments` matches the returned centroids.
  assign(false, nullptr);
  result->centroids = std::move(centroids);
  result->assignments = std::move(labels);
  return Status::OK();
}

}  // namespace quiver::kernels
