// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver check DB [--json]`

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "tools/cli_util.h"

namespace quiver::tools {

void AddCheckCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Verify the DB: the checksum of every block of its files; that the metadata, every\n"
      "centroid record and every vector record are readable and fit the DB; that every\n"
      "stored vector is in exactly one partition of the index and the index holds nothing\n"
      "else. Read-only: works while an application holds the DB. Exits 1 with a report of\n"
      "what is damaged (up to 100 problems) when anything is wrong.\n"
      "Example: quiver check /tmp/sift");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_flag("--json", args->json, "Machine-readable report");
  cmd->callback([run, args] {
    *run = [args] {
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, true, &db);
      if (!s.ok()) return Fail("check", s);  // Open verifies every record it loads
      CheckReport r;
      s = db->Check(&r);
      if (!s.ok() && !s.IsCorruption()) return Fail("check", s);
      if (args->json) {
        nlohmann::json j = {{"ok", s.ok()},
                            {"vectors", r.vectors},
                            {"centroid_records", r.index_records},
                            {"partitions", r.partitions},
                            {"problems_found", r.problems_found},
                            {"problems", r.problems}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s: %llu vectors, %llu centroid records, %u partitions checked\n",
                    s.ok() ? "ok" : "DAMAGED", (unsigned long long)r.vectors,
                    (unsigned long long)r.index_records, r.partitions);
        for (const auto& p : r.problems) std::printf("  %s\n", p.c_str());
        if (r.problems_found > r.problems.size()) {
          std::printf("  ... and %llu more\n",
                      (unsigned long long)(r.problems_found - r.problems.size()));
        }
      }
      return s.ok() ? kExitOk : kExitError;
    };
  });
}

}  // namespace quiver::tools
