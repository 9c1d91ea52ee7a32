// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Runs the quiver tool in-process, as `quiver ARGS...` would.

#ifndef QUIVER_TESTS_TOOL_RUNNER_H_
#define QUIVER_TESTS_TOOL_RUNNER_H_

#include <string>
#include <vector>

#include "tools/commands.h"

namespace quiver::test {

inline int RunTool(std::vector<std::string> args) {
  args.insert(args.begin(), "quiver");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return tools::RunQuiverTool(static_cast<int>(argv.size()), argv.data());
}

}  // namespace quiver::test

#endif  // QUIVER_TESTS_TOOL_RUNNER_H_
