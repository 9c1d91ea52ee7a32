#!/usr/bin/env bash
# The reliability harnesses (docs/reliability.md), built with AddressSanitizer
# + UndefinedBehaviorSanitizer: the kill -9 crash test, fault injection,
# file corruption, fuzzing, exclusive access and online reindex.
#
#   bash scripts/reliability.sh          the short modes (CI runs them in scripts/test.sh)
#   bash scripts/reliability.sh --long   1,000 crash cycles, 500 fault rounds,
#                                        100,000 fuzz inputs per target
#
# QUIVER_CRASH_CYCLES, QUIVER_FAULT_ITERATIONS, QUIVER_FUZZ_ITERATIONS and
# QUIVER_FUZZ_SEED set from the environment override the mode's values.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  --long)
    export QUIVER_CRASH_CYCLES="${QUIVER_CRASH_CYCLES:-1000}"
    export QUIVER_FAULT_ITERATIONS="${QUIVER_FAULT_ITERATIONS:-500}"
    export QUIVER_FUZZ_ITERATIONS="${QUIVER_FUZZ_ITERATIONS:-100000}"
    ;;
  "") ;;
  *) echo "usage: bash scripts/reliability.sh [--long]" >&2; exit 2 ;;
esac

bash scripts/install-deps.sh
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIVER_CUDA=OFF \
  -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined
cmake --build build/asan --target quiver_tests
build/asan/tests/quiver_tests \
  --gtest_filter='Kill9*:FaultInjection*:*FaultKind*:Corruption*:Fuzz*:ExclusiveAccess*:OnlineReindex*:Check*:Handover*'
