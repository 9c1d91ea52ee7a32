// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The deterministic vector the crash tests write: a function of the id and
// of a stamp unique to each write, so that every version of an id differs.

#ifndef QUIVER_TESTS_CRASH_CRASH_VECTORS_H_
#define QUIVER_TESTS_CRASH_CRASH_VECTORS_H_

#include <cstdint>
#include <vector>

namespace quiver::test {

inline constexpr uint32_t kCrashDim = 8;

inline std::vector<float> CrashVector(uint64_t id, uint64_t stamp = 0) {
  std::vector<float> v(kCrashDim);
  uint64_t x = id * 0x9E3779B97F4A7C15ULL + stamp * 0xD1B54A32D192ED03ULL + 1;
  for (auto& c : v) {
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    c = static_cast<float>((x >> 40) % 100000) / 1000.0f;
  }
  return v;
}

}  // namespace quiver::test

#endif  // QUIVER_TESTS_CRASH_CRASH_VECTORS_H_
