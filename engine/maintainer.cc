// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The background maintainer: keeps the IVF partitions fresh while writes
// arrive. Writes kick it; it then runs local actions (split, merge,
// compaction), one partition's worth at a time under the write lock so that
// writers wait at most that long, and then checks the global triggers
// (drift, imbalance, share written since the epoch), running a
// non-blocking global re-clustering when one fires.

#include <algorithm>
#include <chrono>

#include "engine/db_impl.h"

namespace quiver {
namespace {

// Partitions near a split whose vectors are checked for a nearer centroid.
constexpr size_t kSplitNeighbors = 8;
// A partition is compacted once this share of its slots are tombstones.
constexpr double kCompactTombstoneShare = 0.3;
// ... and it holds at least this many of them.
constexpr size_t kCompactMinTombstones = 64;

}  // namespace

void DBImpl::KickMaintainer() {
  {
    std::lock_guard lock(maint_mu_);
    maint_kick_ = true;
  }
  maint_cv_.notify_one();
}

void DBImpl::MaintainerLoop() {
  std::unique_lock lock(maint_mu_);
  while (!maint_stop_) {
    maint_cv_.wait_for(lock, std::chrono::milliseconds(200),
                       [&] { return maint_stop_ || maint_kick_; });
    if (maint_stop_) break;
    maint_kick_ = false;
    maint_busy_ = true;
    lock.unlock();
    MaintainOnce();
    lock.lock();
    maint_busy_ = false;
    if (!maint_kick_) maint_idle_cv_.notify_all();
  }
  maint_busy_ = false;
  maint_idle_cv_.notify_all();
}

Status DBImpl::WaitForMaintenance() {
  TEST_WaitForMaintenance();
  return Status::OK();
}

void DBImpl::TEST_WaitForMaintenance() {
  if (!maintainer_.joinable()) return;
  std::unique_lock lock(maint_mu_);
  maint_kick_ = true;
  maint_cv_.notify_one();
  maint_idle_cv_.wait(lock, [&] { return maint_stop_ || (!maint_kick_ && !maint_busy_); });
}

void DBImpl::TEST_SetEpochSwitchHook(std::function<Status(std::string_view)> hook) {
  std::lock_guard lock(write_mu_);
  epoch_switch_hook_ = std::move(hook);
}

bool DBImpl::LocalStep() {
  const uint32_t max_size = options_.max_partition_size != 0
                                ? options_.max_partition_size
                                : 3 * options_.target_partition_size;
  const uint32_t min_size = options_.min_partition_size != 0
                                ? options_.min_partition_size
                                : options_.target_partition_size / 4;
  const auto p32 = [](size_t p) { return static_cast<uint32_t>(p); };
  std::shared_ptr<const index::IndexVersion> version;
  size_t split = 0, split_live = 0;
  {
    std::lock_guard lock(write_mu_);
    if (index_.Current()->flat()) return false;
    const auto loads = index_.Loads();
    size_t largest = 0, smallest = 0, dirtiest = 0;
    for (size_t p = 1; p < loads.size(); ++p) {
      if (loads[p].live > loads[largest].live) largest = p;
      if (loads[p].live < loads[smallest].live) smallest = p;
      if (loads[p].tombstones > loads[dirtiest].tombstones) dirtiest = p;
    }
    // A partition whose 2-means left a half too small to keep (an outlier
    // group) is retried only once it has grown by a quarter: splitting it
    // again would only feed the merge below.
    auto refused = split_refused_.find(index_.Current()->partitions[largest].get());
    if (loads[largest].live > max_size &&
        (refused == split_refused_.end() || loads[largest].live > refused->second * 5 / 4)) {
      version = index_.Current();
      split = largest;
      split_live = loads[largest].live;
    } else if (loads.size() > 1 && loads[smallest].live < min_size &&
               index_.Merge(p32(smallest), &counters_)) {
      return true;
    } else {
      const auto& d = loads[dirtiest];
      return d.tombstones >= kCompactMinTombstones &&
             d.tombstones >= kCompactTombstoneShare * (d.live + d.tombstones) &&
             index_.Compact(p32(dirtiest), &counters_);
    }
  }

  // A split: the 2-means off the lock, writers go on meanwhile.
  index::IvfIndex::SplitPlan plan;
  const bool planned = index_.PlanSplit(version, p32(split), min_size, &plan);
  std::vector<uint32_t> neighbors;
  {
    std::lock_guard lock(write_mu_);
    if (index_.Current() != version) return true;  // replaced meanwhile: look again
    if (!planned ||
        !index_.ApplySplit(plan, kSplitNeighbors, min_size, &neighbors, &counters_)) {
      split_refused_[version->partitions[split].get()] = split_live;
      return true;
    }
    version = index_.Current();
  }
  // The vectors near the moved boundary, also planned off the lock.
  const auto reassign = index_.PlanReassign(version, neighbors);
  std::lock_guard lock(write_mu_);
  index_.ApplyReassign(reassign, &counters_);
  return true;
}

bool DBImpl::GlobalDueLocked() const {
  const size_t live = index_.size();
  std::shared_ptr<const index::IndexVersion> v = index_.Current();
  if (v->flat()) return live >= options_.ivf_train_threshold && live >= 2;
  if (live == 0) return false;
  if (options_.recluster_written_fraction > 0 &&
      written_since_epoch_ > options_.recluster_written_fraction * live) {
    return true;
  }
  // Drift is meaningful where distances are non-negative (L2, cosine).
  if (changed_since_epoch_ >= options_.recluster_min_change * live &&
      options_.recluster_drift > 0 && metric_ != Metric::kInnerProduct &&
      epoch_distortion_ > 0 &&
      index_.distortion_sum() / live > (1.0 + options_.recluster_drift) * epoch_distortion_) {
    return true;
  }
  // Drift and imbalance re-cluster only data that changed meanwhile: on
  // unchanged data k-means would find the same uneven clusters again.
  if (changed_since_epoch_ < options_.recluster_min_change * live) return false;
  if (options_.recluster_imbalance > 0) {
    size_t largest = 0;
    for (const auto& l : index_.Loads()) largest = std::max(largest, l.live);
    const double mean = double(live) / v->partitions.size();
    if (largest > options_.recluster_imbalance * mean) return true;
  }
  return false;
}

void DBImpl::MaintainOnce() {
  // Centroids handed over by `quiver reindex` on a secondary instance come
  // first: someone asked for them.
  ApplyHandovers();

  // Local actions, each taking the write lock only for its cheap part, so
  // writers interleave; their arithmetic on the maintenance threads.
  const uint64_t reshaped_before = counters_.splits + counters_.merges;
  while (!stopping_.load()) {
    const auto start = std::chrono::steady_clock::now();
    bool acted = false;
    (void)RunBounded(MaintenanceThreads(), [&] {
      acted = LocalStep();
      return Status::OK();
    });
    maintenance_seconds_.store(
        maintenance_seconds_.load() +
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!acted) break;
  }
  if (counters_.splits + counters_.merges != reshaped_before && !stopping_.load()) {
    // The centroids changed: persist them (derived state, so no fsync; a
    // crash before the next sync only loses the refinement).
    std::lock_guard lock(write_mu_);
    (void)PersistCentroidsLocked(/*sync=*/false);
  }

  uint32_t partitions = 0;
  {
    std::lock_guard lock(write_mu_);
    if (stopping_.load() || !GlobalDueLocked()) return;
    // Keep the partition count the local steps settled on, so that the
    // k-means starts warm from the serving centroids (0 when untrained:
    // from target_partition_size).
    if (!index_.Current()->flat()) {
      partitions = static_cast<uint32_t>(index_.Current()->partitions.size());
    }
  }
  ReclusterPlan plan;
  plan.partitions = partitions;
  plan.iterations = options_.kmeans_iterations;
  plan.device = options_.device;
  plan.max_threads = MaintenanceThreads();
  (void)Recluster(plan);
}

}  // namespace quiver
