// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "tools/commands.h"

int main(int argc, char** argv) { return quiver::tools::RunQuiverTool(argc, argv); }
