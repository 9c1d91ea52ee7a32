// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver get DB ID`

#include <CLI/CLI.hpp>

#include <cstdio>

#include "tools/cli_util.h"

namespace quiver::tools {

void AddGetCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path;
    uint64_t id = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "get", "Print the vector stored under an id.\nExample: quiver get /tmp/sift 42");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_option("ID", args->id, "Vector id")->required();
  cmd->callback([run, args] {
    *run = [args] {
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, true, &db);
      if (!s.ok()) return Fail("get", s);
      std::vector<float> v;
      std::string payload;
      s = db->Get(ReadOptions(), args->id, &v, &payload);
      if (!s.ok()) return Fail("get", s);
      for (size_t i = 0; i < v.size(); ++i) std::printf("%s%.9g", i ? "," : "", v[i]);
      std::printf("\n");
      if (!payload.empty()) std::printf("payload: %zu bytes\n", payload.size());
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
