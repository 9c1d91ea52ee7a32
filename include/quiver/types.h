// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Small value types shared by the public API.

#ifndef QUIVER_TYPES_H_
#define QUIVER_TYPES_H_

#include <cstdint>
#include <string_view>

#include "quiver/export.h"

namespace quiver {

// The distance a DB or a k-means run uses. The numeric values are persisted
// in a DB's metadata: never renumber them.
//
// Every "distance" quiver reports is smaller-is-closer:
//   kL2           squared Euclidean distance  ||x - y||^2
//   kInnerProduct negated inner product       -<x, y>
//   kCosine       cosine distance             1 - <x, y> / (||x|| ||y||)
enum class Metric : uint8_t {
  kL2 = 0,
  kInnerProduct = 1,
  kCosine = 2,
};

// Where compute runs. kAuto uses a CUDA GPU when the library was built with
// CUDA and one is visible, and all CPU cores otherwise.
enum class Device : uint8_t {
  kAuto = 0,
  kCpu = 1,
  kGpu = 2,
};

// One search result.
struct Neighbor {
  uint64_t id = 0;
  float distance = 0.0f;  // smaller is closer; see Metric
};

// "l2", "ip", "cosine".
QUIVER_EXPORT std::string_view MetricName(Metric metric);
// "auto", "cpu", "gpu".
QUIVER_EXPORT std::string_view DeviceName(Device device);

}  // namespace quiver

#endif  // QUIVER_TYPES_H_
