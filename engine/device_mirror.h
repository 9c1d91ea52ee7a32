// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DeviceMirror: the index's live vectors (prepared form) kept in GPU memory
// in step with every acknowledged write, so that a global re-clustering's
// k-means on the GPU reads them in place instead of uploading a snapshot of
// every vector each time. Rows are reused after deletes; writes are staged
// on the host and uploaded in batches (kernels/cuda/device_rows.h).
//
// Over several GPUs the mirror is sharded: row r lives on GPU r mod G, so
// the GPUs fill evenly as the collection grows, and a snapshot is one
// contiguous matrix per GPU, which the multi-GPU k-means takes as its
// shards (kernels::KMeansCudaSharded).
//
// Writer side: REQUIRES calls serialised by the owner (the write lock).

#ifndef QUIVER_ENGINE_DEVICE_MIRROR_H_
#define QUIVER_ENGINE_DEVICE_MIRROR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/device_rows.h"
#include "quiver/status.h"

namespace quiver {

class DeviceMirror {
 public:
  // A mirror over CUDA devices `devices` (empty: kernels::DefaultDevices(),
  // every visible GPU when NCCL can join them). Null when no usable GPU is
  // present or a listed device does not exist.
  static std::unique_ptr<DeviceMirror> Create(uint32_t dim, const std::vector<int>& devices);

  // Mirrors a put (a new id, or a new value of one) or a delete.
  void Put(uint64_t id, const float* vec);
  void Erase(uint64_t id);

  // False once an upload failed (out of GPU memory): the mirror then
  // stops taking writes and the owner drops it.
  bool ok() const { return ok_; }
  size_t size() const { return row_of_.size(); }
  size_t devices() const { return tables_.size(); }

  // One GPU's part of a snapshot: `count` rows (count x dim) on `device`.
  struct Shard {
    int device = 0;
    std::shared_ptr<const float> rows;
    size_t count = 0;
  };

  // The live vectors as one device matrix per GPU: *ids lists the rows of
  // (*shards)[0], then those of (*shards)[1], and so on; GPUs that hold no
  // live row are left out. Independent of later writes. Cheap enough to
  // hold the write lock for: a pass over the row table and a device-side
  // gather on each GPU.
  Status Snapshot(std::vector<uint64_t>* ids, std::vector<Shard>* shards);

 private:
  explicit DeviceMirror(std::vector<std::unique_ptr<kernels::DeviceRows>> tables);
  Status Flush();

  std::vector<std::unique_ptr<kernels::DeviceRows>> tables_;  // one per GPU
  std::unordered_map<uint64_t, uint32_t> row_of_;  // live id -> row
  std::vector<uint64_t> id_of_row_;                // row -> id, for live rows
  std::vector<uint8_t> row_live_;                  // row -> 1 when live
  std::vector<uint32_t> free_rows_;                // rows of deleted ids
  size_t staged_ = 0;                              // puts since the last upload
  bool ok_ = true;
};

}  // namespace quiver

#endif  // QUIVER_ENGINE_DEVICE_MIRROR_H_
