// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Writers of small vector files for the reader and import tests: npy
// (well-formed or with any header text), TEXMEX, text, IDX and HDF5
// (through the HDF5 C API), so that no test needs Python.

#ifndef QUIVER_TESTS_VECTOR_FILE_WRITERS_H_
#define QUIVER_TESTS_VECTOR_FILE_WRITERS_H_

#include <hdf5.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace quiver::test {

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

template <typename T>
std::string AsBytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A .npy file with `dict` as its header text, padded as NumPy pads it
// (to a multiple of 64 bytes, ending in '\n'), then `data`.
inline std::string NpyBytes(const std::string& dict, const std::string& data, int major = 1) {
  const size_t len_bytes = major == 1 ? 2 : 4;
  std::string header = dict;
  while ((10 + len_bytes - 2 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += char(major);
  out += char(0);
  const uint32_t len = uint32_t(header.size());
  out.append(reinterpret_cast<const char*>(&len), len_bytes);
  return out + header + data;
}

inline std::string NpyDict(const std::string& descr, const std::string& shape,
                           bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

template <typename T>
void WriteNpy(const std::string& path, const std::string& descr, size_t rows, size_t dim,
              const std::vector<T>& values, int major = 1) {
  WriteBytes(path, NpyBytes(NpyDict(descr, "(" + std::to_string(rows) + ", " +
                                               std::to_string(dim) + ")"),
                            AsBytes(values), major));
}

// TEXMEX: per row an int32 dimension, then the row's values as T.
template <typename T>
void WriteTexmex(const std::string& path, size_t dim, const std::vector<T>& values) {
  std::string out;
  const int32_t d = int32_t(dim);
  for (size_t i = 0; i + dim <= values.size(); i += dim) {
    out.append(reinterpret_cast<const char*>(&d), 4);
    out.append(reinterpret_cast<const char*>(values.data() + i), dim * sizeof(T));
  }
  WriteBytes(path, out);
}

// An uncompressed IDX image file: magic 0x803, then n, rows, cols big-endian.
inline std::string IdxBytes(uint32_t n, uint32_t rows, uint32_t cols,
                            const std::vector<uint8_t>& pixels) {
  std::string out;
  for (uint32_t v : {0x803u, n, rows, cols}) {
    for (int shift = 24; shift >= 0; shift -= 8) out += char((v >> shift) & 0xff);
  }
  return out + AsBytes(pixels);
}

// Creates (truncating) an HDF5 file and adds datasets to it.
class Hdf5Writer {
 public:
  explicit Hdf5Writer(const std::string& path)
      : file_(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) {}
  ~Hdf5Writer() {
    if (file_ >= 0) H5Fclose(file_);
  }
  Hdf5Writer(const Hdf5Writer&) = delete;
  Hdf5Writer& operator=(const Hdf5Writer&) = delete;

  bool ok() const { return file_ >= 0; }

  // A dataset of shape `dims` stored as `file_type`, from `data` in memory
  // as `memory_type`. True on success.
  bool Add(const std::string& name, const std::vector<hsize_t>& dims, hid_t file_type,
           hid_t memory_type, const void* data) {
    const hid_t space = H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    const hid_t ds =
        H5Dcreate2(file_, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const bool ok = ds >= 0 && H5Dwrite(ds, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return ok;
  }
  bool AddFloats(const std::string& name, size_t rows, size_t dim, const std::vector<float>& v) {
    return Add(name, {rows, dim}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, v.data());
  }
  bool AddInts(const std::string& name, size_t rows, size_t dim, const std::vector<int32_t>& v) {
    return Add(name, {rows, dim}, H5T_STD_I32LE, H5T_NATIVE_INT32, v.data());
  }
  bool AddGroup(const std::string& name) {
    const hid_t g = H5Gcreate2(file_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return false;
    H5Gclose(g);
    return true;
  }

 private:
  hid_t file_;
};

}  // namespace quiver::test

#endif  // QUIVER_TESTS_VECTOR_FILE_WRITERS_H_
