// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver reindex DB [--partitions K] [--iterations N] [--device auto|cpu|gpu]`

#include <CLI/CLI.hpp>

#include <cstdio>

#include "tools/cli_util.h"
#include "tools/progress.h"

namespace quiver::tools {

void AddReindexCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path, device = "auto";
    uint32_t partitions = 0;
    int iterations = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "reindex",
      "Re-cluster the whole DB now (k-means on the GPU when present) and commit the new\n"
      "index atomically. Needs the DB not to be open for writing elsewhere.\n"
      "Example: quiver reindex /tmp/sift --partitions 1024 --iterations 20");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_option("--partitions", args->partitions, "Partitions (0: from the partition size)")
      ->capture_default_str();
  cmd->add_option("--iterations", args->iterations, "Lloyd iterations (0: the DB's default)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  cmd->add_option("--device", args->device, "auto, cpu or gpu")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  cmd->callback([run, args] {
    *run = [args] {
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, false, &db);
      if (!s.ok()) return Fail("reindex", s);
      s = ReindexWithProgress(db.get(), ReindexOptions{.partitions = args->partitions,
                                                       .iterations = args->iterations,
                                                       .device = DeviceNames().at(args->device)});
      if (!s.ok()) return Fail("reindex", s);
      std::unique_ptr<ProgressBar> bar;
      std::string phase;
      s = db->Reindex(ReindexOptions{.partitions = args->partitions,
                                     .iterations = args->iterations,
                                     .device = DeviceNames().at(args->device)},
                      [&](const ReindexProgress& p) {
                        if (p.phase != phase) {
                          if (bar) bar->Finish();
                          phase = p.phase;
                          bar = std::make_unique<ProgressBar>(
                              phase, p.total, phase == "kmeans" ? "iter" : "vec");
                        }
                        bar->Update(p.done);
                        return true;
                      });
      if (bar) bar->Finish();
      if (!s.ok()) return Fail("reindex", s);
      Stats st = db->GetStats();
      std::printf("epoch %llu: %u partitions over %llu vectors (imbalance %.2f)\n",
                  (unsigned long long)st.epoch, st.num_partitions,
                  (unsigned long long)st.num_vectors, st.imbalance);
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
