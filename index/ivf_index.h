// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// IvfIndex: the in-memory inverted-file index. An IndexVersion holds the
// centroids and the partitions of one epoch; an untrained index (epoch 0)
// is a single flat partition searched exhaustively.
//
// Searches read the current version through an atomic shared_ptr (RCU):
// they never take a lock and never wait for writers or for a rebuild; the
// memory of a replaced version is freed when its last reader leaves.
// Writers (Upsert, Remove, Install) must be serialised by the owner.
//
// Vectors given to the index are already prepared for the metric: for
// kCosine they are normalised (see PrepareVector).

#ifndef QUIVER_INDEX_IVF_INDEX_H_
#define QUIVER_INDEX_IVF_INDEX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "index/partition.h"
#include "quiver/status.h"
#include "quiver/types.h"

namespace quiver::index {

// One epoch of the index. Centroids and the partition list never change
// after publication; partitions take appends and tombstones (see Partition).
struct IndexVersion {
  uint64_t epoch = 0;
  std::vector<float> centroids;  // num_partitions x dim; empty when flat
  std::vector<std::unique_ptr<Partition>> partitions;

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

class IvfIndex {
 public:
  IvfIndex(uint32_t dim, Metric metric);

  uint32_t dim() const { return dim_; }
  Metric metric() const { return metric_; }

  // Copies `vec` into `out` (dim floats) in the form the index stores:
  // normalised for kCosine, unchanged otherwise.
  void PrepareVector(const float* vec, float* out) const;

  // --- Writer side: REQUIRES calls serialised by the owner. ---

  // Inserts or replaces `id` (vec already prepared). Goes to the partition
  // of the nearest centroid.
  void Upsert(uint64_t id, const float* vec);
  // Removes `id`; false when absent.
  bool Remove(uint64_t id);
  bool Contains(uint64_t id) const { return locations_.count(id) != 0; }
  size_t size() const { return locations_.size(); }

  // Copies every live vector (prepared form) and its id, in partition order.
  void CollectLive(std::vector<uint64_t>* ids, std::vector<float>* vectors) const;

  // Publishes a new version: `centroids` (k x dim, empty for flat) with
  // every vector of (ids, vectors) in the partition `assignments` names
  // (ignored when flat). Readers switch atomically.
  void Install(uint64_t epoch, std::vector<float> centroids,
               const std::vector<uint64_t>& ids, const std::vector<float>& vectors,
               const std::vector<uint32_t>& assignments);

  // --- Reader side: any thread, lock-free. ---

  std::shared_ptr<const IndexVersion> Current() const {
    return current_.load(std::memory_order_acquire);
  }

  // The k nearest live vectors to prepared query q, closest first.
  void Search(const float* q, const SearchParams& params,
              std::vector<Neighbor>* out) const;

  // Searches nq prepared queries (row-major) in parallel.
  void SearchBatch(const float* queries, size_t nq, const SearchParams& params,
                   std::vector<std::vector<Neighbor>>* out) const;

  IndexStats Stats() const;

 private:
  struct Location {
    uint32_t partition;
    uint32_t slot;
  };

  void SearchIn(const IndexVersion& v, const float* q, const uint32_t* probes,
                size_t nprobe, const SearchParams& params,
                std::vector<Neighbor>* out) const;
  // SearchBatch for many queries: one pass over each probed partition.
  void SearchPartitionMajor(const IndexVersion& v, const float* queries, size_t nq,
                            const uint32_t* probes, size_t nprobe,
                            const SearchParams& params,
                            std::vector<std::vector<Neighbor>>* out) const;
  uint32_t NearestPartition(const IndexVersion& v, const float* vec) const;

  const uint32_t dim_;
  const Metric metric_;
  std::atomic<std::shared_ptr<const IndexVersion>> current_;
  // Writer-only: where each live id sits in the current version.
  std::unordered_map<uint64_t, Location> locations_;
};

}  // namespace quiver::index

#endif  // QUIVER_INDEX_IVF_INDEX_H_
