// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The writer process of the crash tests. It opens a DB with re-clustering
// forced to run often (low thresholds, and optionally a thread calling
// Reindex every few milliseconds) and writes random puts, upserts, deletes
// and atomic batches over a small id space, reporting each write on stdout
// (one line each, flushed) so that the parent knows exactly what was
// acknowledged when it SIGKILLs this process:
//
//   I <n>           intent: the next n lines are one atomic write
//   P <id> <stamp>  put of CrashVector(id, stamp)
//   D <id>          delete
//   A               the write was acknowledged (OK)
//   N               a single delete acknowledged as NotFound (nothing changed)
//
// The pipe, not a file, carries the log: what the kernel has accepted into
// the pipe survives the writer's death, which is the crash this tests.
//
//   H               (HOLD) all OPS writes are done; the DB stays open
//
//   crash_writer DB SEED SYNC(0|1) OPS REINDEX_MS IDS HOLD(0|1)
// OPS: writes before a clean exit (0: until killed). REINDEX_MS: period of
// the Reindex thread (0: none). IDS: size of the id space. HOLD: after the
// OPS writes, keep the DB open (idle) until killed instead of exiting.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "crash/crash_vectors.h"
#include "quiver/db.h"
#include "quiver/write_batch.h"

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: crash_writer DB SEED SYNC OPS REINDEX_MS IDS HOLD\n");
    return 2;
  }
  const uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  const bool sync = argv[3][0] == '1';
  const uint64_t ops = std::strtoull(argv[4], nullptr, 10);
  const int reindex_ms = std::atoi(argv[5]);
  const uint64_t ids = std::max<uint64_t>(1, std::strtoull(argv[6], nullptr, 10));
  const bool hold = argv[7][0] == '1';

  quiver::Options o;
  o.dim = quiver::test::kCrashDim;
  o.device = quiver::Device::kCpu;
  o.ivf_train_threshold = 300;  // trainings happen while we are killed
  o.target_partition_size = 32;
  o.kmeans_iterations = 3;
  o.recluster_written_fraction = 0.2;  // global re-clusterings every few hundred writes
  o.recluster_min_change = 0.02;
  std::unique_ptr<quiver::DB> db;
  quiver::Status s = quiver::DB::Open(o, argv[1], &db);
  if (!s.ok()) {
    std::fprintf(stderr, "crash_writer: %s\n", s.ToString().c_str());
    return 1;
  }

  std::atomic<bool> stop{false};
  std::thread reindexer;
  if (reindex_ms > 0) {
    reindexer = std::thread([&] {
      while (!stop.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(reindex_ms));
        (void)db->Reindex(quiver::ReindexOptions{.iterations = 2});
      }
    });
  }

  std::mt19937_64 rng(seed);
  uint64_t stamp = seed << 32;
  const quiver::WriteOptions wo{.sync = sync};
  for (uint64_t op = 0; ops == 0 || op < ops; ++op) {
    const unsigned kind = rng() % 100;
    quiver::WriteBatch batch;
    std::string lines;
    if (kind < 70) {
      const uint64_t id = rng() % ids;
      ++stamp;
      batch.Put(id, quiver::test::CrashVector(id, stamp));
      lines = "P " + std::to_string(id) + " " + std::to_string(stamp) + "\n";
    } else if (kind < 85) {
      const uint64_t id = rng() % ids;
      std::printf("I 1\nD %llu\n", (unsigned long long)id);
      std::fflush(stdout);
      s = db->Delete(wo, id);
      if (!s.ok() && !s.IsNotFound()) {
        std::fprintf(stderr, "crash_writer: %s\n", s.ToString().c_str());
        return 1;
      }
      std::printf(s.ok() ? "A\n" : "N\n");
      std::fflush(stdout);
      continue;
    } else {
      const int n = 2 + static_cast<int>(rng() % 7);
      for (int i = 0; i < n; ++i) {
        const uint64_t id = rng() % ids;
        if (rng() % 4 == 0) {
          batch.Delete(id);
          lines += "D " + std::to_string(id) + "\n";
        } else {
          ++stamp;
          batch.Put(id, quiver::test::CrashVector(id, stamp));
          lines += "P " + std::to_string(id) + " " + std::to_string(stamp) + "\n";
        }
      }
    }
    std::printf("I %zu\n%s", batch.Count(), lines.c_str());
    std::fflush(stdout);
    s = db->Write(wo, &batch);
    if (!s.ok()) {
      std::fprintf(stderr, "crash_writer: %s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("A\n");
    std::fflush(stdout);
  }
  stop.store(true);
  if (reindexer.joinable()) reindexer.join();
  if (hold) {
    std::printf("H\n");
    std::fflush(stdout);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return 0;
}
