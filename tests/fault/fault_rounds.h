// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Rounds of work under injected faults, shared by the fault-injection tests.
// A round opens the DB through a FaultFileSystem (faults armed before the
// open, or once it is open), works on it (random puts, batches, deletes, a
// quarter synced, and Gets checked live), closes it (which may fail), then
// reopens it without faults and checks it against an AckedModel: every
// acknowledged write present with its value and found by exact search,
// nothing acknowledged as deleted back.

#ifndef QUIVER_TESTS_FAULT_FAULT_ROUNDS_H_
#define QUIVER_TESTS_FAULT_FAULT_ROUNDS_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fault/acked_model.h"
#include "fault/fault_file_system.h"
#include "quiver/db.h"
#include "quiver/write_batch.h"
#include "storage/test_file_system.h"

namespace quiver::test {

inline constexpr uint64_t kIds = 400;  // ids written: 0..kIds-1

inline Options SmallOptions(bool maintenance) {
  Options o;
  o.dim = kCrashDim;
  o.ivf_train_threshold = 200;
  o.target_partition_size = 32;
  o.kmeans_iterations = 5;
  o.device = Device::kCpu;
  o.background_maintenance = maintenance;
  return o;
}

// " name (size)" for each file in `dir`.
inline std::string Listing(const std::string& dir) {
  std::string out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code fec;
    out += " " + e.path().filename().string() + " (" + std::to_string(e.file_size(fec)) + ")";
  }
  return out;
}

// What the rounds of a test did, summed.
struct Totals {
  uint64_t rounds = 0;
  uint64_t rounds_faulted = 0;  // rounds in which some fault fired
  uint64_t acked_writes = 0;
  uint64_t failed_writes = 0;
  uint64_t verified = 0;        // acknowledged id states checked after a reopen
  uint64_t open_failures = 0;   // opens that failed under faults
  uint64_t close_failures = 0;  // closes that failed under faults
  // Writes acknowledged after an earlier write of the same session failed.
  uint64_t acked_after_failure = 0;
  FaultFileSystem::Counters faults;

  std::string ToString() const {
    return "rounds " + std::to_string(rounds) + " (" + std::to_string(rounds_faulted) +
           " with faults), writes acknowledged " + std::to_string(acked_writes) +
           " / failed " + std::to_string(failed_writes) + ", acknowledged states verified " +
           std::to_string(verified) + ", opens failed " + std::to_string(open_failures) +
           ", closes failed " + std::to_string(close_failures) +
           ", writes acknowledged after a failed one " + std::to_string(acked_after_failure) +
           "\n  faults " + faults.InjectedToString();
  }
};

// One round: which faults fire when.
struct Round {
  std::vector<Fault> at_open;  // armed before the DB opens
  std::vector<Fault> live;     // armed once it is open
  bool maintenance = true;
  int ops = 60;                // operations under the faults
  // With faults at open: operations of a session without faults before it,
  // left in the WAL for the open to recover (replay and flush to a table).
  int prewrite_ops = 60;
  bool clear_before_close = false;  // otherwise Close runs under the faults
};

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override { fs_ = std::make_shared<FaultFileSystem>(); }
  void TearDown() override { storage::SetFileSystemForTesting(nullptr); }

  // Random puts, batches, deletes (a quarter of them synced), Gets and
  // searches on `db`, recording what was acknowledged. Every failed write
  // must be an IOError (what the injected faults become).
  void Work(DB* db, int ops, std::mt19937_64* rng, Totals* totals) {
    bool failed = false;
    for (int i = 0; i < ops; ++i) {
      const uint64_t id = (*rng)() % kIds;
      WriteOptions wo;
      wo.sync = (*rng)() % 4 == 0;
      AckedModel::Write w;
      Status s;
      const int what = static_cast<int>((*rng)() % 20);
      if (what < 10) {
        const uint64_t v = model_.NextVersion();
        s = db->Put(wo, id, AckedModel::ValueOf(id, v), AckedModel::PayloadOf(id, v));
        w = {{id, v}};
      } else if (what < 14) {
        WriteBatch batch;
        const int n = 2 + static_cast<int>((*rng)() % 7);
        for (int j = 0; j < n; ++j) {
          const uint64_t bid = (*rng)() % kIds;
          if ((*rng)() % 4 == 0) {
            batch.Delete(bid);
            w.push_back({bid, AckedModel::kAbsent});
          } else {
            const uint64_t v = model_.NextVersion();
            batch.Put(bid, AckedModel::ValueOf(bid, v), AckedModel::PayloadOf(bid, v));
            w.push_back({bid, v});
          }
        }
        s = db->Write(wo, &batch);
      } else if (what < 18) {
        s = db->Delete(wo, id);
        if (s.IsNotFound()) {
          // The serving index does not hold it: nothing was written, and
          // nothing acknowledged says it exists.
          EXPECT_EQ(model_.Acked(id), AckedModel::kAbsent) << "Delete of id " << id;
          continue;
        }
        w = {{id, AckedModel::kAbsent}};
      } else if (what == 18) {
        EXPECT_TRUE(model_.CheckLiveGet(db, id));
        continue;
      } else {
        EXPECT_TRUE(model_.CheckLiveSearch(db, id));
        continue;
      }
      if (s.ok()) {
        model_.Acknowledged(w);
        ++totals->acked_writes;
        if (failed) ++totals->acked_after_failure;
      } else {
        EXPECT_TRUE(s.IsIOError()) << s.ToString();
        model_.Failed(w);
        ++totals->failed_writes;
        failed = true;
      }
    }
  }

  // Runs `round` on the DB at `path` (the first round creates it), then
  // reopens it without faults and verifies it. Returns what the file system
  // saw and injected in the session under faults.
  FaultFileSystem::Counters RunRound(const std::string& path, const Round& round,
                                     std::mt19937_64* rng, Totals* totals,
                                     const std::string& context) {
    SCOPED_TRACE(context);
    std::unique_ptr<DB> db;
    Status s;
    if (!round.at_open.empty() && round.prewrite_ops > 0) {
      storage::SetFileSystemForTesting(nullptr);
      s = DB::Open(SmallOptions(round.maintenance), path, &db);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return {};
      Work(db.get(), round.prewrite_ops, rng, totals);
      EXPECT_TRUE(db->Close().ok());
      db.reset();
    }

    fs_->Clear();
    fs_->ResetCounters();
    for (const Fault& f : round.at_open) fs_->Arm(f);
    storage::SetFileSystemForTesting(fs_);
    s = DB::Open(SmallOptions(round.maintenance), path, &db);
    if (!s.ok()) {
      EXPECT_FALSE(round.at_open.empty()) << "open without faults failed: " << s.ToString();
      EXPECT_EQ(db, nullptr);
      ++totals->open_failures;
    } else {
      EXPECT_TRUE(model_.CheckLiveIndex(db.get())) << "after the open";
      for (const Fault& f : round.live) fs_->Arm(f);
      Work(db.get(), round.ops, rng, totals);
      if (round.clear_before_close) fs_->Clear();
      if (!db->Close().ok()) ++totals->close_failures;
      db.reset();
    }
    fs_->Clear();
    storage::SetFileSystemForTesting(nullptr);
    const FaultFileSystem::Counters counters = fs_->counters();
    totals->faults += counters;
    if (counters.TotalInjected() > 0) ++totals->rounds_faulted;
    if (std::getenv("QUIVER_FAULT_VERBOSE") != nullptr) {
      std::printf("%s: open %s; %s\n", context.c_str(), s.ok() ? "ok" : s.ToString().c_str(),
                  counters.ToString().c_str());
    }

    s = DB::Open(SmallOptions(round.maintenance), path, &db);
    EXPECT_TRUE(s.ok()) << "reopen without faults: " << s.ToString();
    if (!s.ok()) return counters;
    totals->verified += model_.Verify(db.get(), context);
    EXPECT_TRUE(db->Close().ok());
    ++totals->rounds;
    return counters;
  }

  // Creates the DB at `path` holding an index trained on ~250 vectors, in
  // table files (the reopen that verified it flushed them).
  void Seed(const std::string& path, std::mt19937_64* rng) {
    Totals ignored;
    Round r;
    r.ops = 500;
    RunRound(path, r, rng, &ignored, "seeding");
  }

  std::shared_ptr<FaultFileSystem> fs_;
  AckedModel model_;
};

// A fault of `type` on `op` of `kinds`, at once, once.
constexpr Fault F(FaultOp op, FaultType type, uint32_t kinds) {
  return Fault{.op = op, .type = type, .kinds = kinds};
}
using enum FaultOp;
using enum FaultType;

}  // namespace quiver::test

#endif  // QUIVER_TESTS_FAULT_FAULT_ROUNDS_H_
