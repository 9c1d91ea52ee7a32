#!/usr/bin/env bash
# One command from a fresh Debian machine to a passing test suite: installs
# the packages, builds everything but the benchmarks (with CUDA when nvcc is
# found; the GPU tests skip when no GPU is visible), runs the CPU suite under
# AddressSanitizer + UndefinedBehaviorSanitizer and the concurrency,
# maintenance and crash tests under ThreadSanitizer (separate CPU-only
# builds), and finally the whole suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=OFF
cmake --build build/test

cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_CUDA=OFF \
  -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined
cmake --build build/asan --target quiver_tests
build/asan/tests/quiver_tests

cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_CUDA=OFF \
  -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
cmake --build build/tsan --target quiver_tests
TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" QUIVER_CRASH_CYCLES=15 \
  build/tsan/tests/quiver_tests \
  --gtest_filter='Concurrency*:Maintenance*:DBTest.*:Kill9*:OnlineReindex*:ExclusiveAccess*:Stress*'

ctest --test-dir build/test --output-on-failure
