// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cuda/collective.h"

#include "kernels/cuda/cuda_util.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#if __has_include(<nccl.h>)
#include <nccl.h>
#define QUIVER_NCCL_HEADER 1
#endif

namespace quiver::kernels::cuda {

#ifdef QUIVER_NCCL_HEADER
namespace {

// The entry points used, resolved once from libnccl.so.2.
struct Nccl {
  decltype(&::ncclCommInitAll) comm_init_all = nullptr;
  decltype(&::ncclAllReduce) all_reduce = nullptr;
  decltype(&::ncclGroupStart) group_start = nullptr;
  decltype(&::ncclGroupEnd) group_end = nullptr;
  decltype(&::ncclGetErrorString) error_string = nullptr;
  decltype(&::ncclCommGetAsyncError) async_error = nullptr;
  decltype(&::ncclCommAbort) abort = nullptr;
  std::string load_error;  // empty when loaded
};

const Nccl& LoadNccl() {
  static const Nccl nccl = [] {
    Nccl n;
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      n.load_error = std::string("NCCL is not available (") + (e ? e : "dlopen failed") + ")";
      return n;
    }
    auto sym = [&](auto* fn, const char* name) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(dlsym(lib, name));
      if (*fn == nullptr && n.load_error.empty()) {
        n.load_error = std::string("NCCL lacks ") + name;
      }
    };
    sym(&n.comm_init_all, "ncclCommInitAll");
    sym(&n.all_reduce, "ncclAllReduce");
    sym(&n.group_start, "ncclGroupStart");
    sym(&n.group_end, "ncclGroupEnd");
    sym(&n.error_string, "ncclGetErrorString");
    sym(&n.async_error, "ncclCommGetAsyncError");
    sym(&n.abort, "ncclCommAbort");
    return n;  // the library stays loaded for the process's lifetime
  }();
  return nccl;
}

Status FromNccl(const Nccl& nccl, ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return Status::OK();
  std::string msg = std::string("NCCL ") + what + ": " + nccl.error_string(r);
  return r == ncclSystemError || r == ncclUnhandledCudaError ? Status::IOError(msg)
                                                             : Status::NotSupported(msg);
}

}  // namespace

struct Collective::Comms {
  std::vector<ncclComm_t> comm;
};

namespace {

// The communicator set of each device list while no run holds it, and the
// GPUs some run holds. Sets are never destroyed: one lives as long as the
// process (destroying at exit would race the CUDA teardown).
struct Pool {
  std::mutex mu;
  std::condition_variable returned;
  std::map<std::vector<int>, std::unique_ptr<Collective::Comms>> idle;
  std::set<int> busy;
};

Pool& ThePool() {
  static auto* pool = new Pool();
  return *pool;
}

void Release(Pool& pool, const std::vector<int>& devices) {
  std::lock_guard lock(pool.mu);
  for (int g : devices) pool.busy.erase(g);
  pool.returned.notify_all();
}

}  // namespace

bool Collective::Available() { return LoadNccl().load_error.empty(); }

Status Collective::Acquire(const std::vector<int>& devices, std::unique_ptr<Collective>* out) {
  out->reset();
  if (devices.size() < 2) return Status::InvalidArgument("a collective needs at least 2 GPUs");
  const Nccl& nccl = LoadNccl();
  if (!nccl.load_error.empty()) return Status::NotSupported(nccl.load_error);
  Pool& pool = ThePool();
  std::unique_ptr<Comms> comms;
  {
    // Wait until none of these GPUs is in another run's team.
    std::unique_lock lock(pool.mu);
    pool.returned.wait(lock, [&] {
      return std::none_of(devices.begin(), devices.end(),
                          [&](int g) { return pool.busy.count(g) != 0; });
    });
    pool.busy.insert(devices.begin(), devices.end());
    auto it = pool.idle.find(devices);
    if (it != pool.idle.end()) {
      comms = std::move(it->second);
      pool.idle.erase(it);
    }
  }
  if (comms == nullptr) {
    comms = std::make_unique<Comms>();
    comms->comm.resize(devices.size());
    int current = 0;
    (void)cudaGetDevice(&current);
    const ncclResult_t r = nccl.comm_init_all(comms->comm.data(),
                                              static_cast<int>(devices.size()), devices.data());
    (void)cudaSetDevice(current);  // NCCL leaves the last GPU current
    if (r != ncclSuccess) {
      Release(pool, devices);
      return FromNccl(nccl, r, "ncclCommInitAll");
    }
  }
  out->reset(new Collective(devices, std::move(comms)));
  return Status::OK();
}

Collective::Collective(std::vector<int> devices, std::unique_ptr<Comms> comms)
    : devices_(std::move(devices)), comms_(std::move(comms)) {}

Collective::~Collective() {
  Pool& pool = ThePool();
  {
    std::lock_guard lock(pool.mu);
    if (failed_) {
      (void)comms_.release();  // aborted, or never reused: it may be stuck
    } else {
      pool.idle[devices_] = std::move(comms_);
    }
  }
  Release(pool, devices_);
}

Status Collective::Wait(const std::vector<cudaStream_t>& streams) {
  const Nccl& nccl = LoadNccl();
  for (;;) {
    bool idle = true;
    cudaError_t gpu_error = cudaSuccess;
    for (size_t g = 0; g < streams.size() && gpu_error == cudaSuccess; ++g) {
      DeviceGuard guard(devices_[g]);
      const cudaError_t e = cudaStreamQuery(streams[g]);
      if (e == cudaErrorNotReady) {
        idle = false;
      } else {
        gpu_error = e;
      }
    }
    ncclResult_t nccl_error = ncclSuccess;
    for (size_t g = 0; g < comms_->comm.size() && nccl_error == ncclSuccess; ++g) {
      ncclResult_t async = ncclSuccess;
      nccl_error = nccl.async_error(comms_->comm[g], &async);
      if (nccl_error == ncclSuccess && async != ncclInProgress) nccl_error = async;
    }
    if (gpu_error != cudaSuccess || nccl_error != ncclSuccess) {
      // Frees the other GPUs' kernels waiting on the failed one's.
      for (ncclComm_t c : comms_->comm) (void)nccl.abort(c);
      comms_->comm.clear();  // freed by the abort
      failed_ = true;
      QUIVER_RETURN_IF_ERROR(StatusFromCuda(gpu_error, "a GPU of the team failed"));
      return FromNccl(nccl, nccl_error, "asynchronous error");
    }
    if (idle) return Status::OK();
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

Status Collective::SumAll(const std::vector<Part>& parts) {
  if (parts.size() != devices_.size()) {
    return Status::InvalidArgument("collective: one part per GPU expected");
  }
  if (comms_->comm.empty()) return Status::Aborted("collective: aborted after a failure");
  const Nccl& nccl = LoadNccl();
  QUIVER_RETURN_IF_ERROR(FromNccl(nccl, nccl.group_start(), "ncclGroupStart"));
  ncclResult_t r = ncclSuccess;
  for (size_t g = 0; g < parts.size(); ++g) {
    const Part& p = parts[g];
    const auto sum = [&](void* buf, size_t count, ncclDataType_t type) {
      if (r != ncclSuccess || count == 0) return;
      r = nccl.all_reduce(buf, buf, count, type, ncclSum, comms_->comm[g], p.stream);
    };
    sum(p.floats, p.float_count, ncclFloat32);
    sum(p.ints, p.int_count, ncclInt32);
    sum(p.doubles, p.double_count, ncclFloat64);
  }
  const ncclResult_t end = nccl.group_end();  // always closes the group
  failed_ = failed_ || r != ncclSuccess || end != ncclSuccess;
  QUIVER_RETURN_IF_ERROR(FromNccl(nccl, r, "ncclAllReduce"));
  return FromNccl(nccl, end, "ncclGroupEnd");
}

#else  // no nccl.h at build time

struct Collective::Comms {};

bool Collective::Available() { return false; }

Status Collective::Acquire(const std::vector<int>&, std::unique_ptr<Collective>* out) {
  out->reset();
  return Status::NotSupported("quiver was built without NCCL headers: one GPU only");
}
Collective::Collective(std::vector<int> devices, std::unique_ptr<Comms> comms)
    : devices_(std::move(devices)), comms_(std::move(comms)) {}
Collective::~Collective() = default;
Status Collective::Wait(const std::vector<cudaStream_t>&) { return Status::OK(); }
Status Collective::SumAll(const std::vector<Part>&) {
  return Status::NotSupported("quiver was built without NCCL headers");
}

#endif

}  // namespace quiver::kernels::cuda
