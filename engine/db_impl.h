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
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/device_mirror.h"
#include "index/ivf_index.h"
#include "quiver/db.h"
#include "storage/store.h"

namespace quiver {

// Runs fn with the oneTBB work it starts bounded to max_threads threads
// (0: all cores).
Status RunBounded(uint32_t max_threads, const std::function<Status()>& fn);

class DBImpl final : public DB {
 public:
  // Upper bounds of SearchOptions that keep allocations bounded.
  static constexpr uint32_t kMaxK = 1 << 16;
  static constexpr uint32_t kMaxNprobe = 1 << 16;

  // Opens a writer, a read-only instance, or (secondary_path non-empty) a
  // secondary instance.
  static Status OpenImpl(const Options& options, const std::string& path,
                         const std::string& secondary_path, std::unique_ptr<DB>* db);

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
  Status Check(CheckReport* report) override;
  Status TryCatchUpWithPrimary() override;
  Status WaitForMaintenance() override;
  Status Close() override;

  // Test hooks. TEST_SetEpochSwitchHook's function is called at each step
  // of a global re-clustering ("snapshot", "kmeans", "build", "catchup",
  // "persist", "swap"); a non-OK Status stops the re-clustering there, as a
  // crash at that point would. TEST_WaitForMaintenance blocks until the
  // background maintainer has nothing left to do.
  void TEST_SetEpochSwitchHook(std::function<Status(std::string_view)> hook);
  void TEST_WaitForMaintenance();

 private:
  // A write made while a global re-clustering runs, replayed into the new
  // index before it is swapped in.
  struct LoggedOp {
    bool put;
    uint64_t id;
    std::vector<float> vec;  // prepared; empty for a delete
  };

  DBImpl(const Options& options, std::unique_ptr<storage::Store> store,
         uint32_t dim, Metric metric);

  // What one global re-clustering does (see Recluster).
  struct ReclusterPlan {
    uint32_t partitions = 0;  // 0: from target_partition_size
    int iterations = 1;
    Device device = Device::kAuto;
    uint32_t max_threads = 0;  // CPU threads of the k-means; 0: all cores
    std::function<bool(const ReindexProgress&)> progress;
    bool only_if_flat = false;  // do nothing once the index is trained
    // Centroids handed over by another process (storage/handover.h): no
    // k-means runs, and the new epoch records given->handover_id.
    const storage::IndexRecord* given = nullptr;
  };

  // A re-clustering's snapshot as the GPU mirror holds it: ids[r] is in
  // device row r.
  struct DeviceSnapshot {
    std::vector<uint64_t> ids;
    std::vector<DeviceMirror::Shard> shards;  // empty: no device snapshot
  };

  // Rebuilds the index from the latest index record and every vector.
  Status Recover();
  // Secondary: the store catches up with the writer, the index is rebuilt.
  Status CatchUp();
  // OK, or InvalidArgument saying what is wrong with `vec` (a predicate such
  // as "has dimension 3, ..."; the caller names the subject).
  Status CheckVector(std::span<const float> vec) const;
  Status CheckSearch(const SearchOptions& options, std::span<const float> queries,
                     size_t nq, index::SearchParams* params) const;
  // Commits and applies `batch`; sets *train_due when the flat index has
  // reached the training threshold and no maintainer will train it.
  Status WriteLocked(const WriteOptions& options, const WriteBatch& batch, bool* train_due);
  // Clusters every live vector into plan.partitions centroids (or takes
  // plan.given) and swaps the new index in, without blocking writers:
  // k-means and the new index are built beside the serving one from a
  // snapshot; the writes made meanwhile are replayed before the swap; the
  // new epoch is persisted (synced) just before it.
  // REQUIRES: write_mu_ not held.
  Status Recluster(const ReclusterPlan& plan);
  Status ReclusterUnbounded(const ReclusterPlan& plan);
  // The k-means of a re-clustering over a snapshot of n >= 1 prepared
  // vectors: plan.partitions centroids (0: from target_partition_size; at
  // most n), warm-started from `warm` when it holds that many; with
  // `assignments`, also each vector's centroid among those returned. With
  // `on_device`, the k-means reads the GPU mirror's rows, which hold
  // `vectors` in the same order, instead of `vectors`.
  Status TrainCentroids(const ReclusterPlan& plan, const std::vector<float>& vectors, size_t n,
                        const std::vector<float>& warm, uint64_t epoch,
                        std::vector<float>* centroids,
                        std::vector<uint32_t>* assignments = nullptr,
                        const DeviceSnapshot* on_device = nullptr);
  // Reindex() of a secondary instance: k-means here, the epoch switch by
  // the writer through a hand-over.
  Status ReindexOnSecondary(const ReindexOptions& options, const ReclusterPlan& plan);
  // The writer: applies the centroid hand-overs waiting in the DB's
  // directory, oldest first. REQUIRES: write_mu_ not held.
  void ApplyHandovers();
  // OK when a handed-over centroid record fits this DB.
  Status CheckHandedOver(const storage::IndexRecord& rec) const;
  uint32_t MaintenanceThreads() const;
  Status Hook(std::string_view step);
  uint32_t PartitionsFor(size_t n) const;
  // Creates the GPU mirror of the live vectors when a GPU is present.
  void StartMirror();
  // Persists the serving centroids under the current epoch (after local
  // maintenance changed them). REQUIRES: write_mu_ held.
  Status PersistCentroidsLocked(bool sync);

  // Background maintainer (engine/maintainer.cc).
  void MaintainerLoop();
  // One pass: local actions until none applies, then the global triggers.
  void MaintainOnce();
  // One local action (split, merge or compaction); false when none applies.
  // Takes write_mu_ itself, for the parts that change the index.
  bool LocalStep();
  // Whether a global re-clustering is due. REQUIRES: write_mu_ held.
  bool GlobalDueLocked() const;
  void KickMaintainer();

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
  // The live vectors in GPU memory for the re-clusterings' k-means; null
  // without a GPU (or after it ran out of memory). Guarded by write_mu_.
  std::unique_ptr<DeviceMirror> mirror_;

  // Serialises global re-clusterings (Reindex and the maintainer).
  std::mutex global_mu_;

  // Guarded by write_mu_.
  bool recording_ = false;         // a Recluster is between snapshot and swap
  std::vector<LoggedOp> op_log_;   // writes to replay at its swap
  uint64_t written_since_epoch_ = 0;  // puts
  uint64_t changed_since_epoch_ = 0;  // puts and deletes
  // Partitions whose split 2-means left a half below min_partition_size,
  // with their live count then: retried only once they grow by a quarter.
  std::unordered_map<const void*, size_t> split_refused_;
  double epoch_distortion_ = 0.0;  // mean distance to centroid at the epoch
  uint64_t handover_id_ = 0;       // last hand-over applied (IndexRecord::handover_id)
  index::MaintenanceCounters counters_;
  std::atomic<double> maintenance_seconds_{0.0};  // local actions, written by the maintainer
  std::function<Status(std::string_view)> epoch_switch_hook_;

  std::atomic<uint64_t> trainings_{0};
  std::atomic<double> training_seconds_{0.0};

  // Maintainer thread state.
  std::mutex maint_mu_;
  std::condition_variable maint_cv_;
  bool maint_stop_ = false;   // guarded by maint_mu_
  bool maint_kick_ = false;   // guarded by maint_mu_
  bool maint_busy_ = false;   // guarded by maint_mu_
  std::condition_variable maint_idle_cv_;
  std::atomic<bool> stopping_{false};
  std::thread maintainer_;
};

}  // namespace quiver

#endif  // QUIVER_ENGINE_DB_IMPL_H_
