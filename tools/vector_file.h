// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Streaming readers of the vector files the tool imports and queries with.
// A reader holds one batch of rows at a time, never the whole file.
//
//   std::unique_ptr<VectorFileReader> r;
//   Status s = VectorFileReader::Open("base.npy", VectorFormat::kAuto, {}, &r);
//   RowBatch batch;
//   while ((s = r->Next(10000, &batch)).ok() && batch.rows > 0) { ... }
//
// Formats:
//   fvecs / bvecs / ivecs  TEXMEX: per row an int32 dimension, then d
//                          float32 / uint8 / int32 values
//   npy                    NumPy .npy v1-v3, C order, 2-D (n, d) of
//                          float32/float64/float16/int8/uint8/int32/int64
//   hdf5                   a 2-D float/integer dataset (--dataset, or the
//                          only 2-D one in the root group; ann-benchmarks
//                          files: "train")
//   csv                    one row per line, values separated by commas
//                          (or tabs, or spaces); empty lines and '#' lines
//                          are skipped, and so is a first line holding a
//                          field that is not a number (a header); with
//                          ReaderOptions::id_column the first field is the id
//   idx                    MNIST / Fashion-MNIST images (.gz allowed)
//
// Every header is checked before anything is allocated from it: a
// dimension of 2^31, a negative or too large count, a shape that does not
// fit the file size are InvalidArgument naming the file, never a huge
// allocation. A row the reader cannot parse (csv: wrong field count, not a
// number) is a BadRow with its position, not a failure of the whole file:
// the caller decides to skip it or stop. A non-finite value is left for
// the caller to reject (the DB does, and the importer reports it as a bad
// row).

#ifndef QUIVER_TOOLS_VECTOR_FILE_H_
#define QUIVER_TOOLS_VECTOR_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quiver/status.h"

namespace quiver::tools {

enum class VectorFormat { kAuto, kFvecs, kBvecs, kIvecs, kNpy, kHdf5, kCsv, kIdx };

// "fvecs", ..., and back. ParseVectorFormat accepts "auto".
const char* VectorFormatName(VectorFormat f);
Status ParseVectorFormat(const std::string& name, VectorFormat* f);
// The format of `path` by its extension (.fvecs, .npy, .h5/.hdf5, .csv/.tsv/.txt,
// .gz/-ubyte for idx ...); InvalidArgument when it says nothing.
Status FormatFromExtension(const std::string& path, VectorFormat* f);

struct ReaderOptions {
  // hdf5: the dataset to read; empty takes the only 2-D dataset, or
  // "train" when there are several.
  std::string dataset;
  // csv: the first field of each row is its uint64 id.
  bool id_column = false;
};

// A row that could not be read, with where it is in the file.
struct BadRow {
  uint64_t row = 0;      // 0-based row number among the data rows
  std::string where;     // "line 17", "byte offset 4096", "row 12"
  std::string reason;    // "has 127 values, expected 128"
};

// Rows handed out by one Next() call.
struct RowBatch {
  size_t rows = 0;                 // good rows in this batch
  std::vector<float> values;       // rows x dim, row-major
  std::vector<uint64_t> row_numbers;  // per good row: its 0-based row in the file
  std::vector<uint64_t> ids;       // per good row, only with id_column
  std::vector<uint64_t> lines;     // csv: per good row, its 1-based line; else empty
  std::vector<BadRow> bad;         // rows skipped in this batch
};

class VectorFileReader {
 public:
  // Opens `path` and reads its header. kAuto picks the format by extension.
  static Status Open(const std::string& path, VectorFormat format,
                     const ReaderOptions& options, std::unique_ptr<VectorFileReader>* reader);

  virtual ~VectorFileReader() = default;

  virtual VectorFormat format() const = 0;
  virtual uint32_t dim() const = 0;
  // Rows in the file when the header says (all but csv).
  virtual std::optional<uint64_t> count() const = 0;
  // Bytes of the file consumed so far and in total, for a progress bar.
  virtual uint64_t bytes_read() const = 0;
  virtual uint64_t bytes_total() const = 0;

  // Reads up to `max_rows` more rows (good and bad) into *batch, replacing
  // its contents. batch->rows == 0 and batch->bad empty means the end.
  // A failure (I/O error, a truncated binary file) is a non-OK Status
  // naming the file and the position.
  virtual Status Next(size_t max_rows, RowBatch* batch) = 0;
};

// Reads every row of `path` (for query files, which are small). Bad rows
// are an error here.
Status ReadAllVectors(const std::string& path, VectorFormat format, const ReaderOptions& options,
                      std::vector<float>* values, size_t* rows, uint32_t* dim);

// Reads a file of ids: text with one id per line, or a 1-D .npy of
// integers, or an ivecs file (ground truth: each row is a list of ids; the
// rows are concatenated with `per_row` set to the row length).
Status ReadIds(const std::string& path, std::vector<uint64_t>* ids, uint32_t* per_row);

}  // namespace quiver::tools

#endif  // QUIVER_TOOLS_VECTOR_FILE_H_
