// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Options of a DB and of its operations. Plain structs with in-class
// defaults; each field says what it means, its default and its trade-off.

#ifndef QUIVER_OPTIONS_H_
#define QUIVER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "quiver/types.h"

namespace quiver {

// Options of DB::Open().
struct Options {
  // Dimension of every vector. Required (>= 1) when a DB is created; when an
  // existing DB is opened, 0 accepts the stored dimension and any other value
  // must match it (otherwise Open returns InvalidArgument).
  uint32_t dim = 0;

  // Distance of the DB. Fixed at creation: opening a DB with another metric
  // returns InvalidArgument. Ignored when `accept_stored_metric` is true.
  Metric metric = Metric::kL2;

  // When opening an existing DB, take its stored metric instead of checking
  // `metric` against it (tools that open any DB set this). Default false.
  bool accept_stored_metric = false;

  // Create the DB when the directory holds none. Default true.
  bool create_if_missing = true;

  // Fail with InvalidArgument when the DB already exists. Default false.
  bool error_if_exists = false;

  // Open without the write lock: writes return NotSupported. Several
  // read-only instances may coexist with one writer; a read-only instance
  // sees the data as of its Open. Default false.
  bool read_only = false;

  // Where k-means runs: a CUDA GPU when kAuto finds one, else all CPU cores.
  Device device = Device::kAuto;

  // The CUDA devices the DB uses when its k-means runs on the GPU (distinct
  // ids). The GPU mirror of the live vectors is sharded over them (row r on
  // the r mod G-th), and a re-clustering's k-means runs on all of them,
  // each GPU on the rows it holds, the partial sums combined over NCCL.
  // Empty (the default): every visible GPU when NCCL (libnccl.so.2) can be
  // loaded, else the current GPU. A listed team without NCCL cannot train
  // on the GPUs: with device = kAuto its re-clusterings run on the CPU,
  // with kGpu they fail with NotSupported. A negative or twice-listed id is
  // InvalidArgument at Open, and so is one beyond the visible GPUs where a
  // GPU is visible and device is not kCpu (elsewhere the list is unused).
  std::vector<int> devices;

  // IVF layout. While the DB holds fewer than `ivf_train_threshold` live
  // vectors it is searched exactly (one flat partition). When that many
  // exist, k-means trains about live / `target_partition_size` centroids
  // and every vector moves to the partition of its nearest centroid.
  // Smaller partitions: faster scans per probe, more probes needed for the
  // same recall. target_partition_size is stored with the DB: 0 (the
  // default) takes the stored value, or 256 when creating; another value
  // replaces the stored one. ivf_train_threshold defaults to 8192.
  uint32_t target_partition_size = 0;
  uint32_t ivf_train_threshold = 8192;

  // Lloyd iterations of an automatic training or a Reindex(). Default 20.
  int kmeans_iterations = 20;

  // Partitions probed when SearchOptions::nprobe is 0. Default 16.
  uint32_t default_nprobe = 16;

  // Continuous re-clustering. When true, a background maintainer keeps the
  // partitions fresh while writes arrive: it splits partitions that grow
  // past max_partition_size (2-means), merges those that shrink below
  // min_partition_size into their nearest neighbours, reclaims tombstones,
  // and re-clusters globally (warm-started k-means over every live vector,
  // built beside the serving index and swapped in) when a trigger below
  // fires. When false the index is trained once and only appended to, as
  // FAISS does. Default true.
  bool background_maintenance = true;

  // Split a partition holding more live vectors than this. 0 means
  // 3 x target_partition_size (the default).
  uint32_t max_partition_size = 0;

  // Merge a partition holding fewer live vectors than this. 0 means
  // target_partition_size / 4 (the default).
  uint32_t min_partition_size = 0;

  // Global re-clustering triggers, checked after maintenance steps:
  //  drift: the mean squared distance of vectors to their centroid has
  //   grown by this fraction over its value at the last epoch (0.25 = 25%);
  //  imbalance: largest partition / mean partition size exceeds this;
  //  written: the vectors written since the last epoch exceed this fraction
  //   of the live vectors.
  // Defaults 0.25, 4.0, 0.5. A value <= 0 disables that trigger.
  // The drift and imbalance triggers also wait until at least
  // `recluster_min_change` x live vectors were written or deleted since the
  // epoch, so that data whose natural clusters are uneven is not
  // re-clustered over and over. Default 0.1.
  double recluster_drift = 0.25;
  double recluster_imbalance = 4.0;
  double recluster_written_fraction = 0.5;
  double recluster_min_change = 0.1;

  // CPU threads the maintainer's k-means may use, so that searches keep
  // the other cores while a global re-clustering runs. 0 means half the
  // cores (at least 1). Reindex() called by the application uses every
  // core unless ReindexOptions::max_threads says otherwise.
  uint32_t maintenance_threads = 0;
};

// Options of Put(), Delete() and Write().
struct WriteOptions {
  // false: the write is acknowledged once it is in the write-ahead log in
  // the OS page cache; it survives a crash of the process (kill -9), but a
  // crash of the machine may lose the last writes.
  // true: the log is fsync'ed before the write is acknowledged; it survives
  // a power loss too. Several times slower per write; batch writes instead.
  bool sync = false;
};

// Options of Get().
struct ReadOptions {
  // Verify the checksums of the blocks read. Default true.
  bool verify_checksums = true;
};

// Options of Search() and SearchBatch().
struct SearchOptions {
  // Neighbours to return, >= 1. Fewer come back only when the DB holds
  // fewer live vectors.
  uint32_t k = 10;

  // Partitions to scan per query. 0 takes Options::default_nprobe; values
  // above the partition count scan all. More probes: higher recall, lower
  // throughput.
  uint32_t nprobe = 0;

  // Scan every vector (exact search), whatever nprobe says. Default false.
  bool exact = false;
};

// Options of DB::Reindex().
struct ReindexOptions {
  // Partitions of the new index; 0 derives it from target_partition_size.
  uint32_t partitions = 0;
  // Lloyd iterations; 0 takes Options::kmeans_iterations.
  int iterations = 0;
  // Where the k-means runs; kAuto takes Options::device.
  Device device = Device::kAuto;
  // CPU threads the k-means may use; 0 means all cores.
  uint32_t max_threads = 0;
  // Secondary instances: how long Reindex waits for the DB's writer to
  // commit the handed-over centroids. Default 600 s.
  double handover_timeout_seconds = 600.0;
};

}  // namespace quiver

#endif  // QUIVER_OPTIONS_H_
