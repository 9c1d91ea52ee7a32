// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cpu/bounded_assign.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/assign.h"
#include "kernels/cpu/distance.h"

namespace quiver::kernels {

std::unique_ptr<BoundedAssign> BoundedAssign::Make(const float* data, size_t n,
                                                   size_t d, size_t k) {
  const size_t panels = (k + 15) / 16;
  const size_t gp = (panels + kMaxGroups - 1) / kMaxGroups;
  const size_t group_size = 16 * gp;
  const size_t groups = (k + group_size - 1) / group_size;
  // Bounds plus the per-iteration group results: ~16 bytes per entry.
  if (double(n) * double(groups) * 16.0 > double(size_t(2) << 30))
    return nullptr;
  return std::unique_ptr<BoundedAssign>(
      new BoundedAssign(data, n, d, k, group_size, groups));
}

BoundedAssign::BoundedAssign(const float* data, size_t n, size_t d, size_t k,
                             size_t group_size, size_t groups)
    : data_(data),
      n_(n),
      d_(d),
      k_(k),
      group_size_(group_size),
      G_(groups),
      x_norms_(n),
      lower_(n * groups, 0.0f),
      half_sep_(k),
      flags_(n) {
  RowNormsSqr(data, n, d, x_norms_.data());
}

size_t BoundedAssign::Assign(bool full, const float* centroids,
                             const float* c_norms, uint32_t* labels,
                             float* dists) {
  const float c_max = *std::max_element(c_norms, c_norms + k_);
  const uint64_t all = G_ == 64 ? ~uint64_t{0} : (uint64_t{1} << G_) - 1;
  need_.clear();
  masks_.clear();
  if (full) {
    need_.resize(n_);
    masks_.assign(n_, all);
    for (size_t i = 0; i < n_; ++i) need_[i] = static_cast<uint32_t>(i);
  } else {
    // Half the distance from each centroid to its nearest other one.
    sep_labels_.resize(k_);
    sep_best_.resize(k_);
    sep_second_.resize(k_);
    NearestTwoL2(centroids, d_, nullptr, k_, centroids, c_norms, k_,
                 sep_labels_.data(), sep_best_.data(), sep_second_.data());
    for (size_t j = 0; j < k_; ++j) {
      const float sep2 =
          c_norms[j] + sep_second_[j] - Margin(c_norms[j], c_max);
      half_sep_[j] = 0.5f * std::sqrt(std::max(0.0f, sep2));
    }
    tbb::parallel_for(tbb::blocked_range<size_t>(0, n_, 2048),
                      [&](const tbb::blocked_range<size_t>& r) {
                        for (size_t i = r.begin(); i < r.end(); ++i) {
                          const uint32_t a = labels[i];
                          const float d2 = L2Sqr(
                              data_ + i * d_, centroids + size_t(a) * d_, d_);
                          dists[i] = d2;
                          const float u = std::sqrt(d2);
                          uint64_t mask = 0;
                          if (u > half_sep_[a]) {
                            const float* lb = &lower_[i * G_];
                            for (size_t g = 0; g < G_; ++g)
                              mask |= uint64_t(lb[g] < u) << g;
                          }
                          flags_[i] = mask;
                        }
                      });
    for (size_t i = 0; i < n_; ++i) {
      if (flags_[i] != 0) {
        need_.push_back(static_cast<uint32_t>(i));
        masks_.push_back(flags_[i]);
      }
    }
  }
  const size_t m = need_.size();
  g_idx_.resize(m * G_);
  g_best_.resize(m * G_);
  g_second_.resize(m * G_);
  GroupedTop2L2(data_, d_, need_.data(), m, masks_.data(), centroids, c_norms,
                k_, group_size_, g_idx_.data(), g_best_.data(),
                g_second_.data());
  tbb::parallel_for(
      tbb::blocked_range<size_t>(0, m, 1024),
      [&](const tbb::blocked_range<size_t>& r) {
        for (size_t t = r.begin(); t < r.end(); ++t) {
          const uint32_t i = need_[t];
          const float xn = x_norms_[i];
          const uint64_t mask = masks_[t];
          const uint32_t a = labels[i];
          // The incumbent: the own centroid at its exact distance.
          float best = full ? std::numeric_limits<float>::infinity() : dists[i];
          uint32_t best_id = full ? 0 : a;
          for (size_t g = 0; g < G_; ++g) {
            if (!((mask >> g) & 1)) continue;
            const size_t o = t * G_ + g;
            const float d2 = std::max(0.0f, xn + g_best_[o]);
            if (d2 < best || (d2 == best && g_idx_[o] < best_id)) {
              best = d2;
              best_id = g_idx_[o];
            }
          }
          float* lb = &lower_[size_t(i) * G_];
          const float margin = Margin(xn, c_max);
          for (size_t g = 0; g < G_; ++g) {
            if (!((mask >> g) & 1)) continue;
            const size_t o = t * G_ + g;
            const float v = g_idx_[o] == best_id ? g_second_[o] : g_best_[o];
            lb[g] = std::sqrt(std::max(0.0f, xn + v - margin));
          }
          if (!full && best_id != a) {
            // The old centroid joins the "others" of its group.
            const size_t ga = a / group_size_;
            if (!((mask >> ga) & 1)) {
              lb[ga] = std::min(lb[ga], std::sqrt(dists[i]) * (1.0f - 1e-6f));
            }
          }
          labels[i] = best_id;
          dists[i] = best;
        }
      });
  return m;
}

void BoundedAssign::Drift(const float* old, const float* now) {
  std::vector<float> gdrift(G_, 0.0f);
  for (size_t j = 0; j < k_; ++j) {
    // Rounded up a little: a bound must never drop too little.
    const float p =
        std::sqrt(L2Sqr(old + j * d_, now + j * d_, d_)) * (1.0f + 1e-6f);
    float& gd = gdrift[j / group_size_];
    gd = std::max(gd, p);
  }
  tbb::parallel_for(tbb::blocked_range<size_t>(0, n_, 4096),
                    [&](const tbb::blocked_range<size_t>& r) {
                      for (size_t i = r.begin(); i < r.end(); ++i) {
                        float* lb = &lower_[i * G_];
                        for (size_t g = 0; g < G_; ++g) lb[g] -= gdrift[g];
                      }
                    });
}

float BoundedAssign::Margin(float a_norm, float c_max) {
  return 4e-6f * (a_norm + c_max) + 1e-30f;
}

}  // namespace quiver::kernels
