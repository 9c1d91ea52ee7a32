#!/usr/bin/env bash
# One command from a fresh Debian machine to the demo: installs the
# packages, builds the quiver tool (Release) and runs `quiver demo`
# (Fashion-MNIST: import, train, search, recall@10 and QPS).
# Extra arguments go to `quiver demo` (see `quiver demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DQUIVER_BUILD_TESTS=OFF -DQUIVER_BUILD_BENCH=OFF
cmake --build build/release --target quiver_cli
exec build/release/tools/quiver demo "$@"
