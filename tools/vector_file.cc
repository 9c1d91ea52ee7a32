// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The readers behind tools/vector_file.h. The formats whose rows all have
// one byte size (TEXMEX, npy) share a reader that freads a batch of rows at
// once; hdf5 reads one hyperslab per batch; csv reads line by line; idx
// reads through zlib. Each checks its header against the file size before
// it sizes anything by it, and no buffer is ever larger than one batch.

#include "tools/vector_file.h"

#include <hdf5.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace quiver::tools {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the binary readers take little-endian file data as is");

constexpr uint64_t kMaxDim = 65536;
// The longest text line kept; 65,536 values of ~30 characters fit. A longer
// line is cut there (and reported), so a file without newlines cannot make
// one line as large as the file.
constexpr size_t kMaxLineBytes = size_t{16} << 20;
// A .npy header is a short Python dict literal; NumPy writes a few hundred
// bytes. Anything above this is not a header.
constexpr uint64_t kMaxNpyHeaderBytes = uint64_t{1} << 20;
// deflate expands at most about 1032:1: a gzip'd IDX file whose header
// claims more pixels than that is lying about its count.
constexpr uint64_t kMaxGzipRatio = 1032;
// The most one hdf5 batch holds (rows x dim floats).
constexpr uint64_t kMaxHdf5BatchBytes = uint64_t{64} << 20;

std::string Str(uint64_t v) { return std::to_string(v); }

void ClearBatch(RowBatch* batch) {
  batch->rows = 0;
  batch->values.clear();
  batch->row_numbers.clear();
  batch->ids.clear();
  batch->lines.clear();
  batch->bad.clear();
}

using FilePtr = std::unique_ptr<FILE, int (*)(FILE*)>;

Status OpenFile(const std::string& path, FilePtr* file, uint64_t* size) {
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec) return Status::IOError(path + ": " + ec.message());
  errno = 0;
  FilePtr f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return Status::IOError(path + ": cannot open (" + std::strerror(errno) + ")");
  *size = bytes;
  *file = std::move(f);
  return Status::OK();
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string_view Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// ---------------------------------------------------------------------------
// Element types of the binary formats, converted to float.

enum class Element { kF16, kF32, kF64, kI8, kU8, kI16, kU16, kI32, kU32, kI64, kU64 };

size_t ElementBytes(Element e) {
  switch (e) {
    case Element::kI8:
    case Element::kU8: return 1;
    case Element::kF16:
    case Element::kI16:
    case Element::kU16: return 2;
    case Element::kF32:
    case Element::kI32:
    case Element::kU32: return 4;
    case Element::kF64:
    case Element::kI64:
    case Element::kU64: return 8;
  }
  return 1;
}

bool IsSignedInteger(Element e) {
  return e == Element::kI8 || e == Element::kI16 || e == Element::kI32 || e == Element::kI64;
}
bool IsInteger(Element e) {
  return IsSignedInteger(e) || e == Element::kU8 || e == Element::kU16 || e == Element::kU32 ||
         e == Element::kU64;
}

// IEEE 754 binary16 -> binary32, exactly (every half is a float).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float v = float(mantissa) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

template <typename T>
void ConvertAs(const unsigned char* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

// Converts n little-endian elements at `src` (any alignment) to floats.
void ConvertRow(Element e, const unsigned char* src, size_t n, float* dst) {
  switch (e) {
    case Element::kF32: std::memcpy(dst, src, n * 4); return;
    case Element::kF64: ConvertAs<double>(src, n, dst); return;
    case Element::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = HalfToFloat(h);
      }
      return;
    case Element::kI8: ConvertAs<int8_t>(src, n, dst); return;
    case Element::kU8: ConvertAs<uint8_t>(src, n, dst); return;
    case Element::kI16: ConvertAs<int16_t>(src, n, dst); return;
    case Element::kU16: ConvertAs<uint16_t>(src, n, dst); return;
    case Element::kI32: ConvertAs<int32_t>(src, n, dst); return;
    case Element::kU32: ConvertAs<uint32_t>(src, n, dst); return;
    case Element::kI64: ConvertAs<int64_t>(src, n, dst); return;
    case Element::kU64: ConvertAs<uint64_t>(src, n, dst); return;
  }
}

// Reads one little-endian integer element as an id; false when negative.
bool ElementAsId(Element e, const unsigned char* src, uint64_t* id) {
  int64_t s = 0;
  switch (e) {
    case Element::kI8: { int8_t v; std::memcpy(&v, src, 1); s = v; break; }
    case Element::kI16: { int16_t v; std::memcpy(&v, src, 2); s = v; break; }
    case Element::kI32: { int32_t v; std::memcpy(&v, src, 4); s = v; break; }
    case Element::kI64: { std::memcpy(&s, src, 8); break; }
    case Element::kU8: *id = src[0]; return true;
    case Element::kU16: { uint16_t v; std::memcpy(&v, src, 2); *id = v; return true; }
    case Element::kU32: { uint32_t v; std::memcpy(&v, src, 4); *id = v; return true; }
    case Element::kU64: std::memcpy(id, src, 8); return true;
    default: return false;
  }
  if (s < 0) return false;
  *id = static_cast<uint64_t>(s);
  return true;
}

// ---------------------------------------------------------------------------
// The part every reader shares: its identity and progress counters.

class ReaderBase : public VectorFileReader {
 public:
  VectorFormat format() const override { return format_; }
  uint32_t dim() const override { return dim_; }
  std::optional<uint64_t> count() const override { return count_; }
  uint64_t bytes_read() const override { return bytes_read_; }
  uint64_t bytes_total() const override { return bytes_total_; }

 protected:
  ReaderBase(std::string path, VectorFormat format) : path_(std::move(path)), format_(format) {}

  std::string path_;
  VectorFormat format_;
  uint32_t dim_ = 0;
  std::optional<uint64_t> count_;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_total_ = 0;
};

// ---------------------------------------------------------------------------
// Rows of one byte size, back to back from a fixed offset: TEXMEX (each row
// begins with its int32 dimension) and npy.

class FixedRowReader final : public ReaderBase {
 public:
  struct Layout {
    Element element = Element::kF32;
    uint32_t dim = 0;
    uint64_t count = 0;
    uint64_t data_offset = 0;
    bool dim_prefix = false;  // TEXMEX: each row starts with an int32 == dim
  };

  FixedRowReader(std::string path, VectorFormat format, FilePtr file, uint64_t file_size,
                 const Layout& layout)
      : ReaderBase(std::move(path), format), file_(std::move(file)), layout_(layout) {
    dim_ = layout.dim;
    count_ = layout.count;
    bytes_total_ = file_size;
    bytes_read_ = layout.data_offset;
    row_bytes_ = (layout.dim_prefix ? 4 : 0) + layout.dim * ElementBytes(layout.element);
  }

  Status Next(size_t max_rows, RowBatch* batch) override {
    ClearBatch(batch);
    const uint64_t m = std::min<uint64_t>(max_rows, layout_.count - next_row_);
    if (m == 0) return Status::OK();
    if (next_row_ == 0 && std::fseek(file_.get(), long(layout_.data_offset), SEEK_SET) != 0) {
      return Status::IOError(path_ + ": cannot seek to the data (" + std::strerror(errno) + ")");
    }
    raw_.resize(m * row_bytes_);
    if (std::fread(raw_.data(), 1, raw_.size(), file_.get()) != raw_.size()) {
      return Status::IOError(path_ + ": reading " + Where(next_row_) + " failed: " +
                             (std::feof(file_.get()) ? std::string("the file ended early (did it "
                                                                   "shrink while being read?)")
                                                     : std::string(std::strerror(errno))));
    }
    const size_t d = layout_.dim;
    batch->values.resize(m * d);
    size_t good = 0;
    for (uint64_t i = 0; i < m; ++i) {
      const uint64_t row = next_row_ + i;
      const unsigned char* p = raw_.data() + i * row_bytes_;
      if (layout_.dim_prefix) {
        int32_t row_dim;
        std::memcpy(&row_dim, p, 4);
        if (row_dim != int32_t(d)) {
          batch->bad.push_back({row, Where(row),
                                "its dimension field says " + std::to_string(row_dim) +
                                    ", expected " + Str(d)});
          continue;
        }
        p += 4;
      }
      ConvertRow(layout_.element, p, d, batch->values.data() + good * d);
      batch->row_numbers.push_back(row);
      ++good;
    }
    batch->values.resize(good * d);
    batch->rows = good;
    next_row_ += m;
    bytes_read_ = layout_.data_offset + next_row_ * row_bytes_;
    return Status::OK();
  }

 private:
  std::string Where(uint64_t row) const {
    return "row " + Str(row) + " (byte offset " + Str(layout_.data_offset + row * row_bytes_) +
           ")";
  }

  FilePtr file_;
  Layout layout_;
  uint64_t row_bytes_ = 0;
  uint64_t next_row_ = 0;
  std::vector<unsigned char> raw_;
};

// TEXMEX header: the first row's int32 dimension, and a file size that is a
// whole number of rows.
Status ReadTexmexHeader(const std::string& path, VectorFormat format, FILE* f, uint64_t size,
                        Element element, uint32_t* dim, uint64_t* count) {
  const std::string name = VectorFormatName(format);
  int32_t d = 0;
  if (size < 4 || std::fread(&d, 4, 1, f) != 1) {
    return Status::InvalidArgument(path + ": too short for a " + name + " file (" + Str(size) +
                                   " bytes)");
  }
  if (d <= 0 || uint64_t(d) > kMaxDim) {
    return Status::InvalidArgument(path + ": not a " + name +
                                   " file: the first row's dimension field is " +
                                   std::to_string(d) + ", expected 1.." + Str(kMaxDim));
  }
  const uint64_t row_bytes = 4 + uint64_t(d) * ElementBytes(element);
  if (size % row_bytes != 0) {
    return Status::InvalidArgument(path + ": size " + Str(size) + " is not a whole number of " +
                                   Str(row_bytes) + "-byte rows of a " + std::to_string(d) +
                                   "-d " + name + " file (truncated, or not " + name + ")");
  }
  *dim = uint32_t(d);
  *count = size / row_bytes;
  return Status::OK();
}

Element TexmexElement(VectorFormat format) {
  return format == VectorFormat::kBvecs   ? Element::kU8
         : format == VectorFormat::kIvecs ? Element::kI32
                                          : Element::kF32;
}

Status OpenTexmex(const std::string& path, VectorFormat format,
                  std::unique_ptr<VectorFileReader>* reader) {
  FilePtr f(nullptr, &std::fclose);
  uint64_t size = 0;
  Status s = OpenFile(path, &f, &size);
  if (!s.ok()) return s;
  FixedRowReader::Layout layout;
  layout.element = TexmexElement(format);
  layout.dim_prefix = true;
  s = ReadTexmexHeader(path, format, f.get(), size, layout.element, &layout.dim, &layout.count);
  if (!s.ok()) return s;
  *reader = std::make_unique<FixedRowReader>(path, format, std::move(f), size, layout);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// npy: "\x93NUMPY", version, header length, then a Python dict literal such
// as {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }.

struct NpyHeader {
  std::string descr;
  Element element = Element::kF32;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
  uint64_t data_offset = 0;
};

// Parses the header dict. Errors are reasons without the file name.
class NpyDictParser {
 public:
  explicit NpyDictParser(std::string_view text) : s_(text) {}

  Status Parse(NpyHeader* h) {
    bool have_descr = false, have_order = false, have_shape = false;
    if (!Consume('{')) return Fail("does not start with '{'");
    while (!Consume('}')) {
      std::string key;
      if (!ParseString(&key)) return Fail("expected a quoted key");
      if (!Consume(':')) return Fail("expected ':' after '" + key + "'");
      if (key == "descr") {
        if (Peek() == '[') return Fail("a structured dtype is not supported; save a plain 2-D array");
        if (!ParseString(&h->descr)) return Fail("'descr' is not a string");
        have_descr = true;
      } else if (key == "fortran_order") {
        if (ConsumeWord("True")) {
          h->fortran_order = true;
        } else if (ConsumeWord("False")) {
          h->fortran_order = false;
        } else {
          return Fail("'fortran_order' is not True or False");
        }
        have_order = true;
      } else if (key == "shape") {
        Status s = ParseShape(&h->shape);
        if (!s.ok()) return s;
        have_shape = true;
      } else {
        return Fail("unexpected key '" + key + "'");
      }
      if (!Consume(',') && Peek() != '}') return Fail("expected ',' or '}' after '" + key + "'");
    }
    if (!have_descr || !have_order || !have_shape) {
      return Fail("lacks one of 'descr', 'fortran_order', 'shape'");
    }
    return Status::OK();
  }

 private:
  static Status Fail(const std::string& why) {
    return Status::InvalidArgument("malformed .npy header: " + why);
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  char Peek() {
    SkipSpace();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  bool ConsumeWord(std::string_view w) {
    SkipSpace();
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }
  bool ParseString(std::string* out) {
    const char q = Peek();
    if (q != '\'' && q != '"') return false;
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) return false;
    *out = std::string(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return true;
  }
  // "(n, d)", "(n,)", "()"; Python 2 files may write "10L".
  Status ParseShape(std::vector<uint64_t>* shape) {
    shape->clear();
    if (!Consume('(')) return Fail("'shape' is not a tuple");
    while (!Consume(')')) {
      if (Peek() == '-') return Fail("'shape' has a negative dimension");
      uint64_t v = 0;
      const char* begin = s_.data() + pos_;
      const auto [end, ec] = std::from_chars(begin, s_.data() + s_.size(), v);
      if (ec == std::errc::result_out_of_range) return Fail("'shape' has an out-of-range dimension");
      if (ec != std::errc() || end == begin) return Fail("'shape' holds a non-integer");
      pos_ += size_t(end - begin);
      if (pos_ < s_.size() && s_[pos_] == 'L') ++pos_;
      shape->push_back(v);
      if (shape->size() > 32) return Fail("'shape' has more than 32 dimensions");
      if (!Consume(',') && Peek() != ')') return Fail("expected ',' or ')' in 'shape'");
    }
    return Status::OK();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// "<f4" -> kF32, ...; big-endian and unknown types are InvalidArgument.
Status ParseNpyDescr(const std::string& descr, Element* e) {
  auto unsupported = [&] {
    return Status::InvalidArgument(
        "dtype '" + descr +
        "' is not supported (float16/32/64 or 8-64 bit integers, little-endian)");
  };
  if (descr.size() < 3) return unsupported();
  const char order = descr[0], kind = descr[1];
  const std::string bytes = descr.substr(2);
  if (order == '>' && bytes != "1") {
    return Status::InvalidArgument("dtype '" + descr +
                                   "' is big-endian; save it little-endian, e.g. "
                                   "a.astype('<" + descr.substr(1) + "')");
  }
  if (order != '<' && order != '|' && order != '=' && order != '>') return unsupported();
  if (kind == 'f') {
    if (bytes == "2") { *e = Element::kF16; return Status::OK(); }
    if (bytes == "4") { *e = Element::kF32; return Status::OK(); }
    if (bytes == "8") { *e = Element::kF64; return Status::OK(); }
  } else if (kind == 'i' || kind == 'u') {
    const bool s = kind == 'i';
    if (bytes == "1") { *e = s ? Element::kI8 : Element::kU8; return Status::OK(); }
    if (bytes == "2") { *e = s ? Element::kI16 : Element::kU16; return Status::OK(); }
    if (bytes == "4") { *e = s ? Element::kI32 : Element::kU32; return Status::OK(); }
    if (bytes == "8") { *e = s ? Element::kI64 : Element::kU64; return Status::OK(); }
  }
  return unsupported();
}

std::string ShapeText(const std::vector<uint64_t>& shape) {
  std::string t = "(";
  for (size_t i = 0; i < shape.size(); ++i) t += (i ? ", " : "") + Str(shape[i]);
  return t + (shape.size() == 1 ? ",)" : ")");
}

// Reads the magic, version and header dict; leaves `f` at the data.
Status ReadNpyHeader(const std::string& path, FILE* f, uint64_t file_size, NpyHeader* h) {
  unsigned char prefix[8];
  if (std::fread(prefix, 1, 8, f) != 8 || std::memcmp(prefix, "\x93NUMPY", 6) != 0) {
    return Status::InvalidArgument(path + ": not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = prefix[6], minor = prefix[7];
  uint64_t header_len = 0;
  size_t len_bytes = 0;
  if (major == 1) {
    uint16_t len = 0;
    len_bytes = 2;
    if (std::fread(&len, 2, 1, f) != 1) return Status::InvalidArgument(path + ": truncated .npy header");
    header_len = len;
  } else if (major == 2 || major == 3) {
    uint32_t len = 0;
    len_bytes = 4;
    if (std::fread(&len, 4, 1, f) != 1) return Status::InvalidArgument(path + ": truncated .npy header");
    header_len = len;
  } else {
    return Status::InvalidArgument(path + ": .npy version " + std::to_string(major) + "." +
                                   std::to_string(minor) + " is not supported (1.0, 2.0, 3.0)");
  }
  const uint64_t data_offset = 8 + len_bytes + header_len;
  if (header_len > kMaxNpyHeaderBytes || data_offset > file_size) {
    return Status::InvalidArgument(path + ": .npy header length " + Str(header_len) +
                                   " does not fit the file (" + Str(file_size) + " bytes)");
  }
  std::string text(header_len, '\0');
  if (std::fread(text.data(), 1, header_len, f) != header_len) {
    return Status::InvalidArgument(path + ": truncated .npy header");
  }
  Status s = NpyDictParser(text).Parse(h);
  if (s.ok()) s = ParseNpyDescr(h->descr, &h->element);
  if (!s.ok()) return Status::InvalidArgument(path + ": " + std::string(s.message()));
  h->data_offset = data_offset;
  return Status::OK();
}

// Opens an .npy file and reads its header; *f is left at the data.
Status OpenNpyFile(const std::string& path, FilePtr* f, uint64_t* size, NpyHeader* h) {
  Status s = OpenFile(path, f, size);
  if (!s.ok()) return s;
  return ReadNpyHeader(path, f->get(), *size, h);
}

Status OpenNpy(const std::string& path, std::unique_ptr<VectorFileReader>* reader) {
  FilePtr f(nullptr, &std::fclose);
  uint64_t size = 0;
  NpyHeader h;
  Status s = OpenNpyFile(path, &f, &size, &h);
  if (!s.ok()) return s;
  if (h.fortran_order) {
    return Status::InvalidArgument(path + ": fortran_order is True (column-major); save a C-order "
                                          "array, e.g. np.save(path, np.ascontiguousarray(a))");
  }
  if (h.shape.size() != 2) {
    return Status::InvalidArgument(path + ": shape " + ShapeText(h.shape) + " is " +
                                   Str(h.shape.size()) + "-D; expected 2-D (rows, dim)");
  }
  const uint64_t n = h.shape[0], d = h.shape[1];
  if (d == 0 || d > kMaxDim) {
    return Status::InvalidArgument(path + ": dimension " + Str(d) + " is outside 1.." +
                                   Str(kMaxDim));
  }
  const uint64_t row_bytes = d * ElementBytes(h.element);
  const uint64_t available = size - h.data_offset;
  if (n > available / row_bytes) {
    return Status::InvalidArgument(path + ": shape " + ShapeText(h.shape) + " of '" + h.descr +
                                   "' needs " + Str(n) + " rows of " + Str(row_bytes) +
                                   " bytes, but the file holds " + Str(available) +
                                   " bytes after its header (truncated?)");
  }
  FixedRowReader::Layout layout;
  layout.element = h.element;
  layout.dim = uint32_t(d);
  layout.count = n;
  layout.data_offset = h.data_offset;
  *reader = std::make_unique<FixedRowReader>(path, VectorFormat::kNpy, std::move(f), size, layout);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// hdf5, through the C API: one hyperslab of rows per batch, converted to
// float by the library.

// HDF5 prints every error stack to stderr unless told not to; with a
// thread-safe build the setting is per thread, so each entry point sets it.
void SilenceHdf5Errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

herr_t KeepInnermostError(unsigned n, const H5E_error2_t* err, void* text) {
  if (n == 0 && err->desc != nullptr) *static_cast<std::string*>(text) = err->desc;
  return 0;
}

// " (HDF5: <the most specific message>)", or "" when the stack is empty.
std::string Hdf5Error() {
  std::string text;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, KeepInnermostError, &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? std::string() : " (HDF5: " + text + ")";
}

// Owns an HDF5 identifier.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Handle& operator=(H5Handle&& o) noexcept {
    std::swap(id_, o.id_);
    std::swap(close_, o.close_);
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  ~H5Handle() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// The rank of dataset `name` under `file`, or -1 when it is not a dataset.
int DatasetRank(hid_t file, const char* name) {
  H5Handle ds(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!ds.valid()) return -1;
  H5Handle space(H5Dget_space(ds.get()), H5Sclose);
  return space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
}

// The dataset to read when none is named: the only 2-D dataset of the root
// group, or "train" (ann-benchmarks files) among several.
Status PickDataset(const std::string& path, hid_t file, std::string* name) {
  H5G_info_t info;
  if (H5Gget_info(file, &info) < 0) {
    return Status::InvalidArgument(path + ": cannot list the root group" + Hdf5Error());
  }
  std::vector<std::string> two_d;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                           H5P_DEFAULT);
    if (len <= 0) continue;
    std::vector<char> buf(size_t(len) + 1);
    if (H5Lget_name_by_idx(file, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf.data(), buf.size(),
                           H5P_DEFAULT) < 0) {
      continue;
    }
    if (DatasetRank(file, buf.data()) == 2) two_d.emplace_back(buf.data());
  }
  H5Eclear2(H5E_DEFAULT);  // the links that are groups failed to open as datasets
  if (two_d.size() == 1) {
    *name = two_d[0];
    return Status::OK();
  }
  if (std::find(two_d.begin(), two_d.end(), "train") != two_d.end()) {
    *name = "train";
    return Status::OK();
  }
  if (two_d.empty()) {
    return Status::InvalidArgument(path + ": no 2-D dataset in the root group; name one with "
                                          "--dataset (a path such as /group/vectors)");
  }
  std::string list;
  for (const auto& n : two_d) list += (list.empty() ? "" : ", ") + n;
  return Status::InvalidArgument(path + ": several 2-D datasets (" + list +
                                 "); pick one with --dataset");
}

class Hdf5Reader final : public ReaderBase {
 public:
  static Status Open(const std::string& path, const ReaderOptions& options,
                     std::unique_ptr<VectorFileReader>* reader) {
    SilenceHdf5Errors();
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return Status::IOError(path + ": " + ec.message());
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return Status::InvalidArgument(path + ": not an HDF5 file");
    }
    std::unique_ptr<Hdf5Reader> r(new Hdf5Reader(path));
    r->bytes_total_ = size;
    r->file_ = H5Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!r->file_.valid()) return Status::IOError(path + ": cannot open as HDF5" + Hdf5Error());
    r->name_ = options.dataset;
    if (r->name_.empty()) {
      Status s = PickDataset(path, r->file_.get(), &r->name_);
      if (!s.ok()) return s;
    }
    const std::string what = path + ": dataset '" + r->name_ + "'";
    r->dataset_ = H5Handle(H5Dopen2(r->file_.get(), r->name_.c_str(), H5P_DEFAULT), H5Dclose);
    if (!r->dataset_.valid()) {
      return Status::InvalidArgument(what + " cannot be opened" + Hdf5Error());
    }
    H5Handle space(H5Dget_space(r->dataset_.get()), H5Sclose);
    const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank != 2) {
      return Status::InvalidArgument(what + " is " + std::to_string(rank) +
                                     "-D; expected 2-D (rows, dim)");
    }
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    if (dims[1] == 0 || dims[1] > kMaxDim) {
      return Status::InvalidArgument(what + ": dimension " + Str(dims[1]) + " is outside 1.." +
                                     Str(kMaxDim));
    }
    H5Handle type(H5Dget_type(r->dataset_.get()), H5Tclose);
    const H5T_class_t cls = type.valid() ? H5Tget_class(type.get()) : H5T_NO_CLASS;
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
      return Status::InvalidArgument(what + " holds neither floats nor integers");
    }
    // The rows must be in the file: contiguous and compact layouts store
    // them as they are, chunked ones compressed at most as deflate can
    // (kMaxGzipRatio). A row count beyond that is a damaged header (HDF5
    // would hand out fill values for the missing rows, or worse), or data
    // that was never written.
    H5Handle plist(H5Dget_create_plist(r->dataset_.get()), H5Pclose);
    const H5D_layout_t layout = plist.valid() ? H5Pget_layout(plist.get()) : H5D_LAYOUT_ERROR;
    const uint64_t row_bytes = dims[1] * std::max<size_t>(1, H5Tget_size(type.get()));
    const uint64_t stored = H5Dget_storage_size(r->dataset_.get());
    const uint64_t ratio = layout == H5D_CHUNKED ? kMaxGzipRatio : 1;
    if (dims[0] > stored / row_bytes * ratio + stored % row_bytes * ratio / row_bytes) {
      return Status::InvalidArgument(what + ": the header says " + Str(dims[0]) + " rows of " +
                                     Str(row_bytes) + " bytes, more than the " + Str(stored) +
                                     " bytes it stores can hold (truncated?)");
    }
    r->dim_ = uint32_t(dims[1]);
    r->count_ = dims[0];
    *reader = std::move(r);
    return Status::OK();
  }

  Status Next(size_t max_rows, RowBatch* batch) override {
    SilenceHdf5Errors();
    ClearBatch(batch);
    // A chunked (compressed) dataset's row count is not bounded by the file
    // size: a batch holds at most kMaxHdf5BatchBytes of floats, whatever
    // max_rows asks, so that a hostile count cannot size an allocation.
    const uint64_t cap = std::max<uint64_t>(1, kMaxHdf5BatchBytes / (uint64_t{dim_} * sizeof(float)));
    const uint64_t m = std::min<uint64_t>({max_rows, *count_ - next_row_, cap});
    if (m == 0) return Status::OK();
    const hsize_t start[2] = {next_row_, 0}, counts[2] = {m, dim_};
    H5Handle file_space(H5Dget_space(dataset_.get()), H5Sclose);
    H5Handle memory_space(H5Screate_simple(2, counts, nullptr), H5Sclose);
    batch->values.resize(m * dim_);
    if (!file_space.valid() || !memory_space.valid() ||
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, counts, nullptr) < 0 ||
        H5Dread(dataset_.get(), H5T_NATIVE_FLOAT, memory_space.get(), file_space.get(),
                H5P_DEFAULT, batch->values.data()) < 0) {
      batch->values.clear();
      return Status::IOError(path_ + ": dataset '" + name_ + "': reading rows " + Str(next_row_) +
                             ".." + Str(next_row_ + m - 1) + " failed" + Hdf5Error());
    }
    for (uint64_t i = 0; i < m; ++i) batch->row_numbers.push_back(next_row_ + i);
    batch->rows = m;
    next_row_ += m;
    // Storage may be chunked or compressed: progress by the share of rows.
    bytes_read_ = *count_ ? uint64_t(double(bytes_total_) * double(next_row_) / double(*count_))
                          : bytes_total_;
    return Status::OK();
  }

 private:
  explicit Hdf5Reader(std::string path) : ReaderBase(std::move(path), VectorFormat::kHdf5) {}

  H5Handle file_;     // declared first: closed after the dataset
  H5Handle dataset_;
  std::string name_;
  uint64_t next_row_ = 0;
};

// ---------------------------------------------------------------------------
// Text: lines, csv rows, id lists.

// Reads a file line by line, keeping at most kMaxLineBytes of a line.
class LineReader {
 public:
  explicit LineReader(FilePtr file) : file_(std::move(file)) {}

  // False at the end of the file (or on a read error: see failed()). The
  // line has no '\n' or trailing '\r'; *cut says it was longer than
  // kMaxLineBytes and only its start is in *line.
  bool Next(std::string* line, bool* cut) {
    line->clear();
    *cut = false;
    bool any = false;
    int c;
    FILE* f = file_.get();
    while ((c = getc_unlocked(f)) != EOF) {
      any = true;
      ++bytes_;
      if (c == '\n') break;
      if (line->size() < kMaxLineBytes) {
        line->push_back(static_cast<char>(c));
      } else {
        *cut = true;
      }
    }
    if (!any) return false;
    ++line_number_;
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return true;
  }

  bool failed() const { return std::ferror(file_.get()) != 0; }
  uint64_t line_number() const { return line_number_; }  // of the last line returned, 1-based
  uint64_t bytes() const { return bytes_; }

 private:
  FilePtr file_;
  uint64_t line_number_ = 0;
  uint64_t bytes_ = 0;
};

enum class Separator { kComma, kTab, kSpaces };

Separator DetectSeparator(std::string_view line) {
  if (line.find(',') != std::string_view::npos) return Separator::kComma;
  if (line.find('\t') != std::string_view::npos) return Separator::kTab;
  return Separator::kSpaces;
}

// Splits a trimmed, non-empty line. Commas and tabs separate exactly one
// field each (so an empty field is seen, and reported); spaces separate runs.
void SplitFields(std::string_view line, Separator sep, std::vector<std::string_view>* fields) {
  fields->clear();
  if (sep == Separator::kSpaces) {
    size_t i = 0;
    while (i < line.size()) {
      const size_t b = line.find_first_not_of(" \t", i);
      if (b == std::string_view::npos) break;
      size_t e = line.find_first_of(" \t", b);
      if (e == std::string_view::npos) e = line.size();
      fields->push_back(line.substr(b, e - b));
      i = e;
    }
  } else {
    const char c = sep == Separator::kComma ? ',' : '\t';
    size_t b = 0;
    while (true) {
      const size_t e = line.find(c, b);
      fields->push_back(Trim(line.substr(b, e == std::string_view::npos ? line.npos : e - b)));
      if (e == std::string_view::npos) break;
      b = e + 1;
    }
  }
  for (auto& f : *fields) {
    if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = Trim(f.substr(1, f.size() - 2));
  }
}

// Parses a whole field as a float ("nan" and "inf" included: the caller
// rejects non-finite values). Returns "" or why not.
std::string ParseFloatField(std::string_view field, float* v) {
  std::string_view s = field;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return "is empty";
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  if (ec == std::errc::result_out_of_range) return "'" + std::string(field) + "' is out of float range";
  if (ec != std::errc() || end != s.data() + s.size()) {
    return "'" + std::string(field.substr(0, 40)) + "' is not a number";
  }
  return {};
}

bool ParseIdField(std::string_view field, uint64_t* id) {
  std::string_view s = field;
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *id);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

bool IsSkippedLine(std::string_view trimmed) { return trimmed.empty() || trimmed[0] == '#'; }

class CsvReader final : public ReaderBase {
 public:
  static Status Open(const std::string& path, const ReaderOptions& options,
                     std::unique_ptr<VectorFileReader>* reader) {
    FilePtr f(nullptr, &std::fclose);
    uint64_t size = 0;
    Status s = OpenFile(path, &f, &size);
    if (!s.ok()) return s;
    std::unique_ptr<CsvReader> r(new CsvReader(path, std::move(f), options.id_column));
    r->bytes_total_ = size;
    s = r->ReadUpToFirstRow();
    if (!s.ok()) return s;
    *reader = std::move(r);
    return Status::OK();
  }

  Status Next(size_t max_rows, RowBatch* batch) override {
    ClearBatch(batch);
    size_t handled = 0;
    if (has_pending_ && max_rows > 0) {
      has_pending_ = false;
      ParseRow(pending_, pending_line_, pending_cut_, batch);
      ++handled;
    }
    std::string line;
    bool cut = false;
    while (handled < max_rows && lines_.Next(&line, &cut)) {
      if (IsSkippedLine(Trim(line))) continue;
      ParseRow(line, lines_.line_number(), cut, batch);
      ++handled;
    }
    bytes_read_ = lines_.bytes();
    if (lines_.failed()) {
      return Status::IOError(path_ + ": read failed after line " + Str(lines_.line_number()));
    }
    return Status::OK();
  }

 private:
  CsvReader(std::string path, FilePtr file, bool id_column)
      : ReaderBase(std::move(path), VectorFormat::kCsv),
        lines_(std::move(file)),
        id_column_(id_column) {}

  // Skips comments, empty lines and a header; the first data row fixes the
  // separator and the field count, and is kept for the first Next().
  Status ReadUpToFirstRow() {
    bool first = true;
    while (lines_.Next(&pending_, &pending_cut_)) {
      const std::string_view line = Trim(pending_);
      if (IsSkippedLine(line)) continue;
      const uint64_t n = lines_.line_number();
      if (pending_cut_) {
        return Status::InvalidArgument(path_ + ": line " + Str(n) + " is longer than " +
                                       Str(kMaxLineBytes >> 20) + " MiB");
      }
      separator_ = DetectSeparator(line);
      SplitFields(line, separator_, &fields_);
      if (first) {
        first = false;
        float unused;
        const bool numeric = std::all_of(fields_.begin(), fields_.end(), [&](std::string_view f) {
          return ParseFloatField(f, &unused).empty();
        });
        if (!numeric) continue;  // a header
      }
      const size_t values = fields_.size() - (id_column_ ? 1 : 0);
      if (values == 0) {
        return Status::InvalidArgument(path_ + ": line " + Str(n) + " has no values after the id");
      }
      if (values > kMaxDim) {
        return Status::InvalidArgument(path_ + ": line " + Str(n) + " has " + Str(values) +
                                       " values; the most a vector may have is " + Str(kMaxDim));
      }
      fields_per_row_ = fields_.size();
      dim_ = uint32_t(values);
      pending_line_ = n;
      has_pending_ = true;
      bytes_read_ = lines_.bytes();
      return Status::OK();
    }
    if (lines_.failed()) return Status::IOError(path_ + ": read failed");
    return Status::InvalidArgument(path_ + ": no data rows");
  }

  void ParseRow(std::string_view raw, uint64_t line, bool cut, RowBatch* batch) {
    const uint64_t row = next_row_++;
    const std::string where = "line " + Str(line);
    if (cut) {
      batch->bad.push_back({row, where, "is longer than " + Str(kMaxLineBytes >> 20) + " MiB"});
      return;
    }
    SplitFields(Trim(raw), separator_, &fields_);
    const size_t first_value = id_column_ ? 1 : 0;
    if (fields_.size() != fields_per_row_) {
      const size_t got = fields_.size() >= first_value ? fields_.size() - first_value : 0;
      batch->bad.push_back(
          {row, where, "has " + Str(got) + " values, expected " + Str(dim_)});
      return;
    }
    uint64_t id = 0;
    if (id_column_ && !ParseIdField(fields_[0], &id)) {
      batch->bad.push_back({row, where,
                            "its id '" + std::string(fields_[0].substr(0, 40)) +
                                "' is not a non-negative integer"});
      return;
    }
    const size_t at = batch->values.size();
    batch->values.resize(at + dim_);
    for (size_t j = 0; j < dim_; ++j) {
      const std::string why = ParseFloatField(fields_[first_value + j], &batch->values[at + j]);
      if (!why.empty()) {
        batch->values.resize(at);
        batch->bad.push_back({row, where, "value " + Str(j + 1) + " " + why});
        return;
      }
    }
    if (id_column_) batch->ids.push_back(id);
    batch->row_numbers.push_back(row);
    batch->lines.push_back(line);
    ++batch->rows;
  }

  LineReader lines_;
  bool id_column_;
  Separator separator_ = Separator::kComma;
  size_t fields_per_row_ = 0;
  std::vector<std::string_view> fields_;
  std::string pending_;
  uint64_t pending_line_ = 0;
  bool pending_cut_ = false;
  bool has_pending_ = false;
  uint64_t next_row_ = 0;
};

// ---------------------------------------------------------------------------
// idx: MNIST images, big-endian magic 0x00000803, count, rows, cols, then
// uint8 pixels; gzip'd or not (zlib reads both).

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

class IdxReader final : public ReaderBase {
 public:
  static Status Open(const std::string& path, std::unique_ptr<VectorFileReader>* reader) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return Status::IOError(path + ": " + ec.message());
    std::unique_ptr<IdxReader> r(new IdxReader(path));
    r->file_.reset(gzopen(path.c_str(), "rb"));
    if (!r->file_) return Status::IOError(path + ": cannot open");
    gzbuffer(r->file_.get(), 1 << 17);
    unsigned char header[16];
    if (gzread(r->file_.get(), header, sizeof(header)) != int(sizeof(header))) {
      return Status::InvalidArgument(path + ": too short for an IDX header");
    }
    if (BigEndian32(header) != 0x00000803) {
      char magic[16];
      std::snprintf(magic, sizeof(magic), "0x%08x", BigEndian32(header));
      return Status::InvalidArgument(path + ": not an IDX image file (magic " + magic +
                                     ", expected 0x00000803)");
    }
    const uint64_t n = BigEndian32(header + 4), rows = BigEndian32(header + 8),
                   cols = BigEndian32(header + 12);
    if (rows == 0 || cols == 0 || rows * cols > kMaxDim) {
      return Status::InvalidArgument(path + ": implausible IDX image size " + Str(rows) + "x" +
                                     Str(cols));
    }
    const uint64_t pixels = n * rows * cols;  // < 2^48: no overflow
    if (gzdirect(r->file_.get()) ? 16 + pixels > size : pixels > size * kMaxGzipRatio) {
      return Status::InvalidArgument(path + ": the header says " + Str(n) + " images of " +
                                     Str(rows) + "x" + Str(cols) + ", more than the " +
                                     Str(size) + "-byte file can hold (truncated?)");
    }
    r->dim_ = uint32_t(rows * cols);
    r->count_ = n;
    r->bytes_total_ = size;
    r->bytes_read_ = uint64_t(gzoffset(r->file_.get()));
    *reader = std::move(r);
    return Status::OK();
  }

  Status Next(size_t max_rows, RowBatch* batch) override {
    ClearBatch(batch);
    const uint64_t m = std::min<uint64_t>(max_rows, *count_ - next_row_);
    if (m == 0) return Status::OK();
    pixels_.resize(m * dim_);
    // gzread takes an unsigned length: read in pieces well below 2^31.
    constexpr size_t kPiece = size_t{1} << 28;
    for (size_t done = 0; done < pixels_.size();) {
      const unsigned want = unsigned(std::min(kPiece, pixels_.size() - done));
      const int got = gzread(file_.get(), pixels_.data() + done, want);
      if (got != int(want)) {
        const uint64_t image = next_row_ + (done + std::max(got, 0)) / dim_;
        return Status::InvalidArgument(path_ + ": truncated at image " + Str(image) + " of " +
                                       Str(*count_));
      }
      done += want;
    }
    batch->values.resize(m * dim_);
    ConvertRow(Element::kU8, pixels_.data(), pixels_.size(), batch->values.data());
    for (uint64_t i = 0; i < m; ++i) batch->row_numbers.push_back(next_row_ + i);
    batch->rows = m;
    next_row_ += m;
    // zlib reads the gzip trailer only when asked for more: at the last
    // image the file is done all the same.
    bytes_read_ = next_row_ == *count_ ? bytes_total_ : uint64_t(gzoffset(file_.get()));
    return Status::OK();
  }

 private:
  explicit IdxReader(std::string path) : ReaderBase(std::move(path), VectorFormat::kIdx) {}

  struct GzClose {
    void operator()(gzFile f) const { gzclose(f); }
  };
  std::unique_ptr<gzFile_s, GzClose> file_;
  std::vector<unsigned char> pixels_;
  uint64_t next_row_ = 0;
};

// ---------------------------------------------------------------------------
// Id lists.

Status ReadIdsText(const std::string& path, std::vector<uint64_t>* ids) {
  FilePtr f(nullptr, &std::fclose);
  uint64_t size = 0;
  Status s = OpenFile(path, &f, &size);
  if (!s.ok()) return s;
  LineReader lines(std::move(f));
  std::string line;
  bool cut = false;
  while (lines.Next(&line, &cut)) {
    const std::string_view t = Trim(line);
    if (IsSkippedLine(t)) continue;
    uint64_t id = 0;
    if (cut || !ParseIdField(t, &id)) {
      return Status::InvalidArgument(path + ": line " + Str(lines.line_number()) + ": '" +
                                     std::string(t.substr(0, 40)) +
                                     "' is not an id (a non-negative integer)");
    }
    ids->push_back(id);
  }
  if (lines.failed()) return Status::IOError(path + ": read failed");
  return Status::OK();
}

Status ReadIdsNpy(const std::string& path, std::vector<uint64_t>* ids) {
  FilePtr f(nullptr, &std::fclose);
  uint64_t size = 0;
  NpyHeader h;
  Status s = OpenNpyFile(path, &f, &size, &h);
  if (!s.ok()) return s;
  const bool column = h.shape.size() == 2 && h.shape[1] == 1;
  if (h.shape.size() != 1 && !column) {
    return Status::InvalidArgument(path + ": shape " + ShapeText(h.shape) +
                                   "; ids need a 1-D array (n,)");
  }
  if (!IsInteger(h.element)) {
    return Status::InvalidArgument(path + ": dtype '" + h.descr + "'; ids must be integers");
  }
  const uint64_t n = h.shape[0], bytes = ElementBytes(h.element);
  if (n > (size - h.data_offset) / bytes) {
    return Status::InvalidArgument(path + ": shape " + ShapeText(h.shape) +
                                   " does not fit the file (truncated?)");
  }
  ids->reserve(n);  // bounded by the file size, checked above
  std::vector<unsigned char> chunk;
  constexpr uint64_t kChunk = 1 << 16;
  for (uint64_t done = 0; done < n;) {
    const uint64_t m = std::min(kChunk, n - done);
    chunk.resize(m * bytes);
    if (std::fread(chunk.data(), 1, chunk.size(), f.get()) != chunk.size()) {
      return Status::IOError(path + ": read failed at id " + Str(done));
    }
    for (uint64_t i = 0; i < m; ++i) {
      uint64_t id = 0;
      if (!ElementAsId(h.element, chunk.data() + i * bytes, &id)) {
        return Status::InvalidArgument(path + ": id " + Str(done + i) + " is negative");
      }
      ids->push_back(id);
    }
    done += m;
  }
  return Status::OK();
}

Status ReadIdsIvecs(const std::string& path, std::vector<uint64_t>* ids, uint32_t* per_row) {
  FilePtr f(nullptr, &std::fclose);
  uint64_t size = 0;
  Status s = OpenFile(path, &f, &size);
  if (!s.ok()) return s;
  uint32_t dim = 0;
  uint64_t rows = 0;
  s = ReadTexmexHeader(path, VectorFormat::kIvecs, f.get(), size, Element::kI32, &dim, &rows);
  if (!s.ok()) return s;
  std::rewind(f.get());
  ids->reserve(rows * dim);  // rows * (dim + 1) * 4 == the file size
  std::vector<int32_t> row(size_t(dim) + 1);
  for (uint64_t r = 0; r < rows; ++r) {
    if (std::fread(row.data(), 4, row.size(), f.get()) != row.size()) {
      return Status::IOError(path + ": read failed at row " + Str(r));
    }
    if (row[0] != int32_t(dim)) {
      return Status::InvalidArgument(path + ": row " + Str(r) + " has dimension field " +
                                     std::to_string(row[0]) + ", expected " + Str(dim));
    }
    for (uint32_t j = 1; j <= dim; ++j) {
      if (row[j] < 0) {
        return Status::InvalidArgument(path + ": row " + Str(r) + " holds a negative id " +
                                       std::to_string(row[j]));
      }
      ids->push_back(uint64_t(row[j]));
    }
  }
  *per_row = dim;
  return Status::OK();
}

struct FormatName {
  VectorFormat format;
  const char* name;
};
constexpr FormatName kFormatNames[] = {
    {VectorFormat::kAuto, "auto"}, {VectorFormat::kFvecs, "fvecs"},
    {VectorFormat::kBvecs, "bvecs"}, {VectorFormat::kIvecs, "ivecs"},
    {VectorFormat::kNpy, "npy"},   {VectorFormat::kHdf5, "hdf5"},
    {VectorFormat::kCsv, "csv"},   {VectorFormat::kIdx, "idx"},
};

}  // namespace

const char* VectorFormatName(VectorFormat f) {
  for (const auto& n : kFormatNames) {
    if (n.format == f) return n.name;
  }
  return "?";
}

Status ParseVectorFormat(const std::string& name, VectorFormat* f) {
  for (const auto& n : kFormatNames) {
    if (name == n.name) {
      *f = n.format;
      return Status::OK();
    }
  }
  return Status::InvalidArgument("unknown vector file format '" + name +
                                 "' (auto, fvecs, bvecs, ivecs, npy, hdf5, csv, idx)");
}

Status FormatFromExtension(const std::string& path, VectorFormat* f) {
  const std::string p = Lower(std::filesystem::path(path).filename().string());
  struct Suffix {
    const char* suffix;
    VectorFormat format;
  };
  static constexpr Suffix kSuffixes[] = {
      {".fvecs", VectorFormat::kFvecs}, {".bvecs", VectorFormat::kBvecs},
      {".ivecs", VectorFormat::kIvecs}, {".npy", VectorFormat::kNpy},
      {".h5", VectorFormat::kHdf5},     {".hdf5", VectorFormat::kHdf5},
      {".hdf", VectorFormat::kHdf5},    {".csv", VectorFormat::kCsv},
      {".tsv", VectorFormat::kCsv},     {".txt", VectorFormat::kCsv},
      {"-ubyte", VectorFormat::kIdx},   {".idx", VectorFormat::kIdx},
      {".gz", VectorFormat::kIdx},
  };
  for (const auto& s : kSuffixes) {
    if (EndsWith(p, s.suffix)) {
      *f = s.format;
      return Status::OK();
    }
  }
  return Status::InvalidArgument(path +
                                 ": the format is not clear from the extension; give it with "
                                 "--format (fvecs, bvecs, ivecs, npy, hdf5, csv, idx)");
}

Status VectorFileReader::Open(const std::string& path, VectorFormat format,
                              const ReaderOptions& options,
                              std::unique_ptr<VectorFileReader>* reader) {
  reader->reset();
  if (format == VectorFormat::kAuto) {
    Status s = FormatFromExtension(path, &format);
    if (!s.ok()) return s;
  }
  if (options.id_column && format != VectorFormat::kCsv) {
    return Status::InvalidArgument(path + ": an id column exists only in csv files");
  }
  switch (format) {
    case VectorFormat::kFvecs:
    case VectorFormat::kBvecs:
    case VectorFormat::kIvecs: return OpenTexmex(path, format, reader);
    case VectorFormat::kNpy: return OpenNpy(path, reader);
    case VectorFormat::kHdf5: return Hdf5Reader::Open(path, options, reader);
    case VectorFormat::kCsv: return CsvReader::Open(path, options, reader);
    case VectorFormat::kIdx: return IdxReader::Open(path, reader);
    case VectorFormat::kAuto: break;
  }
  return Status::InvalidArgument(path + ": no reader for this format");
}

Status ReadAllVectors(const std::string& path, VectorFormat format, const ReaderOptions& options,
                      std::vector<float>* values, size_t* rows, uint32_t* dim) {
  values->clear();
  *rows = 0;
  *dim = 0;
  std::unique_ptr<VectorFileReader> reader;
  Status s = VectorFileReader::Open(path, format, options, &reader);
  if (!s.ok()) return s;
  *dim = reader->dim();
  // Reserve only what the file size vouches for (every uncompressed value
  // takes at least a byte); compressed hdf5 / gzip counts just grow.
  if (const auto n = reader->count(); n && *n <= reader->bytes_total() / *dim) {
    values->reserve(*n * *dim);
  }
  RowBatch batch;
  while (true) {
    s = reader->Next(size_t{1} << 14, &batch);
    if (!s.ok()) return s;
    if (!batch.bad.empty()) {
      const BadRow& b = batch.bad.front();
      return Status::InvalidArgument(path + " " + b.where + ": " + b.reason);
    }
    if (batch.rows == 0) break;
    values->insert(values->end(), batch.values.begin(), batch.values.end());
    *rows += batch.rows;
  }
  return Status::OK();
}

Status ReadIds(const std::string& path, std::vector<uint64_t>* ids, uint32_t* per_row) {
  ids->clear();
  *per_row = 1;
  const std::string p = Lower(path);
  if (EndsWith(p, ".npy")) return ReadIdsNpy(path, ids);
  if (EndsWith(p, ".ivecs")) return ReadIdsIvecs(path, ids, per_row);
  return ReadIdsText(path, ids);
}

}  // namespace quiver::tools
