// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver import DB FILE [--format fvecs|idx] [--start-id N] [--batch N]`

#include <CLI/CLI.hpp>

#include <cstdio>

#include "quiver/write_batch.h"
#include "tools/cli_util.h"
#include "tools/datasets.h"
#include "tools/progress.h"

namespace quiver::tools {

void AddImportCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path, file, format = "fvecs";
    uint64_t start_id = 0;
    size_t batch = 1000;
    bool sync = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "import",
      "Insert the vectors of a file; vector i gets id START + i (an existing id is replaced,\n"
      "so a rerun after an interruption is safe).\n"
      "Example: quiver import /tmp/sift sift_base.fvecs --format fvecs");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_option("FILE", args->file, "Vectors to insert")->required()->check(CLI::ExistingFile);
  cmd->add_option("--format", args->format, "fvecs, or idx (MNIST images, .gz allowed)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fvecs", "idx"}));
  cmd->add_option("--start-id", args->start_id, "Id of the first vector")->capture_default_str();
  cmd->add_option("--batch", args->batch, "Vectors per atomic write")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--sync", args->sync, "fsync every batch");
  cmd->callback([run, args] {
    *run = [args] {
      Matrix m;
      Status s = args->format == "fvecs" ? ReadFvecs(args->file, &m) : ReadIdxImages(args->file, &m);
      if (!s.ok()) return Fail("import", s);
      std::unique_ptr<DB> db;
      s = OpenExisting(args->path, false, &db);
      if (!s.ok()) return Fail("import", s);
      ProgressBar bar("import", m.n, "vec");
      WriteBatch batch;
      for (size_t i = 0; i < m.n; ++i) {
        batch.Put(args->start_id + i, std::span<const float>(m.row(i), m.d));
        if (batch.Count() == args->batch || i + 1 == m.n) {
          s = db->Write(WriteOptions{.sync = args->sync}, &batch);
          if (!s.ok()) {
            return Fail("import", Status::InvalidArgument(
                                      "vectors " + std::to_string(i + 1 - batch.Count()) + ".." +
                                      std::to_string(i) + " of " + args->file +
                                      " not written: " + s.ToString()));
          }
          batch.Clear();
          bar.Update(i + 1);
        }
      }
      bar.Finish();
      std::printf("imported %zu vectors (ids %llu..%llu)\n", m.n,
                  (unsigned long long)args->start_id,
                  (unsigned long long)(args->start_id + m.n - (m.n ? 1 : 0)));
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
