// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "tools/commands.h"

#include <CLI/CLI.hpp>

namespace quiver::tools {

int RunQuiverTool(int argc, char** argv) {
  CLI::App app{
      "quiver: an embedded vector database with a continuously re-clustered IVF index.\n"
      "Run `quiver demo` for a tour on Fashion-MNIST, or `quiver <command> --help`."};
  app.require_subcommand(1);
  CommandRunner run;
  AddDemoCommand(app, &run);
  AddCreateCommand(app, &run);
  AddImportCommand(app, &run);
  AddSearchCommand(app, &run);
  AddGetCommand(app, &run);
  AddDeleteCommand(app, &run);
  AddStatsCommand(app, &run);
  AddReindexCommand(app, &run);
  AddCheckCommand(app, &run);
  AddBenchCommand(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return run ? run() : kExitUsage;
}

}  // namespace quiver::tools
