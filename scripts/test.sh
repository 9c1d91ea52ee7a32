#!/usr/bin/env bash
# One command from a fresh Debian machine to a passing test suite: installs
# the packages, builds everything but the benchmarks (with CUDA when nvcc is
# found; the GPU tests skip when no GPU is visible) and runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=OFF
cmake --build build/test
ctest --test-dir build/test --output-on-failure
