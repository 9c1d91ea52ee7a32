// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The crash test: a writer process (crash_writer) puts, upserts, deletes
// and writes atomic batches while its DB re-clusters often (low triggers,
// and in every other cycle a thread calling Reindex every 20 ms); we
// SIGKILL it at a random moment (sometimes before it has even opened the
// DB), reopen, and check against the model of what it acknowledged:
// every acknowledged write is there with its latest value, nothing
// deleted is back, the write in flight was applied entirely or not at all,
// each live vector is its own nearest neighbour through the IVF index, the
// DB holds nothing else, and DB::Check (what `quiver check` runs) passes.
//
// Cycles: QUIVER_CRASH_CYCLES (default 50; `scripts/reliability.sh --long`
// runs 1,000). Writes with sync = false are promised to survive the death
// of the process (they are in the OS page cache); sync = true also a power
// loss, which a process kill cannot show: cycles alternate the two.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "crash/writer_process.h"
#include "quiver/db.h"
#include "test_util.h"

namespace quiver {
namespace {

TEST(Kill9Test, AcknowledgedWritesSurvive) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  const int cycles = static_cast<int>(std::max<uint64_t>(1, test::EnvU64("QUIVER_CRASH_CYCLES", 50)));
  test::CrashModel model;
  std::mt19937 rng(42);
  size_t acked = 0, in_doubt = 0, in_doubt_applied = 0, early_kills = 0;
  uint64_t max_epoch = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    const std::string context = "cycle " + std::to_string(cycle);
    test::WriterArgs args;
    args.seed = static_cast<uint64_t>(cycle) + 1;
    args.sync = cycle % 2 == 1;
    args.reindex_ms = cycle % 4 < 2 ? 20 : 0;
    args.ids = 3000;
    // One cycle in ten kills the writer before its first acknowledgement
    // (while it opens and recovers the DB).
    const size_t kill_after = rng() % 10 == 0 ? 0 : 1 + rng() % 400;
    test::WriterProcess writer(path, args, &model);
    ASSERT_TRUE(writer.started());
    while (writer.acks() < kill_after && writer.ReadAck()) {
    }
    writer.Kill();
    ASSERT_TRUE(writer.errors().empty()) << context << ": " << writer.errors().front();
    if (kill_after == 0) ++early_kills;
    acked += writer.acks();

    Options o;
    o.device = Device::kCpu;
    o.create_if_missing = cycle == 0;
    o.dim = test::kCrashDim;
    o.background_maintenance = false;
    std::unique_ptr<DB> db;
    Status s = DB::Open(o, path, &db);
    if (cycle == 0 && writer.acks() == 0 && s.IsNotFound()) continue;  // killed before creating
    ASSERT_TRUE(s.ok()) << context << ": " << s.ToString();
    const bool doubtful = !writer.in_doubt().empty();
    const test::CrashModel before = model;
    test::VerifyAcknowledged(db.get(), writer.in_doubt(), &model, SearchOptions{.k = 1}, context);
    if (doubtful) {
      ++in_doubt;
      in_doubt_applied += model != before;
    }
    CheckReport report;
    s = db->Check(&report);
    ASSERT_TRUE(s.ok()) << context << ": " << s.ToString();
    max_epoch = std::max(max_epoch, db->GetStats().epoch);
    if (HasFatalFailure()) return;
  }
  uint64_t live = 0;
  for (const auto& [id, stamp] : model) live += stamp.has_value();
  std::printf("crash test: %d kill cycles (%zu before the first write), %zu acknowledged writes "
              "verified, %zu writes in flight at the kill (%zu applied whole, %zu not at all), "
              "%llu live vectors at the end, epoch %llu reached\n",
              cycles, early_kills, acked, in_doubt, in_doubt_applied, in_doubt - in_doubt_applied,
              (unsigned long long)live, (unsigned long long)max_epoch);
}

}  // namespace
}  // namespace quiver
