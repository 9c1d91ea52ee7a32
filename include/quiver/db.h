// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A DB is a persistent, searchable collection of fixed-dimension vectors
// keyed by uint64_t ids chosen by the application.
//
//   quiver::Options opt;
//   opt.dim = 128;
//   std::unique_ptr<quiver::DB> db;
//   quiver::Status s = quiver::DB::Open(opt, "/tmp/vectors", &db);
//   s = db->Put(quiver::WriteOptions(), 42, vec);
//   std::vector<quiver::Neighbor> hits;
//   s = db->Search(quiver::SearchOptions{.k = 10}, query, &hits);
//
// Thread safety: a DB may be shared by many threads without external
// synchronization. Writes are applied one at a time in a global order;
// searches never wait for writes or for re-clustering: they read an
// immutable version of the index.

#ifndef QUIVER_DB_H_
#define QUIVER_DB_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quiver/export.h"
#include "quiver/options.h"
#include "quiver/status.h"
#include "quiver/types.h"

namespace quiver {

class WriteBatch;

// A snapshot of a DB's state, for monitoring.
struct Stats {
  uint32_t dim = 0;
  Metric metric = Metric::kL2;
  uint64_t num_vectors = 0;      // live vectors
  uint64_t epoch = 0;            // index generation; 0 = not trained (flat)
  uint32_t num_partitions = 0;   // 1 while flat
  uint64_t min_partition_size = 0;
  uint64_t max_partition_size = 0;
  double mean_partition_size = 0.0;
  double imbalance = 0.0;        // largest partition / mean
  uint64_t tombstones = 0;       // deleted or overwritten slots not yet reclaimed
  uint64_t trainings = 0;        // global k-means trainings since Open
  double training_seconds = 0.0; // time spent in them
  uint64_t splits = 0;           // partitions split since Open
  uint64_t merges = 0;           // partitions merged away since Open
  uint64_t compactions = 0;      // partitions rewritten to drop tombstones
  uint64_t reassigned = 0;       // vectors moved to a nearer centroid by maintenance
  double maintenance_seconds = 0.0;  // time in local maintenance (splits, merges, ...)
  // Mean squared distance of live vectors to their centroid (L2; for IP and
  // cosine 1 - similarity), now and when the current epoch was trained.
  double mean_distortion = 0.0;
  double epoch_distortion = 0.0;
  double drift = 0.0;            // mean_distortion / epoch_distortion - 1
  uint64_t written_since_epoch = 0;  // puts since the epoch
  uint64_t changed_since_epoch = 0;  // puts and deletes since the epoch
  uint64_t storage_bytes = 0;    // the DB's files on disk
  // Live vectors mirrored in GPU memory, which re-clusterings' k-means read
  // in place; 0 without a GPU (or with Options::device = kCpu).
  uint64_t gpu_mirror_vectors = 0;
  std::vector<uint64_t> partition_sizes;  // live vectors per partition
};

// What DB::Check() examined and found.
struct CheckReport {
  uint64_t vectors = 0;        // vector records read and verified
  uint64_t index_records = 0;  // centroid (index) records read and verified
  uint32_t partitions = 0;     // partitions of the serving index walked
  uint64_t problems_found = 0; // all problems, including those not listed
  std::vector<std::string> problems;  // the first 100, each naming what is damaged
};

// What DB::Reindex reports while it runs.
struct ReindexProgress {
  // "gather", "kmeans", "assign", "persist"; on a secondary instance
  // "gather", "kmeans", then "handover" (done/total: seconds waited of the
  // timeout) until the DB's holder has committed the new epoch.
  std::string_view phase;
  uint64_t done = 0;
  uint64_t total = 0;
};

class QUIVER_EXPORT DB {
 public:
  // Opens the DB in directory `path`, creating it when options allow.
  // On success *db holds it; otherwise *db is null and the Status says why:
  // InvalidArgument for a bad option, a dimension or metric other than the
  // stored one, or a directory that holds no quiver DB; Busy when another
  // process holds the DB open for writing; Corruption for damaged files.
  static Status Open(const Options& options, const std::string& path,
                     std::unique_ptr<DB>* db);

  // Opens the DB at `path` as a secondary instance: read-only, alongside
  // the process that holds it open for writing, seeing the data as of the
  // open or the last TryCatchUpWithPrimary(). `secondary_path` is a
  // directory of its own for the secondary's log files. Options::dim and
  // metric are checked as by Open; read_only is implied; no maintenance
  // runs. Reindex() on a secondary re-clusters without blocking the writer
  // and hands the result over to it (see Reindex).
  static Status OpenAsSecondary(const Options& options, const std::string& path,
                                const std::string& secondary_path, std::unique_ptr<DB>* db);

  DB() = default;
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;
  // Closes the DB (see Close()).
  virtual ~DB() = default;

  // Stores `vec` under `id` (an upsert: a previous vector is replaced), with
  // optional opaque `payload` bytes returned by Get. Returns once the write
  // is in the write-ahead log (see WriteOptions::sync); then it is visible
  // to Get and Search. InvalidArgument for a wrong dimension or a NaN/Inf.
  //
  // Write errors (Put, Delete, Write): IOError when the disk fails or is
  // full. Such a write is not visible and may or may not be found after a
  // reopen; every write acknowledged before it is kept. From then on the DB
  // refuses writes with IOError until it is closed and reopened (after the
  // cause is fixed); Get and Search go on.
  virtual Status Put(const WriteOptions& options, uint64_t id,
                     std::span<const float> vec,
                     std::string_view payload = {}) = 0;

  // Removes `id`. NotFound when it does not exist.
  virtual Status Delete(const WriteOptions& options, uint64_t id) = 0;

  // Applies `batch` atomically. Every operation is validated first: one bad
  // vector rejects the whole batch and nothing is written.
  virtual Status Write(const WriteOptions& options, WriteBatch* batch) = 0;

  // Reads the vector (as it was put) and payload (may be null) of `id`.
  // NotFound when it does not exist; Corruption when its record is damaged.
  virtual Status Get(const ReadOptions& options, uint64_t id,
                     std::vector<float>* vec,
                     std::string* payload = nullptr) = 0;

  // The k nearest live vectors to `query`, closest first.
  virtual Status Search(const SearchOptions& options,
                        std::span<const float> query,
                        std::vector<Neighbor>* result) = 0;

  // Searches nq queries laid out row-major in `queries` (nq * dim floats),
  // in parallel on all cores; (*results)[i] answers query i.
  virtual Status SearchBatch(const SearchOptions& options,
                             std::span<const float> queries, size_t nq,
                             std::vector<std::vector<Neighbor>>* results) = 0;

  // Re-clusters the whole collection now: k-means over every live vector,
  // every vector moved to its nearest new centroid, the new index persisted
  // and swapped in atomically. Searches go on meanwhile on the old index.
  // `progress` (may be empty) is called from the calling thread; returning
  // false aborts with Status::Aborted and leaves the old index in place.
  //
  // On a secondary instance (online re-clustering of a DB another process
  // holds): catches up with the writer, runs the k-means over that
  // snapshot, and hands the centroids over to the writer, which assigns
  // every vector (the writes made meanwhile included) and commits the new
  // epoch atomically, from its background maintainer within a fraction of
  // a second (or at its next Open when its maintenance is off). Should the
  // writer close the DB first, Reindex opens it as the writer itself and
  // applies the hand-over. Returns OK once that epoch is committed; Busy when the writer has not applied it
  // within ReindexOptions::handover_timeout_seconds (the request stays and
  // is applied later); Aborted when the writer rejected it.
  virtual Status Reindex(
      const ReindexOptions& options,
      std::function<bool(const ReindexProgress&)> progress = {}) = 0;

  virtual Stats GetStats() = 0;

  // Verifies the DB end to end: the checksum of every block of every file;
  // that the metadata, every centroid record and every vector record decode
  // and match the DB's dimension and metric; that the serving index holds
  // every stored vector in exactly one partition and nothing else.
  // Corruption (the first problem; *report lists up to 100) when anything
  // is wrong. Writers wait while it runs: a tool's job, not a hot path.
  virtual Status Check(CheckReport* report) = 0;

  // Secondary instances only (OpenAsSecondary): applies the writer's
  // changes made since the open or the last call and rebuilds the index
  // from them. NotSupported on other instances.
  virtual Status TryCatchUpWithPrimary() = 0;

  // Blocks until the background maintainer has nothing left to do (no
  // split, merge, compaction or global re-clustering due). Returns at once
  // when maintenance is off. For benchmarks, tests and orderly shutdowns.
  virtual Status WaitForMaintenance() = 0;

  // Flushes and releases the DB's files and lock. Further calls return
  // InvalidArgument. Called by the destructor when not called before.
  // IOError when the last write failed: the write-ahead log was then not
  // synced (the DB is closed all the same).
  virtual Status Close() = 0;
};

}  // namespace quiver

#endif  // QUIVER_DB_H_
