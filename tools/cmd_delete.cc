// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver delete DB ID...`

#include <CLI/CLI.hpp>

#include <cstdio>

#include "tools/cli_util.h"

namespace quiver::tools {

void AddDeleteCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path;
    std::vector<uint64_t> ids;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "delete", "Delete vectors by id (each write is synced).\nExample: quiver delete /tmp/sift 4 8");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_option("ID", args->ids, "Vector ids")->required();
  cmd->callback([run, args] {
    *run = [args] {
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, false, &db);
      if (!s.ok()) return Fail("delete", s);
      for (uint64_t id : args->ids) {
        s = db->Delete(WriteOptions{.sync = true}, id);
        if (!s.ok()) return Fail("delete", s);
      }
      std::printf("deleted %zu vectors\n", args->ids.size());
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
