// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DBImpl joins the storage (RocksDB, the source of truth) with the
// in-memory IVF index (derived state, rebuilt on Open).
//
// Write path: validate -> one atomic RocksDB write batch (acknowledged once
// in the WAL) -> apply to the index. Writes are serialised by write_mu_,
// so the index sees them in commit order. Read path: Get reads RocksDB;
// Search reads the index's current version without locks.

#ifndef QUIVER_ENGINE_DB_IMPL_H_
#define QUIVER_ENGINE_DB_IMPL_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "index/ivf_index.h"
#include "quiver/db.h"
#include "storage/store.h"

namespace quiver {

class DBImpl final : public DB {
 public:
  // Upper bounds of SearchOptions that keep allocations bounded.
  static constexpr uint32_t kMaxK = 1 << 16;
  static constexpr uint32_t kMaxNprobe = 1 << 16;

  static Status OpenImpl(const Options& options, const std::string& path,
                         std::unique_ptr<DB>* db);

  ~DBImpl() override;

  Status Put(const WriteOptions& options, uint64_t id, std::span<const float> vec,
             std::string_view payload) override;
  Status Delete(const WriteOptions& options, uint64_t id) override;
  Status Write(const WriteOptions& options, WriteBatch* batch) override;
  Status Get(const ReadOptions& options, uint64_t id, std::vector<float>* vec,
             std::string* payload) override;
  Status Search(const SearchOptions& options, std::span<const float> query,
                std::vector<Neighbor>* result) override;
  Status SearchBatch(const SearchOptions& options, std::span<const float> queries,
                     size_t nq, std::vector<std::vector<Neighbor>>* results) override;
  Status Reindex(const ReindexOptions& options,
                 std::function<bool(const ReindexProgress&)> progress) override;
  Stats GetStats() override;
  Status Close() override;

 private:
  DBImpl(const Options& options, std::unique_ptr<storage::Store> store,
         uint32_t dim, Metric metric);

  // Rebuilds the index from the latest index record and every vector.
  Status Recover();
  Status CheckVector(std::span<const float> vec, const char* what) const;
  Status CheckSearch(const SearchOptions& options, std::span<const float> queries,
                     size_t nq, index::SearchParams* params) const;
  Status WriteLocked(const WriteOptions& options, const WriteBatch& batch);
  // Clusters every live vector into `partitions` centroids, persists the
  // new epoch and installs it. REQUIRES: write_mu_ held.
  Status TrainLocked(uint32_t partitions, int iterations, Device device,
                     const std::function<bool(const ReindexProgress&)>& progress);
  uint32_t PartitionsFor(size_t n) const;

  const Options options_;
  const uint32_t dim_;
  const Metric metric_;

  // Shared by every operation, exclusive for Close(): nothing runs on a
  // closed store.
  std::shared_mutex close_mu_;
  bool closed_ = false;  // guarded by close_mu_

  std::mutex write_mu_;  // serialises writes and trainings
  std::unique_ptr<storage::Store> store_;
  index::IvfIndex index_;

  std::atomic<uint64_t> trainings_{0};
  std::atomic<double> training_seconds_{0.0};
};

}  // namespace quiver

#endif  // QUIVER_ENGINE_DB_IMPL_H_
