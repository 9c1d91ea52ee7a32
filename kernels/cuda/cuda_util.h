// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Small CUDA utilities shared by the k-means kernels: CUDA errors as Status,
// RAII owners for device memory, pinned host memory, streams and events,
// programmatic dependent launch.
// Included only from .cu files.
//
// Thread safety: the owners are movable values with no shared state.

#ifndef QUIVER_KERNELS_CUDA_CUDA_UTIL_H_
#define QUIVER_KERNELS_CUDA_CUDA_UTIL_H_

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "quiver/status.h"

namespace quiver::kernels::cuda {

// Maps a CUDA error to a Status: out of memory -> ResourceExhausted, no
// device / no kernel image -> NotSupported, anything else -> IOError.
inline Status StatusFromCuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::OK();
  std::string msg = std::string("CUDA ") + what + ": " +
                    cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
                    ")";
  switch (err) {
    case cudaErrorMemoryAllocation:
      return Status::ResourceExhausted(msg);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDevice:
      return Status::NotSupported(msg);
    default:
      return Status::IOError(msg);
  }
}

#define QUIVER_CUDA_STR2(x) #x
#define QUIVER_CUDA_STR(x) QUIVER_CUDA_STR2(x)

// Evaluates a CUDA runtime call; returns its error as a Status on failure.
#define QUIVER_CUDA_RETURN(call)                                           \
  do {                                                                     \
    cudaError_t quiver_err_ = (call);                                      \
    if (quiver_err_ != cudaSuccess) {                                      \
      return ::quiver::kernels::cuda::StatusFromCuda(                      \
          quiver_err_, #call " at " __FILE__ ":" QUIVER_CUDA_STR(__LINE__)); \
    }                                                                      \
  } while (0)

// Checks the launch that just happened on this thread.
#define QUIVER_CUDA_LAUNCH_CHECK() QUIVER_CUDA_RETURN(cudaGetLastError())

#define QUIVER_RETURN_IF_ERROR(expr)      \
  do {                                    \
    ::quiver::Status quiver_s_ = (expr);  \
    if (!quiver_s_.ok()) return quiver_s_; \
  } while (0)

// Owns a device allocation of `count` elements of T (uninitialised).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { Reset(); }

  // Frees any previous allocation, then allocates `count` elements.
  Status Allocate(size_t count) {
    Reset();
    if (count == 0) return Status::OK();
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, count * sizeof(T));
    if (err != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free allocation error
      return StatusFromCuda(err, ("cudaMalloc of " +
                                  std::to_string(count * sizeof(T)) + " bytes")
                                     .c_str());
    }
    ptr_ = static_cast<T*>(p);
    count_ = count;
    return Status::OK();
  }
  void Reset() {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
    ptr_ = nullptr;
    count_ = 0;
  }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Owns page-locked host memory.
template <typename T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  ~PinnedBuffer() {
    if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
  }
  Status Allocate(size_t count) {
    if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
    ptr_ = nullptr;
    count_ = 0;
    if (count == 0) return Status::OK();
    void* p = nullptr;
    cudaError_t err = cudaMallocHost(&p, count * sizeof(T));
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return StatusFromCuda(err, "cudaMallocHost");
    }
    ptr_ = static_cast<T*>(p);
    count_ = count;
    return Status::OK();
  }
  T* get() const { return ptr_; }
  size_t size() const { return count_; }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Registers an existing host range as page-locked for the owner's lifetime.
class HostRegistration {
 public:
  HostRegistration() = default;
  HostRegistration(const HostRegistration&) = delete;
  HostRegistration& operator=(const HostRegistration&) = delete;
  ~HostRegistration() {
    if (ptr_ != nullptr) (void)cudaHostUnregister(ptr_);
  }
  // Returns false (and leaves the range unregistered) when the driver refuses.
  bool Register(const void* ptr, size_t bytes) {
    void* p = const_cast<void*>(ptr);
    // Portable: pinned for every GPU, so that the GPUs of a multi-GPU run
    // all stream their shares of one registered range.
    cudaError_t err =
        cudaHostRegister(p, bytes, cudaHostRegisterReadOnly | cudaHostRegisterPortable);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      err = cudaHostRegister(p, bytes, cudaHostRegisterPortable);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    ptr_ = p;
    return true;
  }

 private:
  void* ptr_ = nullptr;
};

class Stream {
 public:
  Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  ~Stream() {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
  }
  Status Create() {
    QUIVER_CUDA_RETURN(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
    return Status::OK();
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  ~Event() {
    if (e_ != nullptr) (void)cudaEventDestroy(e_);
  }
  Status Create(bool timing = false) {
    QUIVER_CUDA_RETURN(cudaEventCreateWithFlags(
        &e_, timing ? cudaEventDefault : cudaEventDisableTiming));
    return Status::OK();
  }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// Makes `device` current for the owner's lifetime, then restores the
// previous one. A failure to switch shows up as the next call's error.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    (void)cudaGetDevice(&previous_);
    if (device != previous_) (void)cudaSetDevice(device);
  }
  ~DeviceGuard() { (void)cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

inline size_t CeilDiv(size_t a, size_t b) { return (a + b - 1) / b; }
inline size_t RoundUp(size_t a, size_t b) { return CeilDiv(a, b) * b; }

// ---- Programmatic dependent launch (sm_90)
// A kernel launched by LaunchAfterPrior may start while the kernel before
// it in the stream is still running: once every block of that one has
// called AllowNextKernel (or exited). So it must call WaitForPriorKernels,
// which returns when the earlier kernels are complete and their writes
// visible, before it touches memory they use, and on every path: a kernel
// that exits without waiting may finish before the one it follows, and the
// kernel after it would no longer be ordered after that one. Both calls are
// no-ops for a kernel launched the usual way.
__device__ __forceinline__ void WaitForPriorKernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void AllowNextKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

struct KernelShape {
  dim3 grid;
  dim3 block;
  size_t smem_bytes = 0;
  bool cooperative = false;  // all blocks resident at once (grid barriers)
};

// kernel<<<shape, stream>>>(args...), as a programmatic dependent launch.
template <typename... Params, typename... Args>
Status LaunchAfterPrior(const KernelShape& shape, cudaStream_t stream,
                        void (*kernel)(Params...), Args&&... args) {
  cudaLaunchAttribute attrs[2];
  unsigned count = 0;
  attrs[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attrs[count++].val.programmaticStreamSerializationAllowed = 1;
  if (shape.cooperative) {
    attrs[count].id = cudaLaunchAttributeCooperative;
    attrs[count++].val.cooperative = 1;
  }
  cudaLaunchConfig_t config{};
  config.gridDim = shape.grid;
  config.blockDim = shape.block;
  config.dynamicSmemBytes = shape.smem_bytes;
  config.stream = stream;
  config.attrs = attrs;
  config.numAttrs = count;
  QUIVER_CUDA_RETURN(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
  return Status::OK();
}

}  // namespace quiver::kernels::cuda

#endif  // QUIVER_KERNELS_CUDA_CUDA_UTIL_H_
