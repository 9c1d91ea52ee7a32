// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// IvfIndex: the in-memory inverted-file index. An IndexVersion holds the
// centroids and the partitions of the index as searches see it; an
// untrained index (epoch 0) is a single flat partition searched
// exhaustively.
//
// Searches read the current version through a SharedSlot (RCU): they copy
// a pointer and never wait for writers or for maintenance;
// the memory of a replaced version is freed when its last reader leaves.
// Versions share the partitions they have in common, so a local change
// (split, merge, compaction) copies only the partition list.
//
// Everything below "writer side" must be serialised by the owner (the
// engine's write mutex). Build() is the exception: it reads only its
// arguments, so a global re-clustering builds the next version off to the
// side, without the lock, and Publish()es it under the lock.
//
// Vectors given to the index are already prepared for the metric: for
// kCosine they are normalised (see PrepareVector).

#ifndef QUIVER_INDEX_IVF_INDEX_H_
#define QUIVER_INDEX_IVF_INDEX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/partition.h"
#include "index/shared_slot.h"
#include "quiver/status.h"
#include "quiver/types.h"

namespace quiver::index {

// The index as searches see it. Centroids and the partition list never
// change after publication; partitions take appends and tombstones.
struct IndexVersion {
  uint64_t epoch = 0;
  std::vector<float> centroids;  // num_partitions x dim; empty when flat
  std::vector<std::shared_ptr<Partition>> partitions;

  bool flat() const { return centroids.empty(); }
};

struct SearchParams {
  size_t k = 10;
  size_t nprobe = 16;
  bool exact = false;
};

struct IndexStats {
  uint64_t epoch = 0;
  uint64_t live = 0;
  uint64_t tombstones = 0;
  std::vector<uint64_t> partition_sizes;  // live per partition
};

// Counters of the local maintenance actions.
struct MaintenanceCounters {
  uint64_t splits = 0;
  uint64_t merges = 0;
  uint64_t compactions = 0;
  uint64_t reassigned = 0;
};

// A complete index built beside the serving one (see Build / Publish).
struct IndexState {
  struct Location {
    uint32_t partition;
    uint32_t slot;
    float distance;  // to its centroid (0 while flat)
  };
  std::shared_ptr<IndexVersion> version;
  std::unordered_map<uint64_t, Location> locations;  // live ids only
  double distortion_sum = 0.0;                        // sum of Location::distance
};

class IvfIndex {
 public:
  IvfIndex(uint32_t dim, Metric metric);

  uint32_t dim() const { return dim_; }
  Metric metric() const { return metric_; }

  // Copies `vec` into `out` (dim floats) in the form the index stores:
  // normalised for kCosine, unchanged otherwise.
  void PrepareVector(const float* vec, float* out) const;

  // Builds a complete index: `centroids` (k x dim, empty for flat) with
  // vector i of (ids, vectors) in partition assignments[i] at distance
  // distances[i] (both ignored when flat). Thread-safe: reads only its
  // arguments and dim/metric.
  IndexState Build(uint64_t epoch, std::vector<float> centroids,
                   const std::vector<uint64_t>& ids, const std::vector<float>& vectors,
                   const std::vector<uint32_t>& assignments,
                   const std::vector<float>& distances) const;

  // Applies a put or a delete to `state`, which may be the serving one or
  // one built beside it (the catch-up of a global re-clustering).
  void UpsertInto(IndexState* state, uint64_t id, const float* vec) const;
  bool RemoveFrom(IndexState* state, uint64_t id) const;

  // --- Writer side: REQUIRES calls serialised by the owner. ---

  void Upsert(uint64_t id, const float* vec) { UpsertInto(&state_, id, vec); }
  bool Remove(uint64_t id) { return RemoveFrom(&state_, id); }
  bool Contains(uint64_t id) const { return state_.locations.count(id) != 0; }
  size_t size() const { return state_.locations.size(); }
  double distortion_sum() const { return state_.distortion_sum; }

  // Copies every live vector (prepared form) and its id, in partition order.
  void CollectLive(std::vector<uint64_t>* ids, std::vector<float>* vectors) const;

  // Any thread: copies every vector not tombstoned in v, each id once.
  // While writers go on, the copy holds each vector as it was when the
  // version was taken or as a write since left it (an upsert seen half
  // way may show either value, a delete either way); a caller that logs
  // the writes made since it took v and replays them gets the exact state.
  void CollectLive(const IndexVersion& v, std::vector<uint64_t>* ids,
                   std::vector<float>* vectors) const;

  // The stored (prepared) vector of live `id`; null when it is not live.
  const float* VectorOf(uint64_t id) const;

  // Walks every slot of every partition of the serving version and checks
  // the bookkeeping against it: each live id in exactly one partition, at
  // the slot the id map says, the map holding nothing else, one centroid
  // per partition. Calls problem() with a sentence per inconsistency and
  // returns the live ids, sorted, without duplicates.
  std::vector<uint64_t> CheckConsistency(
      const std::function<void(std::string)>& problem) const;

  // Live vectors and tombstones per partition of the serving version.
  struct PartitionLoad {
    size_t live;
    size_t tombstones;
  };
  std::vector<PartitionLoad> Loads() const;

  // Replaces the serving index with `state`; readers switch atomically.
  // Returns the replaced state, for the caller to free after unlocking.
  IndexState Publish(IndexState state);

  // Local maintenance, each one partition's worth of work. A split is
  // planned off the writer's lock (its 2-means and the nearest-centroid
  // search of the reassignment read only a published version) and applied
  // under it, so writers wait only for the copying.

  // What a split will do: partition `partition` of `version` becomes two
  // partitions around `centroids` (2 x dim).
  struct SplitPlan {
    std::shared_ptr<const IndexVersion> version;
    uint32_t partition = 0;
    std::vector<float> centroids;
  };
  // Any thread. 2-means over the live vectors of partition p of v as
  // published. False when p holds fewer than 4 or a half would hold fewer
  // than min_half.
  bool PlanSplit(std::shared_ptr<const IndexVersion> v, uint32_t p, size_t min_half,
                 SplitPlan* plan) const;

  // Vectors of some partitions and the centroid each is now nearest to.
  struct ReassignPlan {
    struct Entry {
      uint64_t id;
      uint32_t partition;  // where the plan saw it
      uint32_t slot;
      uint32_t nearest;
      float distance;  // to the nearest centroid
    };
    std::shared_ptr<const IndexVersion> version;
    std::vector<Entry> entries;
  };

  // Writer side. Applies `plan` when the serving version is still the one
  // it was made against: every vector live in the partition now (writes
  // since the plan included) goes to the nearer of the two centroids.
  // False, changing nothing, when the version changed or a half would hold
  // fewer than min_half. On success `reassign` lists the two halves and
  // the `neighbors` partitions nearest the old centroid, whose vectors may
  // now be nearer another centroid (see PlanReassign).
  bool ApplySplit(const SplitPlan& plan, size_t neighbors, size_t min_half,
                  std::vector<uint32_t>* reassign, MaintenanceCounters* counters);
  // Any thread: the nearest centroid of every live vector of `parts` of v.
  ReassignPlan PlanReassign(std::shared_ptr<const IndexVersion> v,
                            const std::vector<uint32_t>& parts) const;
  // Writer side: moves each vector of `plan` still where the plan saw it
  // to its nearest partition; returns how many moved. Nothing when the
  // serving version is no longer plan.version.
  uint64_t ApplyReassign(const ReassignPlan& plan, MaintenanceCounters* counters);
  // Removes partition p; its vectors go to their nearest remaining centroid.
  bool Merge(uint32_t p, MaintenanceCounters* counters);
  // Rewrites partition p without its tombstones.
  bool Compact(uint32_t p, MaintenanceCounters* counters);

  // --- Reader side: any thread; never waits for writers. ---

  std::shared_ptr<const IndexVersion> Current() const {
    return current_.Load();
  }

  // The k nearest live vectors to each of nq prepared queries (row-major),
  // closest first, searched in parallel.
  void SearchBatch(const float* queries, size_t nq, const SearchParams& params,
                   std::vector<std::vector<Neighbor>>* out) const;

  IndexStats Stats() const;

 private:
  using Location = IndexState::Location;

  void SearchIn(const IndexVersion& v, const float* q, const uint32_t* probes,
                size_t nprobe, const SearchParams& params,
                std::vector<Neighbor>* out) const;
  // SearchBatch for many queries: one pass over each probed partition.
  void SearchPartitionMajor(const IndexVersion& v, const float* queries, size_t nq,
                            const uint32_t* probes, size_t nprobe,
                            const SearchParams& params,
                            std::vector<std::vector<Neighbor>>* out) const;
  // Nearest partition of vec and its distance (0 when flat).
  uint32_t NearestPartition(const IndexVersion& v, const float* vec, float* dist) const;
  // A vector arriving in a partition being rebuilt.
  struct Arrival {
    uint64_t id;
    const float* vec;
    float distance;  // to the partition's centroid
  };
  // Copy on write: replaces each partition p of `parts` in v (a copy of
  // the serving version, numbered as v is) by a fresh one holding its live
  // vectors less the slots flagged in leaving[p] (when present), plus
  // arriving[p] (when present), and points their locations there.
  // Readers of the serving version keep the old partitions untouched.
  void Rebuild(IndexVersion* v, const std::vector<uint32_t>& parts,
               const std::vector<std::vector<uint8_t>>& leaving,
               const std::vector<std::vector<Arrival>>& arriving);
  // A copy of the serving version's structure (sharing its partitions),
  // to modify and publish.
  std::shared_ptr<IndexVersion> CopyVersion() const;
  void PublishVersion(std::shared_ptr<IndexVersion> v);

  const uint32_t dim_;
  const Metric metric_;
  SharedSlot<const IndexVersion> current_;
  IndexState state_;  // writer-only; state_.version is what current_ serves
};

}  // namespace quiver::index

#endif  // QUIVER_INDEX_IVF_INDEX_H_
