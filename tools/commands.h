// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The quiver command-line tool as a library: each subcommand registers
// itself on a CLI11 app and runs through the public API only. main() is
// RunQuiverTool(); tests call it (or a command) directly.

#ifndef QUIVER_TOOLS_COMMANDS_H_
#define QUIVER_TOOLS_COMMANDS_H_

#include <functional>
#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace quiver::tools {

// Exit codes of the tool.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the operation failed (message printed)
inline constexpr int kExitUsage = 2;  // bad command line

// A registered command sets `run` to what it does after parsing.
using CommandRunner = std::function<int()>;

void AddDemoCommand(CLI::App& app, CommandRunner* run);
void AddCreateCommand(CLI::App& app, CommandRunner* run);
void AddImportCommand(CLI::App& app, CommandRunner* run);
void AddSearchCommand(CLI::App& app, CommandRunner* run);
void AddGetCommand(CLI::App& app, CommandRunner* run);
void AddDeleteCommand(CLI::App& app, CommandRunner* run);
void AddStatsCommand(CLI::App& app, CommandRunner* run);
void AddReindexCommand(CLI::App& app, CommandRunner* run);
void AddCheckCommand(CLI::App& app, CommandRunner* run);
void AddBenchCommand(CLI::App& app, CommandRunner* run);

// Parses argv, runs the chosen command and returns the process exit code.
int RunQuiverTool(int argc, char** argv);

}  // namespace quiver::tools

#endif  // QUIVER_TOOLS_COMMANDS_H_
