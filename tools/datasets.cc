// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "tools/datasets.h"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>

namespace quiver::tools {
namespace {

constexpr size_t kMaxDim = 1 << 16;

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

}  // namespace

Status ReadFvecs(const std::string& path, Matrix* out, size_t limit) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec) return Status::IOError(path + ": " + ec.message());
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return Status::IOError(path + ": cannot open");
  int32_t dim = 0;
  if (std::fread(&dim, 4, 1, f.get()) != 1) return Status::InvalidArgument(path + ": empty file");
  if (dim <= 0 || static_cast<size_t>(dim) > kMaxDim) {
    return Status::InvalidArgument(path + ": not an fvecs file (first dimension " +
                                   std::to_string(dim) + ")");
  }
  const size_t row_bytes = 4 + 4 * static_cast<size_t>(dim);
  if (bytes % row_bytes != 0) {
    return Status::InvalidArgument(path + ": size " + std::to_string(bytes) +
                                   " is not a multiple of the row size " +
                                   std::to_string(row_bytes) + " (truncated or not fvecs)");
  }
  size_t n = bytes / row_bytes;
  if (limit > 0 && n > limit) n = limit;
  out->n = n;
  out->d = dim;
  out->data.resize(n * dim);
  std::rewind(f.get());
  for (size_t i = 0; i < n; ++i) {
    int32_t d = 0;
    if (std::fread(&d, 4, 1, f.get()) != 1 ||
        std::fread(&out->data[i * dim], 4, dim, f.get()) != static_cast<size_t>(dim)) {
      return Status::IOError(path + ": read failed at vector " + std::to_string(i));
    }
    if (d != dim) {
      return Status::InvalidArgument(path + ": vector " + std::to_string(i) + " has dimension " +
                                     std::to_string(d) + ", the first has " + std::to_string(dim));
    }
  }
  return Status::OK();
}

Status ReadIdxImages(const std::string& path, Matrix* out) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), &gzclose);
  if (!f) return Status::IOError(path + ": cannot open");
  unsigned char header[16];
  if (gzread(f.get(), header, sizeof(header)) != sizeof(header)) {
    return Status::InvalidArgument(path + ": too short for an IDX header");
  }
  if (BigEndian32(header) != 0x00000803) {
    return Status::InvalidArgument(path + ": not an IDX image file (magic " +
                                   std::to_string(BigEndian32(header)) + ")");
  }
  const size_t n = BigEndian32(header + 4), rows = BigEndian32(header + 8),
               cols = BigEndian32(header + 12);
  if (rows == 0 || cols == 0 || rows * cols > kMaxDim || n > (size_t{1} << 28)) {
    return Status::InvalidArgument(path + ": implausible IDX shape");
  }
  out->n = n;
  out->d = rows * cols;
  out->data.resize(n * out->d);
  std::vector<unsigned char> pixels(out->d);
  for (size_t i = 0; i < n; ++i) {
    if (gzread(f.get(), pixels.data(), static_cast<unsigned>(out->d)) !=
        static_cast<int>(out->d)) {
      return Status::InvalidArgument(path + ": truncated at image " + std::to_string(i));
    }
    for (size_t j = 0; j < out->d; ++j) out->data[i * out->d + j] = pixels[j];
  }
  return Status::OK();
}

Status LoadFashionMnist(const std::string& dir, Matrix* train, Matrix* test) {
  Status s = ReadIdxImages(dir + "/train-images-idx3-ubyte.gz", train);
  if (!s.ok()) return s;
  return ReadIdxImages(dir + "/t10k-images-idx3-ubyte.gz", test);
}

}  // namespace quiver::tools
