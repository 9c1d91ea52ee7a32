// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The randomized fault-injection test: many rounds of random faults
// (fault_rounds.h). QUIVER_FAULT_ITERATIONS sets the number of rounds
// (default 30, some seconds), QUIVER_FAULT_SEED the seed (default fixed);
// it prints the rounds run, the faults injected per kind and the
// acknowledged writes verified. QUIVER_FAULT_VERBOSE prints every round.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "fault/fault_rounds.h"
#include "test_util.h"

namespace quiver::test {
namespace {

// Rounds of random faults (kind, file kinds, countdown, repetitions, at open
// or live, with maintenance on or off) on a DB that lives across rounds, so
// that table files pile up and compactions run under faults too; a fresh
// DB every 50 rounds.
TEST_F(FaultInjectionTest, Randomized) {
  const uint64_t iterations = EnvU64("QUIVER_FAULT_ITERATIONS", 30);
  const uint64_t seed = EnvU64("QUIVER_FAULT_SEED", 20261125);
  std::mt19937_64 rng(seed);
  const auto start = std::chrono::steady_clock::now();
  Totals totals;
  std::unique_ptr<TempDir> dir;
  std::string path;
  for (uint64_t i = 0; i < iterations && !HasFailure(); ++i) {
    if (i % 50 == 0) {
      dir = std::make_unique<TempDir>();
      path = dir->Sub("db");
      model_ = AckedModel();
      Seed(path, &rng);
    }
    Round r;
    const bool at_open = rng() % 10 < 3;
    const int faults = rng() % 4 == 0 ? 2 : 1;
    for (int j = 0; j < faults; ++j) {
      Fault f;
      const uint64_t op = rng() % 20;
      f.op = op < 9 ? kAppend : op < 15 ? kSync : kRead;
      // Appends fail in any of the four ways, syncs with IOError or
      // NoSpace, reads with IOError.
      const uint64_t type = rng() % (f.op == kAppend ? 4 : f.op == kSync ? 2 : 1);
      f.type = static_cast<FaultType>(type);
      // Live, the WAL takes the writes; tables, the MANIFEST and other
      // files are written by flushes and compactions, at open and close.
      const uint64_t kinds = rng() % 10;
      if (at_open) {
        f.kinds = kinds < 2 ? kWalFile : kinds < 4 ? kTableFile : kinds < 6 ? kManifestFile
                  : kinds < 7 ? kOtherFile : kAnyFile;
      } else if (f.op == kRead) {
        f.kinds = kTableFile;  // Gets, compactions
      } else {
        f.kinds = kinds < 6 ? kWalFile : kinds < 7 ? kTableFile : kinds < 8 ? kManifestFile
                  : kAnyFile;
      }
      // Countdowns within the operations a round makes: about 40 WAL
      // appends and 10 syncs live, a few table reads by Gets; at open
      // about 20 appends, 5 syncs and 50 reads.
      f.after = at_open ? rng() % 24 : rng() % (f.op == kAppend ? 40 : f.op == kSync ? 10 : 4);
      const uint64_t times = rng() % 3;
      f.times = times == 0 ? 1 : times == 1 ? 3 : Fault::kForever;
      (at_open ? r.at_open : r.live).push_back(f);
    }
    r.maintenance = rng() % 2 == 0;
    r.ops = 30 + static_cast<int>(rng() % 60);
    r.prewrite_ops = 20 + static_cast<int>(rng() % 40);
    r.clear_before_close = rng() % 2 == 0;
    std::string context = "round " + std::to_string(i) + ":";
    for (const Fault& f : r.at_open) context += " at open " + f.ToString() + ";";
    for (const Fault& f : r.live) context += " live " + f.ToString() + ";";
    RunRound(path, r, &rng, &totals, context);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ fault    ] randomized, seed %llu, %.1f s: %s\n",
              static_cast<unsigned long long>(seed), secs, totals.ToString().c_str());
  EXPECT_EQ(totals.rounds, iterations);
  EXPECT_GT(totals.faults.TotalInjected(), 0u);
}

}  // namespace
}  // namespace quiver::test
