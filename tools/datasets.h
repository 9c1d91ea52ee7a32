// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Whole-file loads of the vector files the tools and benchmarks consume,
// as a Matrix:
//   .fvecs          TEXMEX: per vector an int32 dimension, then d float32
//   IDX (.gz)       the MNIST / Fashion-MNIST image format: big-endian
//                   magic 0x00000803, counts, rows, cols, then uint8 pixels
// They go through the streaming readers of tools/vector_file.h (which read
// every other format too), so headers are checked before allocating: a
// hostile header (a dimension of 2^31, a count larger than the file) is an
// InvalidArgument, never a huge allocation.

#ifndef QUIVER_TOOLS_DATASETS_H_
#define QUIVER_TOOLS_DATASETS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quiver/status.h"

namespace quiver::tools {

// A row-major matrix of n vectors of dimension d.
struct Matrix {
  size_t n = 0;
  size_t d = 0;
  std::vector<float> data;
  const float* row(size_t i) const { return data.data() + i * d; }
};

// Reads a whole .fvecs file (at most `limit` vectors when limit > 0).
Status ReadFvecs(const std::string& path, Matrix* out, size_t limit = 0);

// Reads an IDX image file, gzip-compressed or not, as float vectors of
// rows x cols pixel values in [0, 255].
Status ReadIdxImages(const std::string& path, Matrix* out);

// Where Debian's dataset-fashion-mnist package puts the data.
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST: 60,000 train images (the base) and 10,000 test images
// (the queries), 784-d.
Status LoadFashionMnist(const std::string& dir, Matrix* train, Matrix* test);

}  // namespace quiver::tools

#endif  // QUIVER_TOOLS_DATASETS_H_
