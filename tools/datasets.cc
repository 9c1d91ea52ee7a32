// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Whole-file loads over the streaming readers of tools/vector_file.h, so
// that each format is parsed (and its header checked) in one place.

#include "tools/datasets.h"

#include <algorithm>
#include <cstdint>
#include <memory>

#include "tools/vector_file.h"

namespace quiver::tools {
namespace {

// Reads up to `limit` rows (all when 0) of `path`; a bad row is an error.
Status ReadMatrix(const std::string& path, VectorFormat format, size_t limit, Matrix* out) {
  out->n = out->d = 0;
  out->data.clear();
  std::unique_ptr<VectorFileReader> reader;
  Status s = VectorFileReader::Open(path, format, ReaderOptions(), &reader);
  if (!s.ok()) return s;
  out->d = reader->dim();
  size_t wanted = limit > 0 ? limit : SIZE_MAX;
  // Reserve only what the file size vouches for (each stored value takes
  // at least a byte); a gzip'd count just grows the vector.
  if (const auto n = reader->count(); n && *n <= reader->bytes_total() / out->d) {
    out->data.reserve(std::min<uint64_t>(*n, wanted) * out->d);
  }
  RowBatch batch;
  while (out->n < wanted) {
    s = reader->Next(std::min<size_t>(wanted - out->n, 4096), &batch);
    if (!s.ok()) return s;
    if (!batch.bad.empty()) {
      return Status::InvalidArgument(path + " " + batch.bad.front().where + ": " +
                                     batch.bad.front().reason);
    }
    if (batch.rows == 0) break;
    out->data.insert(out->data.end(), batch.values.begin(), batch.values.end());
    out->n += batch.rows;
  }
  return Status::OK();
}

}  // namespace

Status ReadFvecs(const std::string& path, Matrix* out, size_t limit) {
  return ReadMatrix(path, VectorFormat::kFvecs, limit, out);
}

Status ReadIdxImages(const std::string& path, Matrix* out) {
  return ReadMatrix(path, VectorFormat::kIdx, 0, out);
}

Status LoadFashionMnist(const std::string& dir, Matrix* train, Matrix* test) {
  Status s = ReadIdxImages(dir + "/train-images-idx3-ubyte.gz", train);
  if (!s.ok()) return s;
  return ReadIdxImages(dir + "/t10k-images-idx3-ubyte.gz", test);
}

}  // namespace quiver::tools
