// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Key encoding: ids and epochs as 8-byte big-endian strings, so that
// RocksDB's bytewise order is numeric order.

#ifndef QUIVER_STORAGE_KEYS_H_
#define QUIVER_STORAGE_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace quiver::storage {

inline std::string EncodeU64Key(uint64_t v) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return key;
}

// nullopt when `key` is not 8 bytes long.
inline std::optional<uint64_t> DecodeU64Key(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_KEYS_H_
