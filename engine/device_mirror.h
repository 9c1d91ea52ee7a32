// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DeviceMirror: the index's live vectors (prepared form) kept in GPU memory
// in step with every acknowledged write, so that a global re-clustering's
// k-means on the GPU reads them in place instead of uploading a snapshot of
// every vector each time. Rows are reused after deletes; writes are staged
// on the host and uploaded in batches (kernels/cuda/device_rows.h).
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
  // Null when no usable GPU is present.
  static std::unique_ptr<DeviceMirror> Create(uint32_t dim);

  // Mirrors a put (a new id, or a new value of one) or a delete.
  void Put(uint64_t id, const float* vec);
  void Erase(uint64_t id);

  // False once an upload failed (out of GPU memory): the mirror then
  // stops taking writes and the owner drops it.
  bool ok() const { return ok_; }
  size_t size() const { return row_of_.size(); }

  // The live vectors as one device matrix: *ids[i] is row i of *rows
  // (size() x dim, independent of later writes). Cheap enough to hold the
  // write lock for: a pass over the row table and a device-side gather.
  Status Snapshot(std::vector<uint64_t>* ids, std::shared_ptr<const float>* rows);

 private:
  explicit DeviceMirror(std::unique_ptr<kernels::DeviceRows> rows);
  Status Flush();

  std::unique_ptr<kernels::DeviceRows> rows_;
  std::unordered_map<uint64_t, uint32_t> row_of_;  // live id -> device row
  std::vector<uint64_t> id_of_row_;                // row -> id, for live rows
  std::vector<uint8_t> row_live_;                  // row -> 1 when live
  std::vector<uint32_t> free_rows_;                // rows of deleted ids
  size_t staged_ = 0;                              // puts since the last upload
  bool ok_ = true;
};

}  // namespace quiver

#endif  // QUIVER_ENGINE_DEVICE_MIRROR_H_
