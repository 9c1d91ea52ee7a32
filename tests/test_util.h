// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Helpers shared by the DB tests: temporary directories, the SIFT 5K data
// set, brute-force ground truth.

#ifndef QUIVER_TESTS_TEST_UTIL_H_
#define QUIVER_TESTS_TEST_UTIL_H_

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "quiver/types.h"

namespace quiver::test {

// A fresh directory removed (with its contents) at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "quiver_test_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An unsigned environment variable (the long modes' sizes), or `fallback`
// when unset.
inline uint64_t EnvU64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

inline std::string DataDir() {
  if (const char* env = std::getenv("QUIVER_DATA_DIR")) return env;
  return QUIVER_TEST_DATA_DIR;
}

// Reads a TEXMEX .fvecs file; empty on failure.
inline std::vector<float> ReadFvecs(const std::string& path, size_t* n, size_t* d) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> out;
  *n = *d = 0;
  int32_t dim = 0;
  while (in.read(reinterpret_cast<char*>(&dim), 4)) {
    if (dim <= 0 || (*d != 0 && static_cast<size_t>(dim) != *d)) return {};
    *d = dim;
    const size_t at = out.size();
    out.resize(at + dim);
    if (!in.read(reinterpret_cast<char*>(out.data() + at), 4 * dim)) return {};
    ++*n;
  }
  return out;
}

// SIFT 5K as the tests use it: the first 4,500 vectors as the base, the
// last 500 as queries (see shared/data/README.md).
struct Sift5k {
  size_t d = 0;
  size_t nb = 0, nq = 0;
  std::vector<float> base, queries;
  bool ok() const { return nb == 4500 && nq == 500 && d == 128; }
};

inline Sift5k LoadSift5k() {
  Sift5k s;
  size_t n = 0, d = 0;
  std::vector<float> all = ReadFvecs(DataDir() + "/sift5k/sift5k_base.fvecs", &n, &d);
  if (n != 5000) return s;
  s.d = d;
  s.nb = 4500;
  s.nq = 500;
  s.base.assign(all.begin(), all.begin() + s.nb * d);
  s.queries.assign(all.begin() + s.nb * d, all.end());
  return s;
}

inline float RefDistance(Metric m, const float* a, const float* b, size_t d) {
  double dot = 0, na = 0, nb = 0, l2 = 0;
  for (size_t i = 0; i < d; ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
    l2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  }
  switch (m) {
    case Metric::kL2: return float(l2);
    case Metric::kInnerProduct: return float(-dot);
    case Metric::kCosine: return float(1.0 - dot / std::sqrt(na * nb));
  }
  return 0;
}

// Exact k nearest base rows (ids = row numbers) for each query.
inline std::vector<std::vector<uint64_t>> BruteForceKnn(Metric m, const std::vector<float>& base,
                                                        const std::vector<float>& queries,
                                                        size_t d, size_t k) {
  const size_t nb = base.size() / d, nq = queries.size() / d;
  std::vector<std::vector<uint64_t>> gt(nq);
  std::vector<std::pair<float, uint64_t>> all(nb);
  for (size_t q = 0; q < nq; ++q) {
    for (size_t i = 0; i < nb; ++i) all[i] = {RefDistance(m, &queries[q * d], &base[i * d], d), i};
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    for (size_t j = 0; j < k; ++j) gt[q].push_back(all[j].second);
  }
  return gt;
}

// Fraction of the true k nearest found among the returned ids.
template <typename Results>
double RecallAtK(const Results& results, const std::vector<std::vector<uint64_t>>& gt, size_t k) {
  size_t hit = 0;
  for (size_t q = 0; q < gt.size(); ++q) {
    for (size_t j = 0; j < k && j < gt[q].size(); ++j) {
      for (const auto& r : results[q]) {
        if (r.id == gt[q][j]) {
          ++hit;
          break;
        }
      }
    }
  }
  return double(hit) / double(gt.size() * k);
}

}  // namespace quiver::test

#endif  // QUIVER_TESTS_TEST_UTIL_H_
