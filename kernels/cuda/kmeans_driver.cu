// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The Lloyd loop on the GPU: plans memory (resident or streamed), prepares
// the points (conversion, norms, normalisation for cosine), initialises the
// centroids, then enqueues iterations (assign -> sort -> reduce -> finalize
// -> convergence test) without waiting for the device, reading the
// objective back only every `sync_every` iterations. The device stops
// itself at the iteration that converged (kernels of later iterations
// return at once), so the result is the same whatever `sync_every` is.
//
// Streaming: chunks of host points go to the device on two streams in turn
// (copy of chunk c + 1 overlaps the compute of chunk c); each chunk is
// assigned, sorted and reduced into the shared sums as soon as it lands.
// Pinned memory is used when the caller's buffer is (or can be made)
// page-locked; otherwise two pinned bounce buffers.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <unordered_set>
#include <vector>

#include "kernels/cpu/kmeans_cpu.h"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_cuda_ex.h"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels {
namespace {

using cuda::Arith;
using cuda::CeilDiv;
using cuda::DeviceBuffer;
using cuda::Elem;
using cuda::Event;
using cuda::RoundUp;
using cuda::Stream;

Arith ArithOf(KMeansPrecision p) {
  switch (p) {
    case KMeansPrecision::kTf32:
      return Arith::kTf32;
    case KMeansPrecision::kFp16:
      return Arith::kF16;
    case KMeansPrecision::kBf16:
      return Arith::kBf16;
    case KMeansPrecision::kFp32:
    default:
      return Arith::kTf32x3;
  }
}

Elem ElemOfInput(KMeansInput in) {
  return in == KMeansInput::kF16 ? Elem::kF16
         : in == KMeansInput::kBf16 ? Elem::kBf16
                                    : Elem::kF32;
}

int KeyBits(size_t keys) {
  int b = 1;
  while (b < 32 && (size_t{1} << b) < keys) ++b;
  return b;
}

float HostToFloat(const void* p, Elem e, size_t i) {
  switch (e) {
    case Elem::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case Elem::kBf16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// Working buffers of one chunk in flight.
struct Slot {
  Stream stream;
  Event done;
  Event bounce_free;
  DeviceBuffer<uint8_t> raw;
  DeviceBuffer<uint8_t> x;
  DeviceBuffer<float> xnorm;
  DeviceBuffer<uint32_t> keys_sorted;
  DeviceBuffer<uint32_t> idx_sorted;
  DeviceBuffer<uint8_t> sort_temp;
  cuda::PinnedBuffer<uint8_t> bounce;
};

class Run {
 public:
  Run(const KMeansOptions& o, const void* data, KMeansInput input, size_t n,
      size_t d, size_t k, size_t batch, const KMeansCudaConfig& cfg)
      : o_(o), data_(data), n_(n), d_(d), k_(k), batch_(batch), cfg_(cfg) {
    arith_ = ArithOf(o.precision);
    xe_ = cuda::ArithElem(arith_);
    eb_ = cuda::ElemBytes(xe_);
    in_e_ = ElemOfInput(input);
    in_b_ = cuda::ElemBytes(in_e_);
    ld_ = RoundUp(d, 16 / eb_);
    kpad_ = RoundUp(k, cuda::kAssignTileN);
    l2_ = o.metric == Metric::kL2;
    normalize_ = o.metric == Metric::kCosine;
    key_bits_ = KeyBits(batch * k);
    rows_ = batch * n;
  }

  Status Execute(KMeansResult* results, KMeansCudaTimings* timings);

 private:
  Status Allocate();
  Status PreparePoints();
  Status InitCentroids();
  Status EnqueueIteration(int it);
  Status Upload(Slot& slot, size_t off, size_t rows);
  Status EnqueueChunk(Slot& slot, size_t off, size_t rows, double* obj);
  Status FinalAssign();
  Status Collect(KMeansResult* results);

  const KMeansOptions& o_;
  const void* data_;
  size_t n_, d_, k_, batch_;
  KMeansCudaConfig cfg_;
  Arith arith_;
  Elem xe_, in_e_;
  int eb_, in_b_;
  size_t ld_, kpad_, rows_;
  bool l2_, normalize_;
  int key_bits_;

  bool streamed_ = false;
  bool pinned_ = true;
  size_t chunk_ = 0;
  double streamed_bytes_ = 0;

  Stream main_;
  Slot slots_[2];
  Event iter_start_, t_begin_, t_setup_, t_end_;
  cuda::HostRegistration registration_;

  DeviceBuffer<float> master_, cbias_, sums_;
  DeviceBuffer<uint8_t> ckern_;
  DeviceBuffer<int> counts_, donor_, empties_, nonfinite_;
  DeviceBuffer<double> objective_;
  DeviceBuffer<cuda::DeviceState> state_;
  DeviceBuffer<uint32_t> labels_, iota_;
  // Resident points (unless used in place).
  DeviceBuffer<uint8_t> x_res_;
  DeviceBuffer<float> xnorm_res_;
  DeviceBuffer<float> dist_;  // resident: per point, for re-seeding
  const void* x_ = nullptr;  // resident points in the kernel layout
};

Status Run::Allocate() {
  QUIVER_RETURN_IF_ERROR(main_.Create());
  QUIVER_RETURN_IF_ERROR(t_begin_.Create(true));
  QUIVER_RETURN_IF_ERROR(t_setup_.Create(true));
  QUIVER_RETURN_IF_ERROR(t_end_.Create(true));
  QUIVER_RETURN_IF_ERROR(iter_start_.Create());
  QUIVER_CUDA_RETURN(cudaEventRecord(t_begin_.get(), main_.get()));

  const size_t kk = batch_ * k_;
  const int iters = o_.max_iterations;
  QUIVER_RETURN_IF_ERROR(master_.Allocate(kk * d_));
  QUIVER_RETURN_IF_ERROR(sums_.Allocate(kk * d_));
  QUIVER_RETURN_IF_ERROR(counts_.Allocate(kk));
  QUIVER_RETURN_IF_ERROR(ckern_.Allocate(batch_ * kpad_ * ld_ * eb_));
  QUIVER_RETURN_IF_ERROR(cbias_.Allocate(batch_ * kpad_));
  QUIVER_RETURN_IF_ERROR(donor_.Allocate(batch_));
  QUIVER_RETURN_IF_ERROR(empties_.Allocate(static_cast<size_t>(iters) * batch_));
  QUIVER_RETURN_IF_ERROR(objective_.Allocate(static_cast<size_t>(iters) * batch_));
  QUIVER_RETURN_IF_ERROR(state_.Allocate(1));
  QUIVER_RETURN_IF_ERROR(nonfinite_.Allocate(1));
  QUIVER_RETURN_IF_ERROR(labels_.Allocate(rows_));
  cudaStream_t s = main_.get();
  QUIVER_CUDA_RETURN(cudaMemsetAsync(sums_.get(), 0, sums_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(counts_.get(), 0, counts_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(ckern_.get(), 0, ckern_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(empties_.get(), 0, empties_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(objective_.get(), 0, objective_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(state_.get(), 0, state_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(nonfinite_.get(), 0, nonfinite_.bytes(), s));
  std::vector<float> inf(batch_ * kpad_, std::numeric_limits<float>::infinity());
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(cbias_.get(), inf.data(), inf.size() * sizeof(float),
                                     cudaMemcpyHostToDevice, s));
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));  // `inf` dies here

  // Resident or streamed?
  size_t free_b = 0, total_b = 0;
  QUIVER_CUDA_RETURN(cudaMemGetInfo(&free_b, &total_b));
  const size_t budget = cfg_.device_memory_budget ? cfg_.device_memory_budget
                                                  : free_b / 10 * 9;
  size_t sort_temp = 0;
  QUIVER_RETURN_IF_ERROR(cuda::SortTempBytes(rows_, key_bits_, &sort_temp));
  const size_t resident_bytes = rows_ * (ld_ * eb_ + 4 + 12) + sort_temp;
  streamed_ = !o_.data_on_device &&
              (cfg_.force_streaming || resident_bytes > budget);
  if (streamed_ && batch_ != 1) {
    return Status::NotSupported("k-means gpu: batched problems must be resident");
  }
  const size_t per_row = d_ * in_b_ + ld_ * eb_ + 4 + 12 + 8;
  if (streamed_) {
    chunk_ = cfg_.chunk_points ? cfg_.chunk_points
                               : std::max<size_t>(4096, budget / 8 / per_row);
  } else {
    // Host data is uploaded through one slot, chunk by chunk.
    chunk_ = cfg_.chunk_points ? cfg_.chunk_points
                               : std::max<size_t>(4096, (size_t{256} << 20) / (d_ * in_b_));
  }
  chunk_ = std::min(chunk_, rows_);
  const size_t sorted_items = streamed_ ? chunk_ : rows_;
  QUIVER_RETURN_IF_ERROR(iota_.Allocate(sorted_items));
  QUIVER_RETURN_IF_ERROR(cuda::LaunchIota(iota_.get(), sorted_items, s));

  const int nslots = streamed_ ? 2 : 1;
  for (int i = 0; i < nslots; ++i) {
    Slot& sl = slots_[i];
    QUIVER_RETURN_IF_ERROR(sl.stream.Create());
    QUIVER_RETURN_IF_ERROR(sl.done.Create());
    QUIVER_RETURN_IF_ERROR(sl.bounce_free.Create());
    if (streamed_) {
      QUIVER_RETURN_IF_ERROR(sl.x.Allocate(chunk_ * ld_ * eb_));
      QUIVER_RETURN_IF_ERROR(sl.xnorm.Allocate(chunk_));
      QUIVER_RETURN_IF_ERROR(sl.keys_sorted.Allocate(chunk_));
      QUIVER_RETURN_IF_ERROR(sl.idx_sorted.Allocate(chunk_));
      size_t tb = 0;
      QUIVER_RETURN_IF_ERROR(cuda::SortTempBytes(chunk_, key_bits_, &tb));
      QUIVER_RETURN_IF_ERROR(sl.sort_temp.Allocate(tb));
    }
    if (!o_.data_on_device) {
      QUIVER_RETURN_IF_ERROR(sl.raw.Allocate(chunk_ * d_ * in_b_));
    }
  }
  if (!streamed_) {
    Slot& sl = slots_[0];
    QUIVER_RETURN_IF_ERROR(sl.keys_sorted.Allocate(rows_));
    QUIVER_RETURN_IF_ERROR(sl.idx_sorted.Allocate(rows_));
    QUIVER_RETURN_IF_ERROR(sl.sort_temp.Allocate(sort_temp));
    QUIVER_RETURN_IF_ERROR(dist_.Allocate(rows_));
  }
  return Status::OK();
}

Status Run::PreparePoints() {
  cudaStream_t s = main_.get();
  if (o_.data_on_device) {
    const bool in_place = in_e_ == xe_ && !normalize_ && ld_ == d_ &&
                          reinterpret_cast<uintptr_t>(data_) % 16 == 0;
    if (l2_) QUIVER_RETURN_IF_ERROR(xnorm_res_.Allocate(rows_));
    if (in_place) {
      x_ = data_;
      QUIVER_RETURN_IF_ERROR(cuda::LaunchConvertRows(
          data_, in_e_, d_, rows_, d_, nullptr, xe_, ld_, false,
          l2_ ? xnorm_res_.get() : nullptr, nonfinite_.get(), s));
    } else {
      QUIVER_RETURN_IF_ERROR(x_res_.Allocate(rows_ * ld_ * eb_));
      x_ = x_res_.get();
      QUIVER_RETURN_IF_ERROR(cuda::LaunchConvertRows(
          data_, in_e_, d_, rows_, d_, x_res_.get(), xe_, ld_, normalize_,
          l2_ ? xnorm_res_.get() : nullptr, nonfinite_.get(), s));
    }
    int bad = 0;
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(&bad, nonfinite_.get(), sizeof(int),
                                       cudaMemcpyDeviceToHost, s));
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
    if (bad) {
      return Status::InvalidArgument("k-means gpu: a point has a component that is not finite");
    }
    return Status::OK();
  }
  // Host data: find out whether it is page-locked; try to make it so.
  const size_t bytes = rows_ * d_ * in_b_;
  cudaPointerAttributes attr{};
  cudaError_t err = cudaPointerGetAttributes(&attr, data_);
  if (err != cudaSuccess) (void)cudaGetLastError();
  const bool already = err == cudaSuccess && attr.type == cudaMemoryTypeHost;
  pinned_ = already || (streamed_ && registration_.Register(data_, bytes));
  if (streamed_ && !pinned_) {
    for (Slot& sl : slots_) {
      QUIVER_RETURN_IF_ERROR(sl.bounce.Allocate(chunk_ * d_ * in_b_));
    }
  }
  if (streamed_) return Status::OK();

  // Resident: upload through slot 0 in chunks, converting on the way.
  QUIVER_RETURN_IF_ERROR(x_res_.Allocate(rows_ * ld_ * eb_));
  x_ = x_res_.get();
  if (l2_) QUIVER_RETURN_IF_ERROR(xnorm_res_.Allocate(rows_));
  Slot& sl = slots_[0];
  for (size_t off = 0; off < rows_; off += chunk_) {
    const size_t rows = std::min(chunk_, rows_ - off);
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(
        sl.raw.get(), static_cast<const uint8_t*>(data_) + off * d_ * in_b_,
        rows * d_ * in_b_, cudaMemcpyHostToDevice, s));
    QUIVER_RETURN_IF_ERROR(cuda::LaunchConvertRows(
        sl.raw.get(), in_e_, d_, rows, d_, x_res_.get() + off * ld_ * eb_, xe_,
        ld_, normalize_, l2_ ? xnorm_res_.get() + off : nullptr, nullptr, s));
  }
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
  sl.raw.Reset();
  return Status::OK();
}

Status Run::InitCentroids() {
  cudaStream_t s = main_.get();
  const size_t kk = batch_ * k_;
  if (o_.init == KMeansInit::kGiven) {
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(master_.get(), o_.initial_centroids,
                                       kk * d_ * sizeof(float),
                                       cudaMemcpyHostToDevice, s));
  } else if (!o_.data_on_device) {
    // The shared host initialisation, on the points the CPU path would see.
    std::vector<float> conv;
    const float* host = static_cast<const float*>(data_);
    if (in_e_ != Elem::kF32 || normalize_) {
      conv.resize(n_ * d_);
      for (size_t i = 0; i < n_ * d_; ++i) conv[i] = HostToFloat(data_, in_e_, i);
      if (normalize_) {
        for (size_t r = 0; r < n_; ++r) {
          double ss = 0;
          for (size_t j = 0; j < d_; ++j) ss += double(conv[r * d_ + j]) * conv[r * d_ + j];
          if (ss > 0) {
            const float inv = static_cast<float>(1.0 / std::sqrt(ss));
            for (size_t j = 0; j < d_; ++j) conv[r * d_ + j] *= inv;
          }
        }
      }
      host = conv.data();
    }
    std::vector<float> c(k_ * d_);
    QUIVER_RETURN_IF_ERROR(kernels::InitCentroids(o_, host, n_, d_, k_, c.data()));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(master_.get(), c.data(), c.size() * sizeof(float),
                                       cudaMemcpyHostToDevice, s));
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));  // `c` dies here
  } else if (o_.init == KMeansInit::kRandom) {
    std::mt19937_64 rng(o_.seed);
    std::vector<uint32_t> idx;
    idx.reserve(kk);
    for (size_t b = 0; b < batch_; ++b) {
      // Floyd's algorithm: k distinct indices in [0, n).
      std::unordered_set<uint64_t> chosen;
      std::vector<uint32_t> pick;
      for (size_t j = n_ - k_; j < n_; ++j) {
        const uint64_t t = std::uniform_int_distribution<uint64_t>(0, j)(rng);
        if (!chosen.insert(t).second) {
          chosen.insert(j);
          pick.push_back(static_cast<uint32_t>(j));
        } else {
          pick.push_back(static_cast<uint32_t>(t));
        }
      }
      for (uint32_t p : pick) idx.push_back(static_cast<uint32_t>(b * n_ + p));
    }
    DeviceBuffer<uint32_t> didx;
    QUIVER_RETURN_IF_ERROR(didx.Allocate(kk));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(didx.get(), idx.data(), kk * sizeof(uint32_t),
                                       cudaMemcpyHostToDevice, s));
    QUIVER_RETURN_IF_ERROR(cuda::LaunchGatherRows(x_, xe_, ld_, d_, didx.get(), kk,
                                                  master_.get(), s));
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
  } else {
    if (batch_ != 1) {
      return Status::NotSupported("k-means gpu: batched k-means++ is not supported");
    }
    QUIVER_RETURN_IF_ERROR(cuda::KMeansPlusPlusDevice(x_, xe_, ld_, n_, d_, k_, o_.seed,
                                                      master_.get(), s));
  }
  return cuda::LaunchLoadCentroids(master_.get(), static_cast<int>(batch_),
                                   static_cast<int>(k_), d_, ckern_.get(), arith_,
                                   ld_, static_cast<int>(kpad_), cbias_.get(), l2_,
                                   o_.metric != Metric::kL2, s);
}

cuda::AssignArgs MakeAssign(const void* x, size_t n, int batch, const void* c,
                            const float* cbias, size_t ld, size_t kpad, size_t k,
                            Metric metric, const float* xnorm, uint32_t* labels,
                            double* obj, const cuda::DeviceState* state) {
  cuda::AssignArgs a;
  a.x = x;
  a.n = n;
  a.batch = batch;
  a.c = c;
  a.cbias = cbias;
  a.ld = ld;
  a.kpad = static_cast<int>(kpad);
  a.k = static_cast<int>(k);
  a.alpha = metric == Metric::kL2 ? -2.f : -1.f;
  a.metric = static_cast<int>(metric);
  a.xnorm = xnorm;
  a.labels = labels;
  a.objective = obj;
  a.state = state;
  return a;
}

Status Run::Upload(Slot& sl, size_t off, size_t rows) {
  cudaStream_t s = sl.stream.get();
  const size_t bytes = rows * d_ * in_b_;
  const uint8_t* src = static_cast<const uint8_t*>(data_) + off * d_ * in_b_;
  if (pinned_) {
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(sl.raw.get(), src, bytes, cudaMemcpyHostToDevice, s));
  } else {
    QUIVER_CUDA_RETURN(cudaEventSynchronize(sl.bounce_free.get()));
    std::memcpy(sl.bounce.get(), src, bytes);
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(sl.raw.get(), sl.bounce.get(), bytes,
                                       cudaMemcpyHostToDevice, s));
    QUIVER_CUDA_RETURN(cudaEventRecord(sl.bounce_free.get(), s));
  }
  streamed_bytes_ += static_cast<double>(bytes);
  return cuda::LaunchConvertRows(sl.raw.get(), in_e_, d_, rows, d_, sl.x.get(), xe_, ld_,
                                 normalize_, l2_ ? sl.xnorm.get() : nullptr, nullptr, s);
}

Status Run::EnqueueChunk(Slot& sl, size_t off, size_t rows, double* obj) {
  cudaStream_t s = sl.stream.get();
  QUIVER_RETURN_IF_ERROR(Upload(sl, off, rows));
  QUIVER_RETURN_IF_ERROR(cuda::LaunchAssign(
      arith_, MakeAssign(sl.x.get(), rows, 1, ckern_.get(), cbias_.get(), ld_, kpad_, k_,
                         o_.metric, sl.xnorm.get(), labels_.get() + off, obj, state_.get()),
      s));
  QUIVER_RETURN_IF_ERROR(cuda::SortByCluster(labels_.get() + off, sl.keys_sorted.get(),
                                             iota_.get(), sl.idx_sorted.get(), rows,
                                             key_bits_, sl.sort_temp.get(),
                                             sl.sort_temp.size(), s));
  return cuda::LaunchReduceSorted(sl.x.get(), xe_, ld_, d_, sl.keys_sorted.get(),
                                  sl.idx_sorted.get(), rows, sums_.get(), counts_.get(),
                                  state_.get(), s);
}

Status Run::EnqueueIteration(int it) {
  cudaStream_t s = main_.get();
  double* obj = objective_.get() + static_cast<size_t>(it) * batch_;
  const int b = static_cast<int>(batch_);
  if (!streamed_) {
    Slot& sl = slots_[0];
    cuda::AssignArgs a = MakeAssign(x_, n_, b, ckern_.get(), cbias_.get(), ld_, kpad_, k_,
                                    o_.metric, xnorm_res_.get(), labels_.get(), obj,
                                    state_.get());
    a.dist = dist_.get();
    QUIVER_RETURN_IF_ERROR(cuda::LaunchAssign(arith_, a, s));
    QUIVER_RETURN_IF_ERROR(cuda::SortByCluster(labels_.get(), sl.keys_sorted.get(),
                                               iota_.get(), sl.idx_sorted.get(), rows_,
                                               key_bits_, sl.sort_temp.get(),
                                               sl.sort_temp.size(), s));
    QUIVER_RETURN_IF_ERROR(cuda::LaunchReduceSorted(
        x_, xe_, ld_, d_, sl.keys_sorted.get(), sl.idx_sorted.get(), rows_, sums_.get(),
        counts_.get(), state_.get(), s));
    QUIVER_RETURN_IF_ERROR(cuda::LaunchReseedEmpty(
        counts_.get(), sums_.get(), b, static_cast<int>(k_), n_, d_, sl.keys_sorted.get(),
        sl.idx_sorted.get(), dist_.get(), x_, xe_, ld_, labels_.get(),
        empties_.get() + static_cast<size_t>(it) * batch_, donor_.get(), state_.get(), s));
  } else {
    QUIVER_CUDA_RETURN(cudaEventRecord(iter_start_.get(), s));
    for (Slot& sl : slots_) {
      QUIVER_CUDA_RETURN(cudaStreamWaitEvent(sl.stream.get(), iter_start_.get(), 0));
    }
    size_t c = 0;
    for (size_t off = 0; off < n_; off += chunk_, ++c) {
      QUIVER_RETURN_IF_ERROR(EnqueueChunk(slots_[c % 2], off, std::min(chunk_, n_ - off), obj));
    }
    for (Slot& sl : slots_) {
      QUIVER_CUDA_RETURN(cudaEventRecord(sl.done.get(), sl.stream.get()));
      QUIVER_CUDA_RETURN(cudaStreamWaitEvent(s, sl.done.get(), 0));
    }
  }
  if (streamed_) {  // resident runs: the re-seed kernel wrote donor_
    QUIVER_RETURN_IF_ERROR(cuda::LaunchClusterStats(
        counts_.get(), b, static_cast<int>(k_), donor_.get(),
        empties_.get() + static_cast<size_t>(it) * batch_, state_.get(), s));
  }
  QUIVER_RETURN_IF_ERROR(cuda::LaunchFinalizeCentroids(
      sums_.get(), counts_.get(), donor_.get(), b, static_cast<int>(k_), d_,
      o_.metric != Metric::kL2, o_.seed, it, master_.get(), ckern_.get(), arith_, ld_,
      static_cast<int>(kpad_), cbias_.get(), l2_, state_.get(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(sums_.get(), 0, sums_.bytes(), s));
  QUIVER_CUDA_RETURN(cudaMemsetAsync(counts_.get(), 0, counts_.bytes(), s));
  return cuda::LaunchCheckConvergence(objective_.get(), it, b, o_.tolerance,
                                      state_.get(), s);
}

// One more assignment against the returned centroids, so that the labels
// match them (as on the CPU path).
Status Run::FinalAssign() {
  cudaStream_t s = main_.get();
  if (!streamed_) {
    return cuda::LaunchAssign(
        arith_, MakeAssign(x_, n_, static_cast<int>(batch_), ckern_.get(), cbias_.get(), ld_,
                           kpad_, k_, o_.metric, xnorm_res_.get(), labels_.get(), nullptr,
                           nullptr),
        s);
  }
  QUIVER_CUDA_RETURN(cudaEventRecord(iter_start_.get(), s));
  for (Slot& sl : slots_) {
    QUIVER_CUDA_RETURN(cudaStreamWaitEvent(sl.stream.get(), iter_start_.get(), 0));
  }
  const double counted = streamed_bytes_;  // the final pass is not a Lloyd pass
  size_t c = 0;
  for (size_t off = 0; off < n_; off += chunk_, ++c) {
    Slot& sl = slots_[c % 2];
    const size_t rows = std::min(chunk_, n_ - off);
    QUIVER_RETURN_IF_ERROR(Upload(sl, off, rows));
    QUIVER_RETURN_IF_ERROR(cuda::LaunchAssign(
        arith_, MakeAssign(sl.x.get(), rows, 1, ckern_.get(), cbias_.get(), ld_, kpad_, k_,
                           o_.metric, sl.xnorm.get(), labels_.get() + off, nullptr, nullptr),
        sl.stream.get()));
  }
  streamed_bytes_ = counted;
  for (Slot& sl : slots_) {
    QUIVER_CUDA_RETURN(cudaEventRecord(sl.done.get(), sl.stream.get()));
    QUIVER_CUDA_RETURN(cudaStreamWaitEvent(s, sl.done.get(), 0));
  }
  return Status::OK();
}

Status Run::Collect(KMeansResult* results) {
  cudaStream_t s = main_.get();
  cuda::DeviceState st{};
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(&st, state_.get(), sizeof(st), cudaMemcpyDeviceToHost, s));
  std::vector<uint32_t> labels(rows_);
  std::vector<float> master(batch_ * k_ * d_);
  std::vector<double> obj(objective_.size());
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(labels.data(), labels_.get(), rows_ * sizeof(uint32_t),
                                     cudaMemcpyDeviceToHost, s));
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(master.data(), master_.get(), master_.bytes(),
                                     cudaMemcpyDeviceToHost, s));
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(obj.data(), objective_.get(), objective_.bytes(),
                                     cudaMemcpyDeviceToHost, s));
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
  for (size_t b = 0; b < batch_; ++b) {
    KMeansResult& r = results[b];
    r.centroids.assign(master.begin() + b * k_ * d_, master.begin() + (b + 1) * k_ * d_);
    r.assignments.resize(n_);
    const uint32_t base = static_cast<uint32_t>(b * k_);
    for (size_t i = 0; i < n_; ++i) r.assignments[i] = labels[b * n_ + i] - base;
    r.objective.clear();
    for (int it = 0; it < st.iterations; ++it) r.objective.push_back(obj[it * batch_ + b]);
    r.iterations = st.iterations;
    r.converged = st.converged != 0;
    r.device = Device::kGpu;
  }
  return Status::OK();
}

Status Run::Execute(KMeansResult* results, KMeansCudaTimings* timings) {
  QUIVER_RETURN_IF_ERROR(Allocate());
  QUIVER_RETURN_IF_ERROR(PreparePoints());
  QUIVER_RETURN_IF_ERROR(InitCentroids());
  cudaStream_t s = main_.get();
  QUIVER_CUDA_RETURN(cudaEventRecord(t_setup_.get(), s));

  const bool progress = static_cast<bool>(o_.progress);
  // A streamed iteration is long: syncing each costs nothing and avoids
  // streaming iterations that would be skipped.
  const int sync_every = (progress || streamed_) ? 1 : std::max(1, cfg_.sync_every);
  int reported = 0;
  std::vector<double> obj(objective_.size());
  std::vector<int> empties(empties_.size());
  for (int it = 0; it < o_.max_iterations; ++it) {
    QUIVER_RETURN_IF_ERROR(EnqueueIteration(it));
    if ((it + 1) % sync_every != 0 && it + 1 != o_.max_iterations) continue;
    cuda::DeviceState st{};
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(&st, state_.get(), sizeof(st), cudaMemcpyDeviceToHost, s));
    if (progress) {
      QUIVER_CUDA_RETURN(cudaMemcpyAsync(obj.data(), objective_.get(), objective_.bytes(),
                                         cudaMemcpyDeviceToHost, s));
      QUIVER_CUDA_RETURN(cudaMemcpyAsync(empties.data(), empties_.get(), empties_.bytes(),
                                         cudaMemcpyDeviceToHost, s));
    }
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
    if (progress) {
      for (; reported < st.iterations; ++reported) {
        KMeansIterationInfo info;
        info.iteration = reported;
        info.objective = obj[static_cast<size_t>(reported) * batch_];
        info.empty_clusters = empties[static_cast<size_t>(reported) * batch_];
        if (!o_.progress(info)) {
          return Status::Aborted("k-means: stopped by the progress callback");
        }
      }
    }
    if (st.stop) break;
  }
  QUIVER_CUDA_RETURN(cudaEventRecord(t_end_.get(), s));
  QUIVER_RETURN_IF_ERROR(FinalAssign());
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
  QUIVER_RETURN_IF_ERROR(Collect(results));
  if (timings != nullptr) {
    float setup = 0, lloyd = 0;
    QUIVER_CUDA_RETURN(cudaEventElapsedTime(&setup, t_begin_.get(), t_setup_.get()));
    QUIVER_CUDA_RETURN(cudaEventElapsedTime(&lloyd, t_setup_.get(), t_end_.get()));
    timings->setup_ms = setup;
    timings->lloyd_ms = lloyd;
    timings->iterations = results[0].iterations;
    timings->streamed = streamed_;
    timings->h2d_gbps = lloyd > 0 ? streamed_bytes_ / (lloyd * 1e-3) / 1e9 : 0;
  }
  return Status::OK();
}

}  // namespace

bool CudaDeviceAvailable() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

Status KMeansCudaEx(const KMeansOptions& options, const void* data,
                    KMeansInput input, size_t n, size_t d, size_t k,
                    size_t batch, const KMeansCudaConfig& config,
                    KMeansResult* results, KMeansCudaTimings* timings) {
  if (data == nullptr || results == nullptr) {
    return Status::InvalidArgument("k-means gpu: null argument");
  }
  if (d == 0 || k == 0 || n == 0 || batch == 0) {
    return Status::InvalidArgument("k-means gpu: n, d, k and batch must be >= 1");
  }
  if (k > n) {
    return Status::InvalidArgument("k-means gpu: k = " + std::to_string(k) +
                                   " is larger than the number of points n = " +
                                   std::to_string(n));
  }
  if (batch * n > std::numeric_limits<uint32_t>::max() ||
      batch * k > (size_t{1} << 31)) {
    return Status::InvalidArgument("k-means gpu: too many points or clusters for 32-bit ids");
  }
  if (batch > 1 && !options.data_on_device) {
    return Status::InvalidArgument("k-means gpu: batched problems need data on the device");
  }
  if (options.max_iterations < 1) {
    return Status::InvalidArgument("k-means gpu: max_iterations must be >= 1");
  }
  if (options.init == KMeansInit::kGiven && options.initial_centroids == nullptr) {
    return Status::InvalidArgument("k-means gpu: init = kGiven needs initial_centroids");
  }
  int count = 0;
  QUIVER_CUDA_RETURN(cudaGetDeviceCount(&count));
  if (count == 0) return Status::NotSupported("k-means gpu: no CUDA device");
  Run run(options, data, input, n, d, k, batch, config);
  return run.Execute(results, timings);
}

Status KMeansCuda(const KMeansOptions& options, const float* data, size_t n,
                  size_t d, size_t k, KMeansResult* result) {
  return KMeansCudaEx(options, data, KMeansInput::kF32, n, d, k, 1,
                      KMeansCudaConfig(), result, nullptr);
}

}  // namespace quiver::kernels
