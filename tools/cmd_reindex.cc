// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver reindex DB [--partitions K] [--iterations N] [--device auto|cpu|gpu] [--gpus 0,1]
//                    [--wait S]`
//
// Offline when no other process holds the DB: opens it and re-clusters.
// Online when an application holds it open for writing: attaches as a
// RocksDB secondary instance, runs the k-means on that snapshot without
// blocking the application, and hands the centroids over to it; the
// application's DB assigns every vector (the writes made meanwhile
// included) and commits the new epoch atomically (DB::Reindex on a
// secondary; the protocol is in storage/handover.h).

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>

#include "tools/cli_util.h"
#include "tools/progress.h"

namespace quiver::tools {
namespace {

// A directory for the secondary instance's own files, removed afterwards.
class SecondaryDir {
 public:
  SecondaryDir()
      : path_((std::filesystem::temp_directory_path() /
               ("quiver-secondary-" + std::to_string(::getpid())))
                  .string()) {}
  ~SecondaryDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void PrintEpoch(DB* db, const char* how) {
  Stats st = db->GetStats();
  std::printf("epoch %llu committed %s: %u partitions over %llu vectors (imbalance %.2f)\n",
              (unsigned long long)st.epoch, how, st.num_partitions,
              (unsigned long long)st.num_vectors, st.imbalance);
}

}  // namespace

void AddReindexCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path, device = "auto";
    std::vector<int> gpus;
    uint32_t partitions = 0;
    int iterations = 0;
    double wait = 600;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "reindex",
      "Re-cluster the whole DB now (k-means on the GPU when present) and commit the new\n"
      "index atomically; searches go on meanwhile.\n"
      "When another process holds the DB open for writing, the re-clustering runs online:\n"
      "this tool reads a snapshot through a secondary instance, runs the k-means without\n"
      "blocking that process, and hands the centroids over to it; its DB assigns every\n"
      "vector, including those written meanwhile, and commits the new epoch (within a\n"
      "second when its background maintenance is on, else at its next open).\n"
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
  cmd->add_option("--gpus", args->gpus,
                  "GPUs the k-means runs on, as CUDA ids (e.g. 0,1: the points are split\n"
                  "between them and the partial sums combined over NCCL);\n"
                  "default: every visible GPU")
      ->delimiter(',')
      ->check(CLI::Range(0, 1023));
  cmd->add_option("--wait", args->wait,
                  "Online: seconds to wait for the holding process to commit the new epoch")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e7));
  cmd->callback([run, args] {
    *run = [args] {
      ReindexOptions options{.partitions = args->partitions,
                             .iterations = args->iterations,
                             .device = DeviceNames().at(args->device),
                             .handover_timeout_seconds = args->wait};
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, false, &db, args->gpus);
      if (s.ok()) {
        s = ReindexWithProgress(db.get(), options);
        if (!s.ok()) return Fail("reindex", s);
        PrintEpoch(db.get(), "offline");
        return kExitOk;
      }
      if (!s.IsBusy()) return Fail("reindex", s);

      std::fprintf(stderr,
                   "quiver reindex: %s is open for writing in another process; re-clustering "
                   "online through a secondary instance\n",
                   args->path.c_str());
      SecondaryDir secondary;
      Options o;
      o.accept_stored_metric = true;
      o.create_if_missing = false;
      o.devices = args->gpus;
      s = DB::OpenAsSecondary(o, args->path, secondary.path(), &db);
      if (!s.ok()) return Fail("reindex", s);
      s = ReindexWithProgress(db.get(), options);
      if (!s.ok()) return Fail("reindex", s);
      PrintEpoch(db.get(), "online by the process holding the DB");
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
