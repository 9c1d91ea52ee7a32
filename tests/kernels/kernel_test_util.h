// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Helpers of the kernel tests: random data, an fvecs reader, and
// straightforward double-precision references.

#ifndef QUIVER_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define QUIVER_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "quiver/types.h"

namespace quiver::kernels::testing {

// n x d floats, each N(0, 1) (times `scale`).
inline std::vector<float> RandomMatrix(size_t n, size_t d, uint64_t seed,
                                       float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> x(n * d);
  for (float& v : x) v = nd(rng);
  return x;
}

// n points around `clusters` well separated centres (d dims).
inline std::vector<float> Blobs(size_t n, size_t d, size_t clusters,
                                uint64_t seed, float spread = 0.3f) {
  std::vector<float> centres = RandomMatrix(clusters, d, seed ^ 0x9e37, 4.0f);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, spread);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = i % clusters;
    for (size_t q = 0; q < d; ++q) x[i * d + q] = centres[c * d + q] + nd(rng);
  }
  return x;
}

inline void NormalizeRows(std::vector<float>* x, size_t d) {
  for (size_t i = 0; i < x->size() / d; ++i) {
    double s = 0;
    for (size_t q = 0; q < d; ++q)
      s += double((*x)[i * d + q]) * (*x)[i * d + q];
    s = std::sqrt(s);
    if (s > 0) {
      for (size_t q = 0; q < d; ++q)
        (*x)[i * d + q] = float((*x)[i * d + q] / s);
    }
  }
}

// The distance of quiver::Metric, in double.
inline double RefDistance(Metric metric, const float* a, const float* b,
                          size_t d) {
  double s = 0.0;
  if (metric == Metric::kL2) {
    for (size_t q = 0; q < d; ++q) {
      const double t = double(a[q]) - double(b[q]);
      s += t * t;
    }
    return s;
  }
  for (size_t q = 0; q < d; ++q) s += double(a[q]) * double(b[q]);
  return metric == Metric::kInnerProduct ? -s : 1.0 - s;
}

inline std::string DataDir() {
  if (const char* env = std::getenv("QUIVER_DATA_DIR");
      env != nullptr && *env) {
    return env;
  }
#ifdef QUIVER_TEST_DATA_DIR
  return QUIVER_TEST_DATA_DIR;
#else
  return "../shared/data";
#endif
}

// Reads an .fvecs file (each row: int32 d, then d floats). Returns false if
// the file is missing or malformed.
inline bool ReadFvecs(const std::string& path, std::vector<float>* data,
                      size_t* n, size_t* d) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  data->clear();
  *n = 0;
  *d = 0;
  int32_t dim = 0;
  bool ok = true;
  while (std::fread(&dim, sizeof(dim), 1, f) == 1) {
    if (dim <= 0 || (*d != 0 && size_t(dim) != *d)) {
      ok = false;
      break;
    }
    *d = size_t(dim);
    const size_t old = data->size();
    data->resize(old + *d);
    if (std::fread(data->data() + old, sizeof(float), *d, f) != *d) {
      ok = false;
      break;
    }
    ++*n;
  }
  std::fclose(f);
  return ok && *n > 0;
}

}  // namespace quiver::kernels::testing

#endif  // QUIVER_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
