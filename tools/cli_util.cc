// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "tools/cli_util.h"

#include <cstdio>

namespace quiver::tools {

int Fail(const std::string& command, const Status& s) {
  std::fprintf(stderr, "quiver %s: %s\n", command.c_str(), s.ToString().c_str());
  return kExitError;
}

Status OpenExisting(const std::string& path, bool read_only, std::unique_ptr<DB>* db,
                    const std::vector<int>& devices) {
  Options o;
  o.create_if_missing = false;
  o.accept_stored_metric = true;
  o.read_only = read_only;
  o.devices = devices;
  return DB::Open(o, path, db);
}

}  // namespace quiver::tools
