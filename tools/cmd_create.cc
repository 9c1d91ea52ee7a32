// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver create DB --dim D --metric l2|ip|cosine`

#include <CLI/CLI.hpp>

#include <cstdio>

#include "tools/cli_util.h"

namespace quiver::tools {

void AddCreateCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path;
    uint32_t dim = 0;
    std::string metric = "l2";
    uint32_t partition_size = 256;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "create", "Create an empty DB.\nExample: quiver create /tmp/sift --dim 128 --metric l2");
  cmd->add_option("DB", args->path, "DB directory (must not hold a DB)")->required();
  cmd->add_option("--dim", args->dim, "Vector dimension")->required()->check(
      CLI::Range(1, 1 << 16));
  cmd->add_option("--metric", args->metric, "l2, ip or cosine")
      ->capture_default_str()
      ->check(CLI::IsMember({"l2", "ip", "cosine"}));
  cmd->add_option("--partition-size", args->partition_size, "Target vectors per IVF partition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  cmd->callback([run, args] {
    *run = [args] {
      Options o;
      o.dim = args->dim;
      o.metric = MetricNames().at(args->metric);
      o.target_partition_size = args->partition_size;
      o.error_if_exists = true;
      std::unique_ptr<DB> db;
      Status s = DB::Open(o, args->path, &db);
      if (!s.ok()) return Fail("create", s);
      std::printf("created %s: dimension %u, metric %s\n", args->path.c_str(), args->dim,
                  args->metric.c_str());
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
