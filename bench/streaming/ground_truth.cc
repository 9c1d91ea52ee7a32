// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "bench/streaming/ground_truth.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>

namespace quiver::bench {

namespace {

constexpr size_t kQueryBlock = 4;   // queries sharing one pass over a row
constexpr size_t kLanes = 16;       // independent partial sums (SIMD-friendly)
constexpr int64_t kMagic = 0x51475453'54524541;  // "QGTSTREA"

// The k best (distance, id) of one query, sorted, closest first.
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { best_.reserve(k + 1); }
  void Push(float dist, uint64_t id) {
    if (best_.size() == k_ && !Less({dist, id}, best_.back())) return;
    auto it = std::upper_bound(best_.begin(), best_.end(), std::make_pair(dist, id), Less);
    best_.insert(it, {dist, id});
    if (best_.size() > k_) best_.pop_back();
  }
  void Write(uint64_t* out) const {
    for (size_t i = 0; i < k_; ++i) out[i] = i < best_.size() ? best_[i].second : kNoId;
  }

 private:
  static bool Less(const std::pair<float, uint64_t>& a, const std::pair<float, uint64_t>& b) {
    return a.first < b.first || (a.first == b.first && a.second < b.second);
  }
  size_t k_;
  std::vector<std::pair<float, uint64_t>> best_;
};

// Squared L2 of kQueryBlock queries against one row (the caller pads a
// short block by repeating a query). Compiled twice, for AVX2 and for the
// baseline ISA; the loader picks one for this CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void Distances(const float* const* q, const float* x, size_t d, float* out) {
  static_assert(kQueryBlock == 4, "the loop below is written out for 4 queries");
  float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
  const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
  size_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    for (size_t l = 0; l < kLanes; ++l) {
      const float xv = x[j + l];
      const float e0 = q0[j + l] - xv, e1 = q1[j + l] - xv;
      const float e2 = q2[j + l] - xv, e3 = q3[j + l] - xv;
      a0[l] += e0 * e0;
      a1[l] += e1 * e1;
      a2[l] += e2 * e2;
      a3[l] += e3 * e3;
    }
  }
  float* acc[kQueryBlock] = {a0, a1, a2, a3};
  for (size_t b = 0; b < kQueryBlock; ++b) {
    float s = 0.0f;
    for (size_t l = 0; l < kLanes; ++l) s += acc[b][l];
    for (size_t t = j; t < d; ++t) {
      const float diff = q[b][t] - x[t];
      s += diff * diff;
    }
    out[b] = s;
  }
}

void KnnRange(const float* data, size_t d, std::span<const LiveVector> live,
              const float* queries, size_t q_begin, size_t q_end, size_t k, uint64_t* out) {
  for (size_t q0 = q_begin; q0 < q_end; q0 += kQueryBlock) {
    const size_t nqb = std::min(kQueryBlock, q_end - q0);
    const float* q[kQueryBlock];
    std::vector<TopK> top(nqb, TopK(k));
    for (size_t b = 0; b < kQueryBlock; ++b) q[b] = queries + (q0 + std::min(b, nqb - 1)) * d;
    float dist[kQueryBlock];
    for (const LiveVector& v : live) {
      Distances(q, data + v.row * d, d, dist);
      for (size_t b = 0; b < nqb; ++b) top[b].Push(dist[b], v.id);
    }
    for (size_t b = 0; b < nqb; ++b) top[b].Write(out + (q0 + b) * k);
  }
}

}  // namespace

void ExactKnnL2(const float* data, size_t d, std::span<const LiveVector> live,
                const float* queries, size_t nq, size_t k, int threads,
                std::vector<uint64_t>* out) {
  out->assign(nq * k, kNoId);
  const size_t nt = std::max<size_t>(1, std::min<size_t>(threads, nq));
  std::vector<std::thread> pool;
  for (size_t t = 0; t < nt; ++t) {
    // Contiguous query ranges, rounded to whole blocks.
    const size_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
    const size_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    const size_t q0 = std::min(nq, b0 * kQueryBlock), q1 = std::min(nq, b1 * kQueryBlock);
    pool.emplace_back(KnnRange, data, d, live, queries, q0, q1, k, out->data());
  }
  for (auto& th : pool) th.join();
}

uint64_t GroundTruthKey(const std::string& runbook_path, const std::string& data_path,
                        const std::string& queries_path, size_t nq, size_t k) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  std::ifstream in(runbook_path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  mix(text.data(), text.size());
  std::error_code ec;
  const uint64_t sizes[4] = {std::filesystem::file_size(data_path, ec),
                             std::filesystem::file_size(queries_path, ec), nq, k};
  mix(sizes, sizeof(sizes));
  return h;
}

Status LoadGroundTruth(const std::string& path, uint64_t key, GroundTruthCache* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path);
  int64_t head[5];
  if (!in.read(reinterpret_cast<char*>(head), sizeof(head)) || head[0] != kMagic ||
      static_cast<uint64_t>(head[4]) != key || head[1] < 0 || head[2] <= 0 || head[3] <= 0) {
    return Status::NotFound(path + ": another runbook's ground truth");
  }
  out->key = key;
  out->nq = static_cast<size_t>(head[2]);
  out->k = static_cast<size_t>(head[3]);
  out->step_numbers.clear();
  out->answers.clear();
  for (int64_t s = 0; s < head[1]; ++s) {
    int64_t step = 0;
    std::vector<int64_t> ids(out->nq * out->k);
    if (!in.read(reinterpret_cast<char*>(&step), sizeof(step)) ||
        !in.read(reinterpret_cast<char*>(ids.data()), ids.size() * sizeof(int64_t))) {
      return Status::Corruption(path + ": truncated");
    }
    out->step_numbers.push_back(static_cast<int>(step));
    std::vector<uint64_t> ans(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) ans[i] = ids[i] < 0 ? kNoId : ids[i];
    out->answers.push_back(std::move(ans));
  }
  return Status::OK();
}

Status SaveGroundTruth(const std::string& path, const GroundTruthCache& gt) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Status::IOError(tmp + ": cannot write");
    const int64_t head[5] = {kMagic, static_cast<int64_t>(gt.answers.size()),
                             static_cast<int64_t>(gt.nq), static_cast<int64_t>(gt.k),
                             static_cast<int64_t>(gt.key)};
    f.write(reinterpret_cast<const char*>(head), sizeof(head));
    for (size_t s = 0; s < gt.answers.size(); ++s) {
      const int64_t step = gt.step_numbers[s];
      f.write(reinterpret_cast<const char*>(&step), sizeof(step));
      for (uint64_t id : gt.answers[s]) {
        const int64_t v = id == kNoId ? -1 : static_cast<int64_t>(id);
        f.write(reinterpret_cast<const char*>(&v), sizeof(v));
      }
    }
    if (!f) return Status::IOError(tmp + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::IOError(path + ": " + ec.message());
  return Status::OK();
}

double RecallAtK(std::span<const uint64_t> truth, std::span<const uint64_t> result) {
  size_t n = 0, hit = 0;
  for (uint64_t t : truth) {
    if (t == kNoId) continue;
    ++n;
    if (std::find(result.begin(), result.end(), t) != result.end()) ++hit;
  }
  return n == 0 ? 1.0 : static_cast<double>(hit) / n;
}

}  // namespace quiver::bench
