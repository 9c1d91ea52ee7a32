// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "quiver/types.h"

namespace quiver {

std::string_view MetricName(Metric metric) {
  switch (metric) {
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "ip";
    case Metric::kCosine: return "cosine";
  }
  return "unknown";
}

std::string_view DeviceName(Device device) {
  switch (device) {
    case Device::kAuto: return "auto";
    case Device::kCpu: return "cpu";
    case Device::kGpu: return "gpu";
  }
  return "unknown";
}

}  // namespace quiver
