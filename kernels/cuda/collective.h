// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Collective: NCCL communicators over a list of GPUs of this process (one
// communicator per GPU, driven from one thread through grouped calls), for
// the multi-GPU k-means to sum its per-GPU partial results.
//
// NCCL is loaded at run time (libnccl.so.2, found the way the dynamic
// loader finds libraries), so quiver builds, links and runs where NCCL is
// missing; a run over several GPUs then reports NotSupported. Included only
// from .cu files.
//
// Thread safety: Acquire() is thread-safe. A Collective is used by one
// thread at a time. Teams that share a GPU take turns (a lease holds its
// GPUs): two runs must not interleave their operations on one
// communicator, and two communicators' kernels spinning on the same GPUs
// at once can wait on each other for ever. One set of communicators is
// kept per device list (in its order) for the process's lifetime.

#ifndef QUIVER_KERNELS_CUDA_COLLECTIVE_H_
#define QUIVER_KERNELS_CUDA_COLLECTIVE_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "quiver/status.h"

namespace quiver::kernels::cuda {

class Collective {
 public:
  // True when NCCL can be loaded.
  static bool Available();

  // Leases the communicators over `devices` (distinct, valid ids; at least
  // 2), waiting while another run holds them. Creating them costs a few
  // hundred milliseconds, so they are kept for later runs over the same
  // list.
  static Status Acquire(const std::vector<int>& devices,
                        std::unique_ptr<Collective>* out);

  ~Collective();  // returns the communicators for reuse
  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

  int size() const { return static_cast<int>(devices_.size()); }

  // What one GPU contributes to SumAll: buffers on that GPU, summed in
  // place over all GPUs, the operation enqueued on `stream`.
  struct Part {
    float* floats = nullptr;
    size_t float_count = 0;
    int* ints = nullptr;
    size_t int_count = 0;
    double* doubles = nullptr;
    size_t double_count = 0;
    cudaStream_t stream = nullptr;
  };
  // In-place sum over the GPUs, parts[r] on devices[r]; enqueued, not
  // waited for. Every GPU receives the same bits (NCCL reduces each element
  // once and broadcasts it), so replicated arithmetic that follows stays
  // identical across GPUs. After a failure the communicators are not
  // reused.
  Status SumAll(const std::vector<Part>& parts);

  // Returns once streams[r] (on devices[r]) are all idle. A GPU failing
  // meanwhile would leave the others' all-reduce waiting for it for ever,
  // so this polls instead of blocking: on a failed stream or an NCCL
  // asynchronous error it aborts the communicators (the waiting kernels
  // end), marks them unusable and returns the error. Synchronise a team
  // through this before any blocking call.
  Status Wait(const std::vector<cudaStream_t>& streams);

  struct Comms;  // the communicators (opaque)

 private:
  Collective(std::vector<int> devices, std::unique_ptr<Comms> comms);

  std::vector<int> devices_;
  std::unique_ptr<Comms> comms_;
  bool failed_ = false;
};

}  // namespace quiver::kernels::cuda

#endif  // QUIVER_KERNELS_CUDA_COLLECTIVE_H_
