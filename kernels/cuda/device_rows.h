// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DeviceRows: a table of fixed-width float rows kept in GPU memory, written
// from the host a row at a time and read on the device. The index keeps its
// vectors mirrored in one, so that a re-clustering's k-means reads them in
// place (KMeansOptions::data_on_device) instead of uploading a snapshot.
//
// Writes are staged on the host and uploaded by Flush() in one copy and one
// scatter kernel: a write costs a memcpy, not a PCIe round trip. A plain
// C++ header (no CUDA syntax); without CUDA, Create() reports NotSupported.
//
// Thread safety: none; the owner serialises every call.

#ifndef QUIVER_KERNELS_CUDA_DEVICE_ROWS_H_
#define QUIVER_KERNELS_CUDA_DEVICE_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "quiver/status.h"

namespace quiver::kernels {

class DeviceRows {
 public:
  // An empty table of rows of `dim` floats on CUDA device `device` (every
  // call makes that device current for its duration). NotSupported without
  // a usable GPU, InvalidArgument for a device that does not exist.
  static Status Create(uint32_t dim, int device, std::unique_ptr<DeviceRows>* rows);

  virtual ~DeviceRows() = default;

  virtual uint32_t dim() const = 0;
  virtual int device() const = 0;
  // Rows the device holds room for (grown by Flush as slots require).
  virtual size_t capacity() const = 0;

  // Stages `row` (dim floats, copied) as the new value of row `slot`.
  virtual void Put(uint32_t slot, const float* row) = 0;

  // Uploads the staged rows, growing the device table when a slot lies
  // beyond it; afterwards row s on the device is the last Put(s). On error
  // (out of memory) the staged rows are kept for the next call.
  virtual Status Flush() = 0;

  // A new device matrix (n x dim, row-major) of rows slots[0..n) in that
  // order, on this table's device, independent of it (later Puts and
  // Flushes leave it alone); freed when the last copy of *out goes. Rows never written are
  // unspecified. REQUIRES: every slot < capacity(); nothing staged.
  virtual Status Gather(const uint32_t* slots, size_t n,
                        std::shared_ptr<const float>* out) = 0;

  // Copies device rows slots[0..n) to host (n x dim): for tests.
  virtual Status Read(const uint32_t* slots, size_t n, float* host) = 0;
};

// Copies `count` floats from device memory (a Gather's matrix, on any
// device) to host. Thread-safe.
Status CopyToHost(const float* device, size_t count, float* host);

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CUDA_DEVICE_ROWS_H_
