// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The streaming vector file readers (tools/vector_file.h): every format
// round-trips, batches of any size add up to the whole file, hostile
// headers are refused up front, bad rows come back with their position.

#include "tools/vector_file.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"
#include "tools/datasets.h"
#include "vector_file_writers.h"

namespace quiver {
namespace {

using tools::BadRow;
using tools::ReaderOptions;
using tools::RowBatch;
using tools::VectorFileReader;
using tools::VectorFormat;

// n x d values, distinct, exactly representable as float and as small ints.
std::vector<float> Values(size_t n, size_t d) {
  std::vector<float> v(n * d);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i * 37 % 101) - 50) * 0.25f;
  return v;
}

template <typename T>
std::vector<T> Cast(const std::vector<float>& v) {
  return std::vector<T>(v.begin(), v.end());
}

struct Read {
  Status status;
  std::vector<float> values;
  size_t rows = 0;
  uint32_t dim = 0;
};

Read ReadAll(const std::string& path, VectorFormat format = VectorFormat::kAuto,
             const ReaderOptions& options = {}) {
  Read r;
  r.status = tools::ReadAllVectors(path, format, options, &r.values, &r.rows, &r.dim);
  return r;
}

Status OpenStatus(const std::string& path, VectorFormat format = VectorFormat::kAuto,
                  const ReaderOptions& options = {}) {
  std::unique_ptr<VectorFileReader> reader;
  return VectorFileReader::Open(path, format, options, &reader);
}

// Expects InvalidArgument whose message contains `words`.
#define EXPECT_REFUSED(status, words)                                          \
  do {                                                                         \
    const Status s_ = (status);                                                \
    EXPECT_TRUE(s_.IsInvalidArgument()) << s_.ToString();                      \
    EXPECT_NE(s_.ToString().find(words), std::string::npos) << s_.ToString();  \
  } while (0)

TEST(VectorFileTest, FormatNamesAndExtensions) {
  for (auto f : {VectorFormat::kAuto, VectorFormat::kFvecs, VectorFormat::kBvecs,
                 VectorFormat::kIvecs, VectorFormat::kNpy, VectorFormat::kHdf5,
                 VectorFormat::kCsv, VectorFormat::kIdx}) {
    VectorFormat back;
    ASSERT_TRUE(tools::ParseVectorFormat(tools::VectorFormatName(f), &back).ok());
    EXPECT_EQ(back, f);
  }
  VectorFormat f;
  EXPECT_TRUE(tools::ParseVectorFormat("parquet", &f).IsInvalidArgument());
  const std::pair<const char*, VectorFormat> cases[] = {
      {"a/sift_base.fvecs", VectorFormat::kFvecs}, {"x.BVECS", VectorFormat::kBvecs},
      {"gt.ivecs", VectorFormat::kIvecs},          {"emb.npy", VectorFormat::kNpy},
      {"glove.hdf5", VectorFormat::kHdf5},         {"glove.h5", VectorFormat::kHdf5},
      {"v.csv", VectorFormat::kCsv},               {"v.tsv", VectorFormat::kCsv},
      {"train-images-idx3-ubyte.gz", VectorFormat::kIdx},
      {"train-images-idx3-ubyte", VectorFormat::kIdx}};
  for (const auto& [path, want] : cases) {
    ASSERT_TRUE(tools::FormatFromExtension(path, &f).ok()) << path;
    EXPECT_EQ(f, want) << path;
  }
  EXPECT_TRUE(tools::FormatFromExtension("vectors.bin", &f).IsInvalidArgument());
}

TEST(VectorFileTest, TexmexFormatsRoundTrip) {
  test::TempDir dir;
  const std::vector<float> v = Values(7, 5);
  test::WriteTexmex(dir.Sub("a.fvecs"), 5, v);
  std::vector<float> small(v.size());
  for (size_t i = 0; i < v.size(); ++i) small[i] = float(i % 256);
  test::WriteTexmex(dir.Sub("a.bvecs"), 5, Cast<uint8_t>(small));
  test::WriteTexmex(dir.Sub("a.ivecs"), 5, Cast<int32_t>(v));

  Read r = ReadAll(dir.Sub("a.fvecs"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.rows, 7u);
  EXPECT_EQ(r.dim, 5u);
  EXPECT_EQ(r.values, v);
  r = ReadAll(dir.Sub("a.bvecs"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, small);
  r = ReadAll(dir.Sub("a.ivecs"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  std::vector<float> truncated(v.size());
  for (size_t i = 0; i < v.size(); ++i) truncated[i] = float(int32_t(v[i]));
  EXPECT_EQ(r.values, truncated);
}

TEST(VectorFileTest, NpyTypesAndVersionsRoundTrip) {
  test::TempDir dir;
  const std::vector<float> v = Values(6, 4);
  std::vector<float> ints(v.size());
  for (size_t i = 0; i < v.size(); ++i) ints[i] = float(int(v[i]));
  std::vector<float> bytes(v.size());
  for (size_t i = 0; i < v.size(); ++i) bytes[i] = float(i * 11 % 256);

  struct Case {
    std::string descr;
    std::string data;
    const std::vector<float>* want;
    int major;
  };
  const Case cases[] = {
      {"<f4", test::AsBytes(v), &v, 1},
      {"<f4", test::AsBytes(v), &v, 2},
      {"<f4", test::AsBytes(v), &v, 3},
      {"<f8", test::AsBytes(Cast<double>(v)), &v, 1},
      {"|u1", test::AsBytes(Cast<uint8_t>(bytes)), &bytes, 1},
      {"|i1", test::AsBytes(Cast<int8_t>(ints)), &ints, 1},
      {"<i4", test::AsBytes(Cast<int32_t>(ints)), &ints, 1},
      {"<i8", test::AsBytes(Cast<int64_t>(ints)), &ints, 1},
  };
  for (const Case& c : cases) {
    const std::string path = dir.Sub("v.npy");
    test::WriteBytes(path, test::NpyBytes(test::NpyDict(c.descr, "(6, 4)"), c.data, c.major));
    const Read r = ReadAll(path);
    ASSERT_TRUE(r.status.ok()) << c.descr << " v" << c.major << ": " << r.status.ToString();
    EXPECT_EQ(r.rows, 6u);
    EXPECT_EQ(r.dim, 4u);
    EXPECT_EQ(r.values, *c.want) << c.descr << " v" << c.major;
  }
}

TEST(VectorFileTest, NpyFloat16IsConvertedExactly) {
  test::TempDir dir;
  // 1, -2, 0.5, 65504 (largest half), 2^-24 (smallest subnormal), 0, -0,
  // 1365/4096, +inf, a NaN.
  const std::vector<uint16_t> halves = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001,
                                        0x0000, 0x8000, 0x3555, 0x7c00, 0x7e00};
  test::WriteBytes(dir.Sub("h.npy"),
                   test::NpyBytes(test::NpyDict("<f2", "(2, 5)"), test::AsBytes(halves)));
  const Read r = ReadAll(dir.Sub("h.npy"));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.values.size(), 10u);
  const float want[] = {1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), 0.0f, -0.0f,
                        1365.0f / 4096.0f};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(r.values[i], want[i]) << i;
  EXPECT_TRUE(std::signbit(r.values[6]));
  EXPECT_TRUE(std::isinf(r.values[8]) && r.values[8] > 0);
  EXPECT_TRUE(std::isnan(r.values[9]));  // left for the caller to reject
}

TEST(VectorFileTest, Hdf5DatasetsAndSelection) {
  test::TempDir dir;
  const std::vector<float> train = Values(10, 4);
  const std::vector<int32_t> test_ints = {1, 2, 3, 4, -5, 6, 7, 8, 9, 10, 11, 12};
  const std::vector<int32_t> neighbors = {0, 1, 2};
  const std::string ann = dir.Sub("ann.hdf5");
  {
    test::Hdf5Writer w(ann);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w.AddFloats("train", 10, 4, train));
    ASSERT_TRUE(w.AddInts("test", 3, 4, test_ints));
    ASSERT_TRUE(w.Add("neighbors", {3}, H5T_STD_I32LE, H5T_NATIVE_INT32, neighbors.data()));
    ASSERT_TRUE(w.AddGroup("meta"));
    ASSERT_TRUE(w.AddFloats("meta/inner", 2, 4, Values(2, 4)));
  }
  // Several 2-D datasets: "train" is the default.
  Read r = ReadAll(ann);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.rows, 10u);
  EXPECT_EQ(r.values, train);
  // An integer dataset by name, converted to float.
  ReaderOptions o;
  o.dataset = "test";
  r = ReadAll(ann, VectorFormat::kAuto, o);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, std::vector<float>(test_ints.begin(), test_ints.end()));
  // A dataset inside a group, by path.
  o.dataset = "/meta/inner";
  r = ReadAll(ann, VectorFormat::kHdf5, o);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, Values(2, 4));
  // A 1-D dataset, a missing one.
  o.dataset = "neighbors";
  EXPECT_REFUSED(OpenStatus(ann, VectorFormat::kAuto, o), "is 1-D; expected 2-D");
  o.dataset = "nope";
  EXPECT_REFUSED(OpenStatus(ann, VectorFormat::kAuto, o), "dataset 'nope' cannot be opened");

  // The only 2-D dataset is taken whatever its name.
  const std::string single = dir.Sub("single.h5");
  {
    test::Hdf5Writer w(single);
    ASSERT_TRUE(w.AddFloats("embeddings", 3, 4, Values(3, 4)));
    ASSERT_TRUE(w.Add("labels", {3}, H5T_STD_I32LE, H5T_NATIVE_INT32, neighbors.data()));
  }
  r = ReadAll(single);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.values, Values(3, 4));

  // Two 2-D datasets and no "train": the caller must choose.
  const std::string two = dir.Sub("two.h5");
  {
    test::Hdf5Writer w(two);
    ASSERT_TRUE(w.AddFloats("a", 3, 4, Values(3, 4)));
    ASSERT_TRUE(w.AddFloats("b", 3, 4, Values(3, 4)));
  }
  EXPECT_REFUSED(OpenStatus(two), "several 2-D datasets (a, b)");

  test::WriteBytes(dir.Sub("fake.h5"), "not hdf5 at all, just text\n");
  EXPECT_REFUSED(OpenStatus(dir.Sub("fake.h5")), "not an HDF5 file");
}

TEST(VectorFileTest, CsvSeparatorsHeaderCommentsAndIdColumn) {
  test::TempDir dir;
  const std::vector<float> want = {1, 2.5f, -3, 4e-3f, 5, 6};
  const std::string variants[] = {
      "x,y,z\n1,2.5,-3\n# a comment\n\n4e-3, 5 ,+6\n",
      "# comment first\r\n1\t2.5\t-3\r\n4e-3\t5\t6\r\n",
      "  1  2.5 -3\n4e-3 5      6  \n",
      "\"a\",\"b\",\"c\"\n\"1\",\"2.5\",\"-3\"\n4e-3,5,6",  // quoted, no final newline
  };
  for (const std::string& text : variants) {
    test::WriteBytes(dir.Sub("v.csv"), text);
    const Read r = ReadAll(dir.Sub("v.csv"));
    ASSERT_TRUE(r.status.ok()) << text << r.status.ToString();
    EXPECT_EQ(r.rows, 2u) << text;
    EXPECT_EQ(r.dim, 3u) << text;
    EXPECT_EQ(r.values, want) << text;
  }

  test::WriteBytes(dir.Sub("ids.csv"), "id,a,b\n17,1,2\n# skipped\n18446744073709551615,3,4\n");
  std::unique_ptr<VectorFileReader> reader;
  ReaderOptions o;
  o.id_column = true;
  ASSERT_TRUE(VectorFileReader::Open(dir.Sub("ids.csv"), VectorFormat::kAuto, o, &reader).ok());
  EXPECT_EQ(reader->dim(), 2u);
  EXPECT_FALSE(reader->count().has_value());
  RowBatch b;
  ASSERT_TRUE(reader->Next(10, &b).ok());
  ASSERT_EQ(b.rows, 2u);
  EXPECT_EQ(b.ids, (std::vector<uint64_t>{17, std::numeric_limits<uint64_t>::max()}));
  EXPECT_EQ(b.values, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(b.lines, (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(b.row_numbers, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(reader->bytes_read(), reader->bytes_total());
  ASSERT_TRUE(reader->Next(10, &b).ok());
  EXPECT_EQ(b.rows, 0u);
  EXPECT_TRUE(b.bad.empty());

  // An id column exists only in csv.
  test::WriteTexmex(dir.Sub("a.fvecs"), 2, Values(2, 2));
  EXPECT_TRUE(OpenStatus(dir.Sub("a.fvecs"), VectorFormat::kAuto, o).IsInvalidArgument());
}

TEST(VectorFileTest, CsvBadRowsComeBackWithTheirLines) {
  test::TempDir dir;
  test::WriteBytes(dir.Sub("bad.csv"),
                   "a,b,c\n"      // line 1: header
                   "1,2,3\n"      // line 2: row 0
                   "4,5\n"        // line 3: row 1, too few
                   "7,x,9\n"      // line 4: row 2, not a number
                   "\n"           // line 5
                   "10,11,12\n"   // line 6: row 3
                   "1,2,3,4\n"    // line 7: row 4, too many
                   "13,,15\n"     // line 8: row 5, empty field
                   "nan,1,inf\n"  // line 9: row 6, parsed; non-finite is the caller's call
                   "1e999,0,0\n"  // line 10: row 7, out of float range
  );
  std::unique_ptr<VectorFileReader> reader;
  ASSERT_TRUE(VectorFileReader::Open(dir.Sub("bad.csv"), VectorFormat::kCsv, {}, &reader).ok());
  std::vector<BadRow> bad;
  std::vector<uint64_t> good_rows, good_lines;
  RowBatch b;
  while (reader->Next(3, &b).ok() && (b.rows > 0 || !b.bad.empty())) {
    EXPECT_LE(b.rows + b.bad.size(), 3u);
    bad.insert(bad.end(), b.bad.begin(), b.bad.end());
    good_rows.insert(good_rows.end(), b.row_numbers.begin(), b.row_numbers.end());
    good_lines.insert(good_lines.end(), b.lines.begin(), b.lines.end());
  }
  EXPECT_EQ(good_rows, (std::vector<uint64_t>{0, 3, 6}));
  EXPECT_EQ(good_lines, (std::vector<uint64_t>{2, 6, 9}));
  ASSERT_EQ(bad.size(), 5u);
  const struct {
    uint64_t row;
    const char* where;
    const char* reason;
  } want[] = {{1, "line 3", "has 2 values, expected 3"},
              {2, "line 4", "value 2 'x' is not a number"},
              {4, "line 7", "has 4 values, expected 3"},
              {5, "line 8", "value 2 is empty"},
              {7, "line 10", "value 1 '1e999' is out of float range"}};
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(bad[i].row, want[i].row) << i;
    EXPECT_EQ(bad[i].where, want[i].where) << i;
    EXPECT_EQ(bad[i].reason, want[i].reason) << i;
  }
  // ReadAllVectors makes the first bad row an error.
  EXPECT_REFUSED(ReadAll(dir.Sub("bad.csv")).status, "line 3: has 2 values, expected 3");
}

TEST(VectorFileTest, StreamingInOddBatchesEqualsTheWholeRead) {
  test::TempDir dir;
  const size_t n = 23, d = 3;
  const std::vector<float> v = Values(n, d);
  test::WriteTexmex(dir.Sub("v.fvecs"), d, v);
  test::WriteNpy(dir.Sub("v.npy"), "<f4", n, d, v);
  {
    test::Hdf5Writer w(dir.Sub("v.h5"));
    ASSERT_TRUE(w.AddFloats("train", n, d, v));
  }
  std::string csv = "# generated\n";
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) csv += std::to_string(v[i * d + j]) + (j + 1 < d ? "," : "\n");
  }
  test::WriteBytes(dir.Sub("v.csv"), csv);
  std::vector<uint8_t> pixels(n * 6);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 7);
  const std::string idx = test::IdxBytes(n, 2, 3, pixels);
  {
    gzFile gz = gzopen(dir.Sub("v-ubyte.gz").c_str(), "wb");
    ASSERT_NE(gz, nullptr);
    ASSERT_EQ(gzwrite(gz, idx.data(), unsigned(idx.size())), int(idx.size()));
    gzclose(gz);
  }
  test::WriteBytes(dir.Sub("raw-ubyte"), idx);

  for (const char* name : {"v.fvecs", "v.npy", "v.h5", "v.csv", "v-ubyte.gz", "raw-ubyte"}) {
    const std::string path = dir.Sub(name);
    const Read whole = ReadAll(path);
    ASSERT_TRUE(whole.status.ok()) << name << ": " << whole.status.ToString();
    ASSERT_EQ(whole.rows, n) << name;
    for (size_t batch : {1, 2, 5, 7, 22, 23, 100}) {
      std::unique_ptr<VectorFileReader> reader;
      ASSERT_TRUE(VectorFileReader::Open(path, VectorFormat::kAuto, {}, &reader).ok()) << name;
      std::vector<float> got;
      std::vector<uint64_t> rows;
      RowBatch b;
      Status s;
      while ((s = reader->Next(batch, &b)).ok() && b.rows > 0) {
        EXPECT_LE(b.rows, batch);
        EXPECT_TRUE(b.bad.empty());
        got.insert(got.end(), b.values.begin(), b.values.end());
        rows.insert(rows.end(), b.row_numbers.begin(), b.row_numbers.end());
      }
      ASSERT_TRUE(s.ok()) << name << ": " << s.ToString();
      EXPECT_EQ(got, whole.values) << name << " batch " << batch;
      ASSERT_EQ(rows.size(), n);
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(rows[i], i);
      EXPECT_EQ(reader->bytes_read(), reader->bytes_total()) << name;
    }
  }
  EXPECT_EQ(ReadAll(dir.Sub("v.npy")).values, v);
  EXPECT_EQ(ReadAll(dir.Sub("v.h5")).values, v);
  EXPECT_EQ(ReadAll(dir.Sub("v.csv")).values, v);
  EXPECT_EQ(ReadAll(dir.Sub("raw-ubyte")).values, std::vector<float>(pixels.begin(), pixels.end()));
}

TEST(VectorFileTest, HostileTexmexHeadersAreRefused) {
  test::TempDir dir;
  const std::string path = dir.Sub("h.fvecs");
  for (int32_t dim : {std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min(),
                      -5, 0, 65537}) {
    std::string bytes(reinterpret_cast<const char*>(&dim), 4);
    bytes += std::string(64, '\0');
    test::WriteBytes(path, bytes);
    EXPECT_REFUSED(OpenStatus(path), "the first row's dimension field is " + std::to_string(dim));
  }
  // Truncated: the last row lost a byte.
  test::WriteTexmex(path, 4, Values(3, 4));
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  test::WriteBytes(path, bytes.substr(0, bytes.size() - 1));
  EXPECT_REFUSED(OpenStatus(path), "is not a whole number of 20-byte rows");
  test::WriteBytes(path, "");
  EXPECT_REFUSED(OpenStatus(path), "too short");
  test::WriteBytes(dir.Sub("h.ivecs"), bytes.substr(0, 30));
  EXPECT_REFUSED(OpenStatus(dir.Sub("h.ivecs")), "truncated, or not ivecs");

  // A row whose dimension field differs is a bad row at its byte offset.
  int32_t other = 7;
  bytes.replace(20, 4, reinterpret_cast<const char*>(&other), 4);
  test::WriteBytes(path, bytes);
  std::unique_ptr<VectorFileReader> reader;
  ASSERT_TRUE(VectorFileReader::Open(path, VectorFormat::kAuto, {}, &reader).ok());
  RowBatch b;
  ASSERT_TRUE(reader->Next(10, &b).ok());
  EXPECT_EQ(b.rows, 2u);
  ASSERT_EQ(b.bad.size(), 1u);
  EXPECT_EQ(b.bad[0].row, 1u);
  EXPECT_EQ(b.bad[0].where, "row 1 (byte offset 20)");
  EXPECT_EQ(b.bad[0].reason, "its dimension field says 7, expected 4");
}

TEST(VectorFileTest, HostileNpyHeadersAreRefused) {
  test::TempDir dir;
  const std::string path = dir.Sub("h.npy");
  const std::string data = test::AsBytes(Values(2, 4));
  auto refused = [&](const std::string& dict, const std::string& words, int major = 1) {
    test::WriteBytes(path, test::NpyBytes(dict, data, major));
    EXPECT_REFUSED(OpenStatus(path), words);
  };
  refused(test::NpyDict("<f4", "(2, 2147483648)"), "dimension 2147483648 is outside 1..65536");
  refused(test::NpyDict("<f4", "(2, 0)"), "dimension 0 is outside");
  refused(test::NpyDict("<f4", "(-2, 4)"), "negative dimension");
  refused(test::NpyDict("<f4", "(2, -4)"), "negative dimension");
  refused(test::NpyDict("<f4", "(1099511627776, 4)"), "needs 1099511627776 rows of 16 bytes");
  refused(test::NpyDict("<f4", "(3, 4)"), "truncated?");
  refused(test::NpyDict("<f4", "(99999999999999999999999, 4)"), "out-of-range dimension");
  refused(test::NpyDict("<f4", "(2, 2, 2)"), "is 3-D; expected 2-D");
  refused(test::NpyDict("<f4", "(8,)"), "is 1-D");
  refused(test::NpyDict("<f4", "(2, 4)", /*fortran=*/true), "fortran_order is True");
  refused(test::NpyDict(">f4", "(2, 4)"), "big-endian");
  refused(test::NpyDict("<c8", "(2, 4)"), "dtype '<c8' is not supported");
  refused(test::NpyDict("|O", "(2, 4)"), "is not supported");
  refused("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", "structured");
  refused("{'descr': '<f4', 'shape': (2, 4), }", "lacks one of");
  refused("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), 'x': 1}", "unexpected key");
  refused("not a dict", "malformed .npy header");
  refused(test::NpyDict("<f4", "(2, 4)"), ".npy version 9.0 is not supported", 9);

  // A header length far past the end of the file (v2: 4 bytes of length).
  std::string huge = "\x93NUMPY\x02";
  huge += '\0';
  huge += "\xff\xff\xff\x7f";
  test::WriteBytes(path, huge + "{}");
  EXPECT_REFUSED(OpenStatus(path), "header length 2147483647 does not fit the file");
  test::WriteBytes(path, "\x93NUMP");
  EXPECT_REFUSED(OpenStatus(path), "not a .npy file");
}

TEST(VectorFileTest, HostileIdxAndCsvAreRefused) {
  test::TempDir dir;
  const std::string idx = dir.Sub("h-ubyte");
  const std::vector<uint8_t> pixels(4 * 28 * 28, 1);
  test::WriteBytes(idx, test::IdxBytes(0xffffffffu, 28, 28, pixels));
  EXPECT_REFUSED(OpenStatus(idx), "more than the");
  test::WriteBytes(idx, test::IdxBytes(4, 65536, 65536, pixels));
  EXPECT_REFUSED(OpenStatus(idx), "implausible IDX image size 65536x65536");
  test::WriteBytes(idx, test::IdxBytes(4, 28, 28, pixels).replace(3, 1, "\x01"));
  EXPECT_REFUSED(OpenStatus(idx), "not an IDX image file (magic 0x00000801");
  {  // gzip'd: a count far beyond what the compressed bytes can expand to
    const std::string bytes = test::IdxBytes(0xffffffffu, 28, 28, pixels);
    gzFile gz = gzopen(dir.Sub("h.gz").c_str(), "wb");
    ASSERT_NE(gz, nullptr);
    gzwrite(gz, bytes.data(), unsigned(bytes.size()));
    gzclose(gz);
    EXPECT_REFUSED(OpenStatus(dir.Sub("h.gz")), "more than the");
  }

  const std::string csv = dir.Sub("h.csv");
  std::string wide;
  for (int i = 0; i < 70000; ++i) wide += "1,";
  test::WriteBytes(csv, wide + "1\n");
  EXPECT_REFUSED(OpenStatus(csv), "has 70001 values; the most a vector may have is 65536");
  test::WriteBytes(csv, "# only a comment\n\nx,y\n");
  EXPECT_REFUSED(OpenStatus(csv), "no data rows");
  ReaderOptions o;
  o.id_column = true;
  test::WriteBytes(csv, "1\n2\n");
  EXPECT_REFUSED(OpenStatus(csv, VectorFormat::kCsv, o), "no values after the id");
  EXPECT_TRUE(OpenStatus(dir.Sub("missing.csv")).IsIOError());
}

TEST(VectorFileTest, ReadIdsFromTextNpyAndIvecs) {
  test::TempDir dir;
  std::vector<uint64_t> ids;
  uint32_t per_row = 0;
  test::WriteBytes(dir.Sub("ids.txt"), "# ids\n5\n  7 \n\n18446744073709551615\r\n");
  ASSERT_TRUE(tools::ReadIds(dir.Sub("ids.txt"), &ids, &per_row).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{5, 7, std::numeric_limits<uint64_t>::max()}));
  EXPECT_EQ(per_row, 1u);
  test::WriteBytes(dir.Sub("bad.txt"), "5\n7\nseven\n");
  EXPECT_REFUSED(tools::ReadIds(dir.Sub("bad.txt"), &ids, &per_row), "line 3: 'seven'");
  test::WriteBytes(dir.Sub("neg.txt"), "-1\n");
  EXPECT_REFUSED(tools::ReadIds(dir.Sub("neg.txt"), &ids, &per_row), "is not an id");

  const std::vector<int64_t> i64 = {3, 1, 4, 1000000000000};
  test::WriteBytes(dir.Sub("ids.npy"),
                   test::NpyBytes(test::NpyDict("<i8", "(4,)"), test::AsBytes(i64)));
  ASSERT_TRUE(tools::ReadIds(dir.Sub("ids.npy"), &ids, &per_row).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{3, 1, 4, 1000000000000}));
  const std::vector<uint32_t> u32 = {9, 8};
  test::WriteBytes(dir.Sub("col.npy"),
                   test::NpyBytes(test::NpyDict("<u4", "(2, 1)"), test::AsBytes(u32)));
  ASSERT_TRUE(tools::ReadIds(dir.Sub("col.npy"), &ids, &per_row).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{9, 8}));
  const std::vector<int32_t> neg = {1, -2};
  test::WriteBytes(dir.Sub("neg.npy"),
                   test::NpyBytes(test::NpyDict("<i4", "(2,)"), test::AsBytes(neg)));
  EXPECT_REFUSED(tools::ReadIds(dir.Sub("neg.npy"), &ids, &per_row), "id 1 is negative");
  test::WriteBytes(dir.Sub("f.npy"),
                   test::NpyBytes(test::NpyDict("<f4", "(2,)"), test::AsBytes(Values(1, 2))));
  EXPECT_REFUSED(tools::ReadIds(dir.Sub("f.npy"), &ids, &per_row), "ids must be integers");
  test::WriteBytes(dir.Sub("big.npy"),
                   test::NpyBytes(test::NpyDict("<i8", "(4611686018427387904,)"), ""));
  EXPECT_REFUSED(tools::ReadIds(dir.Sub("big.npy"), &ids, &per_row), "does not fit the file");

  test::WriteTexmex(dir.Sub("gt.ivecs"), 2, std::vector<int32_t>{10, 11, 20, 21, 30, 31});
  ASSERT_TRUE(tools::ReadIds(dir.Sub("gt.ivecs"), &ids, &per_row).ok());
  EXPECT_EQ(ids, (std::vector<uint64_t>{10, 11, 20, 21, 30, 31}));
  EXPECT_EQ(per_row, 2u);
}

TEST(VectorFileTest, DatasetLoadersStillReadSift5k) {
  tools::Matrix m;
  const std::string path = test::DataDir() + "/sift5k/sift5k_base.fvecs";
  ASSERT_TRUE(tools::ReadFvecs(path, &m).ok());
  EXPECT_EQ(m.n, 5000u);
  EXPECT_EQ(m.d, 128u);
  size_t n = 0, d = 0;
  EXPECT_EQ(m.data, test::ReadFvecs(path, &n, &d));
  ASSERT_TRUE(tools::ReadFvecs(path, &m, 10).ok());
  EXPECT_EQ(m.n, 10u);
  EXPECT_EQ(m.data.size(), 1280u);
  EXPECT_TRUE(tools::ReadIdxImages(path, &m).IsInvalidArgument());
}

}  // namespace
}  // namespace quiver
