// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Small helpers shared by the commands: option parsing of enums, opening a
// DB with a one-line error, printing a Status.

#ifndef QUIVER_TOOLS_CLI_UTIL_H_
#define QUIVER_TOOLS_CLI_UTIL_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quiver/db.h"
#include "tools/commands.h"

namespace quiver::tools {

inline const std::map<std::string, Metric>& MetricNames() {
  static const std::map<std::string, Metric> m = {
      {"l2", Metric::kL2}, {"ip", Metric::kInnerProduct}, {"cosine", Metric::kCosine}};
  return m;
}

inline const std::map<std::string, Device>& DeviceNames() {
  static const std::map<std::string, Device> m = {
      {"auto", Device::kAuto}, {"cpu", Device::kCpu}, {"gpu", Device::kGpu}};
  return m;
}

// Prints "quiver <command>: <status>" to stderr and returns kExitError.
int Fail(const std::string& command, const Status& s);

// Opens an existing DB at `path` with its stored dimension and metric, its
// GPU work on `devices` (Options::devices; empty: every visible GPU).
Status OpenExisting(const std::string& path, bool read_only, std::unique_ptr<DB>* db,
                    const std::vector<int>& devices = {});

}  // namespace quiver::tools

#endif  // QUIVER_TOOLS_CLI_UTIL_H_
