// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A bounded-time stress test: writers (puts, upserts, deletes, batches),
// searchers (Search, SearchBatch, Get, GetStats), a thread re-clustering
// with Reindex and a secondary instance following the writer, all at once
// for QUIVER_STRESS_SECONDS (default 3). Each writer owns an id range and a
// model of it; at the end the DB must match every model and Check must pass.
// CI runs it under ThreadSanitizer too.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <thread>

#include "crash/crash_vectors.h"
#include "quiver/db.h"
#include "quiver/write_batch.h"
#include "test_util.h"

namespace quiver {
namespace {

TEST(StressTest, EveryOperationAtOnceForABoundedTime) {
  test::TempDir dir;
  Options o;
  o.dim = test::kCrashDim;
  o.device = Device::kCpu;
  o.ivf_train_threshold = 400;
  o.target_partition_size = 32;
  o.kmeans_iterations = 3;
  o.recluster_written_fraction = 0.3;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.Sub("db"), &db).ok());
  const double seconds = static_cast<double>(std::max<uint64_t>(1, test::EnvU64("QUIVER_STRESS_SECONDS", 3)));

  constexpr int kWriters = 3;
  constexpr uint64_t kIdsPerWriter = 1500;
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(seconds));
  const auto running = [&] { return std::chrono::steady_clock::now() < until; };
  std::atomic<int> errors{0};
  std::atomic<uint64_t> writes{0}, searches{0}, reindexes{0}, catch_ups{0};
  // Per writer: id -> stamp of its live vector (absent: not live).
  std::vector<std::map<uint64_t, uint64_t>> models(kWriters);

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w + 1);
      auto& model = models[w];
      uint64_t stamp = uint64_t(w) << 40;
      while (running()) {
        const uint64_t id = w * kIdsPerWriter + rng() % kIdsPerWriter;
        const unsigned kind = rng() % 10;
        Status s;
        if (kind < 6) {
          s = db->Put(WriteOptions(), id, test::CrashVector(id, ++stamp));
          if (s.ok()) model[id] = stamp;
        } else if (kind < 8) {
          s = db->Delete(WriteOptions(), id);
          if (s.ok() != (model.count(id) == 1)) ++errors;  // NotFound iff not live
          if (s.IsNotFound()) s = Status::OK();
          model.erase(id);
        } else {
          WriteBatch batch;
          std::map<uint64_t, int64_t> effect;  // id -> stamp, -1 deleted
          for (int i = 0; i < 5; ++i) {
            const uint64_t bid = w * kIdsPerWriter + rng() % kIdsPerWriter;
            if (rng() % 3 == 0) {
              batch.Delete(bid);
              effect[bid] = -1;
            } else {
              batch.Put(bid, test::CrashVector(bid, ++stamp));
              effect[bid] = static_cast<int64_t>(stamp);
            }
          }
          s = db->Write(WriteOptions(), &batch);
          if (s.ok()) {
            for (auto [bid, st] : effect) {
              if (st < 0) model.erase(bid); else model[bid] = static_cast<uint64_t>(st);
            }
          }
        }
        if (!s.ok()) ++errors;
        ++writes;
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(100 + r);
      while (running()) {
        const uint64_t id = rng() % (kWriters * kIdsPerWriter);
        std::vector<float> q = test::CrashVector(id, rng());
        std::vector<Neighbor> hits;
        if (!db->Search(SearchOptions{.k = 5, .nprobe = 2}, q, &hits).ok()) ++errors;
        std::vector<float> qs(4 * test::kCrashDim);
        for (size_t i = 0; i < qs.size(); ++i) qs[i] = q[i % q.size()] + float(i / q.size());
        std::vector<std::vector<Neighbor>> batch;
        if (!db->SearchBatch(SearchOptions{.k = 3}, qs, 4, &batch).ok()) ++errors;
        std::vector<float> v;
        Status g = db->Get(ReadOptions(), id, &v);
        if (!g.ok() && !g.IsNotFound()) ++errors;
        (void)db->GetStats();
        ++searches;
      }
    });
  }
  threads.emplace_back([&] {
    while (running()) {
      Status s = db->Reindex(ReindexOptions{.iterations = 2});
      if (!s.ok()) ++errors;
      ++reindexes;
    }
  });
  threads.emplace_back([&] {
    std::unique_ptr<DB> secondary;
    if (!DB::OpenAsSecondary(Options(), dir.Sub("db"), dir.Sub("secondary"), &secondary).ok()) {
      ++errors;
      return;
    }
    while (running()) {
      if (!secondary->TryCatchUpWithPrimary().ok()) ++errors;
      std::vector<Neighbor> hits;
      if (!secondary->Search(SearchOptions{.k = 1}, test::CrashVector(1, 1), &hits).ok()) ++errors;
      ++catch_ups;
    }
  });
  for (auto& t : threads) t.join();

  EXPECT_EQ(errors.load(), 0);
  ASSERT_TRUE(db->WaitForMaintenance().ok());
  uint64_t live = 0;
  for (int w = 0; w < kWriters; ++w) {
    for (uint64_t id = w * kIdsPerWriter; id < (w + 1) * kIdsPerWriter; ++id) {
      std::vector<float> v;
      Status s = db->Get(ReadOptions(), id, &v);
      auto it = models[w].find(id);
      if (it == models[w].end()) {
        EXPECT_TRUE(s.IsNotFound()) << id;
        continue;
      }
      ++live;
      ASSERT_TRUE(s.ok()) << id << ": " << s.ToString();
      EXPECT_EQ(v, test::CrashVector(id, it->second)) << id;
    }
  }
  EXPECT_EQ(db->GetStats().num_vectors, live);
  CheckReport report;
  Status s = db->Check(&report);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::printf("stress test: %.1f s, %llu writes, %llu search rounds, %llu re-clusterings, "
              "%llu secondary catch-ups, %llu live vectors\n",
              seconds, (unsigned long long)writes.load(),
              (unsigned long long)searches.load(), (unsigned long long)reindexes.load(),
              (unsigned long long)catch_ups.load(), (unsigned long long)live);
}

}  // namespace
}  // namespace quiver
