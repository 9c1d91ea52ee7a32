// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver stats DB [--json]`

#include <CLI/CLI.hpp>

#include <cstdio>

#include "tools/cli_util.h"

namespace quiver::tools {

void AddStatsCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "stats", "Print the DB's size and index shape.\nExample: quiver stats /tmp/sift --json");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_flag("--json", args->json, "Machine-readable output");
  cmd->callback([run, args] {
    *run = [args] {
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, true, &db);
      if (!s.ok()) return Fail("stats", s);
      Stats st = db->GetStats();
      const std::string metric(MetricName(st.metric));
      if (args->json) {
        std::printf(
            "{\"dim\": %u, \"metric\": \"%s\", \"vectors\": %llu, \"epoch\": %llu, "
            "\"partitions\": %u, \"min_partition\": %llu, \"max_partition\": %llu, "
            "\"mean_partition\": %.2f, \"imbalance\": %.3f, \"tombstones\": %llu}\n",
            st.dim, metric.c_str(), (unsigned long long)st.num_vectors,
            (unsigned long long)st.epoch, st.num_partitions,
            (unsigned long long)st.min_partition_size, (unsigned long long)st.max_partition_size,
            st.mean_partition_size, st.imbalance, (unsigned long long)st.tombstones);
      } else {
        std::printf("dimension   %u\nmetric      %s\nvectors     %llu\nepoch       %llu%s\n"
                    "partitions  %u (sizes %llu..%llu, mean %.1f, imbalance %.2f)\n",
                    st.dim, metric.c_str(), (unsigned long long)st.num_vectors,
                    (unsigned long long)st.epoch, st.epoch == 0 ? " (not trained: exact search)" : "",
                    st.num_partitions, (unsigned long long)st.min_partition_size,
                    (unsigned long long)st.max_partition_size, st.mean_partition_size,
                    st.imbalance);
      }
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
