// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "kernels/cuda/collective.h"

#include "kernels/cuda/cuda_util.h"

#include <dlfcn.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
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

// The communicator set of each device list, while no run holds it. Never
// destroyed: a set lives as long as the process (destroying at exit would
// race the CUDA teardown).
struct Pool {
  std::mutex mu;
  std::condition_variable returned;
  std::map<std::vector<int>, std::unique_ptr<Collective::Comms>> idle;
  std::set<std::vector<int>> leased;
};

Pool& ThePool() {
  static auto* pool = new Pool();
  return *pool;
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
    std::unique_lock lock(pool.mu);
    pool.returned.wait(lock, [&] { return pool.leased.count(devices) == 0; });
    pool.leased.insert(devices);
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
      std::lock_guard lock(pool.mu);
      pool.leased.erase(devices);
      pool.returned.notify_all();
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
  std::lock_guard lock(pool.mu);
  if (failed_) {
    (void)comms_.release();  // never reused, nor destroyed: it may be stuck
  } else {
    pool.idle[devices_] = std::move(comms_);
  }
  pool.leased.erase(devices_);
  pool.returned.notify_all();
}

Status Collective::SumAll(const std::vector<Part>& parts) {
  if (parts.size() != devices_.size()) {
    return Status::InvalidArgument("collective: one part per GPU expected");
  }
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
Status Collective::SumAll(const std::vector<Part>&) {
  return Status::NotSupported("quiver was built without NCCL headers");
}

#endif

}  // namespace quiver::kernels::cuda
