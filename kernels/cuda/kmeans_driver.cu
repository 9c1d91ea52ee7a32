// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The Lloyd loop on the GPU: plans memory (resident or streamed), prepares
// the points (conversion, norms, normalisation for cosine), initialises the
// centroids, then enqueues iterations (assign -> sort -> reduce -> finalize
// -> convergence test) without waiting for the device, reading the
// objective back only every `sync_every` iterations (one GPU: a batch
// late, with the next batch already enqueued). The device stops
// itself at the iteration that converged (kernels of later iterations
// return at once), so the result is the same whatever `sync_every` is.
//
// Streaming: chunks of host points go to the device on two streams in turn
// (copy of chunk c + 1 overlaps the compute of chunk c); each chunk is
// assigned, sorted and reduced into the shared sums as soon as it lands.
// Pinned memory is used when the caller's buffer is (or can be made)
// page-locked; otherwise two pinned bounce buffers. A chunk's copy waits
// for nothing of the iteration, only its assignment waits for the new
// centroids, so the first copies of an iteration overlap the end of the
// previous one.
//
// Several GPUs (a team): each runs the above on a contiguous shard of the
// points into partial sums, counts and objective, which one NCCL
// all-reduce sums on every GPU (kernels/cuda/collective.h); every GPU then
// runs the same finalisation on the same bits, so the centroids stay
// identical everywhere without being exchanged. A team starts from
// centroids made once on the host, and re-seeds empty clusters the way a
// streamed run does (the farthest-point rule needs every point's distance
// on one GPU).

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <unordered_set>
#include <vector>

#include "kernels/cpu/distance.h"
#include "kernels/cpu/kmeans_cpu.h"
#include "kernels/cuda/collective.h"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_cuda_ex.h"
#include "kernels/cuda/kmeans_kernels.cuh"

namespace quiver::kernels {
namespace {

// Points per GPU below which KMeansOptions::devices = {} does not add a
// GPU: the all-reduce (k x d floats) then costs more than the halved
// assignment saves.
constexpr size_t kMinPointsPerGpu = size_t{1} << 18;

using cuda::Arith;
using cuda::CeilDiv;
using cuda::DeviceBuffer;
using cuda::DeviceGuard;
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

// The host initialisation (kernels::InitCentroids, shared with the CPU
// path) on the points the CPU path would see: n x d host points of element
// type `e`, normalised first for cosine.
Status HostInitCentroids(const KMeansOptions& o, const void* data, Elem e, size_t n,
                         size_t d, size_t k, float* out) {
  std::vector<float> conv;
  const float* host = static_cast<const float*>(data);
  const bool normalize = o.metric == Metric::kCosine;
  if (e != Elem::kF32 || normalize) {
    conv.resize(n * d);
    for (size_t i = 0; i < n * d; ++i) conv[i] = HostToFloat(data, e, i);
    if (normalize) {
      for (size_t r = 0; r < n; ++r) kernels::Normalize(&conv[r * d], d);
    }
    host = conv.data();
  }
  return kernels::InitCentroids(o, host, n, d, k, out);
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

// One GPU's part of a run: its points (all of them, or its shard in a
// team), their buffers and streams, and a replica of the centroids. Every
// method runs with the GPU current (DeviceGuard) and enqueues without
// waiting unless it says so.
class Run {
 public:
  // `in_team`: the partial sums are combined with other GPUs' between
  // EnqueueLocal and EnqueueUpdate.
  Run(const KMeansOptions& o, const void* data, KMeansInput input, size_t n,
      size_t d, size_t k, size_t batch, const KMeansCudaConfig& cfg, int device,
      bool in_team)
      : o_(o), data_(data), n_(n), d_(d), k_(k), batch_(batch), cfg_(cfg),
        device_(device), in_team_(in_team) {
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

  int device() const { return device_; }
  bool streamed() const { return streamed_; }
  double streamed_bytes() const { return streamed_bytes_; }
  cudaStream_t stream() const { return main_.get(); }

  // Buffers, the resident-or-streamed decision, streams (synchronous).
  Status Allocate();
  // Points in the kernel layout (resident) or the pinning (streamed); then
  // the initial centroids.
  Status PreparePoints();
  Status InitCentroids();
  // Iteration `it` up to the partial sums, counts and objective.
  Status EnqueueLocal(int it);
  // What a team sums between EnqueueLocal and EnqueueUpdate.
  cuda::Collective::Part Partials(int it);
  // Empty clusters (a lone resident GPU re-seeds them with the farthest
  // points), new centroids, reset of the sums, convergence test: one kernel.
  Status EnqueueUpdate(int it);
  // Labels against the final centroids.
  Status FinalAssign();
  // Reads the state the device keeps (synchronous); with `progress`, also
  // the objective and empty-cluster counts of every iteration.
  Status ReadState(cuda::DeviceState* st, std::vector<double>* obj,
                   std::vector<int>* empties);
  // The state as of the work enqueued so far: asked for without waiting,
  // then awaited (after more work is enqueued behind it).
  Status AskState();
  Status AwaitState(cuda::DeviceState* st);
  // Copies this GPU's labels into results[b].assignments at `offset`; the
  // lead GPU (`lead`) also sizes them to `total` and writes the centroids,
  // objective and iteration count. Synchronous.
  Status Collect(KMeansResult* results, size_t offset, size_t total, bool lead);
  // Events on this GPU's stream around the Lloyd iterations.
  Status MarkLloydStart();
  Status MarkLloydEnd();
  Status Elapsed(double* setup_ms, double* lloyd_ms);

 private:
  Status Upload(Slot& slot, size_t off, size_t rows);
  Status EnqueueChunk(Slot& slot, size_t off, size_t rows, double* obj);

  const KMeansOptions& o_;
  const void* data_;
  size_t n_, d_, k_, batch_;
  KMeansCudaConfig cfg_;
  int device_;
  bool in_team_;
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
  Event iter_start_, t_begin_, t_setup_, t_end_, state_copied_;
  cuda::PinnedBuffer<cuda::DeviceState> state_host_;
  cuda::HostRegistration registration_;

  DeviceBuffer<float> master_, cbias_, sums_;
  DeviceBuffer<uint8_t> ckern_;
  DeviceBuffer<int> counts_, donor_, empties_, nonfinite_;
  DeviceBuffer<double> objective_;
  DeviceBuffer<cuda::DeviceState> state_;
  DeviceBuffer<uint32_t> labels_;
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
  QUIVER_RETURN_IF_ERROR(state_copied_.Create());
  QUIVER_RETURN_IF_ERROR(state_host_.Allocate(1));
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
    if (!in_team_) QUIVER_RETURN_IF_ERROR(dist_.Allocate(rows_));
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
    std::vector<float> c(k_ * d_);
    QUIVER_RETURN_IF_ERROR(HostInitCentroids(o_, data_, in_e_, n_, d_, k_, c.data()));
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
  // The copy is in flight; the assignment needs this iteration's centroids.
  QUIVER_CUDA_RETURN(cudaStreamWaitEvent(s, iter_start_.get(), 0));
  QUIVER_RETURN_IF_ERROR(cuda::LaunchAssign(
      arith_, MakeAssign(sl.x.get(), rows, 1, ckern_.get(), cbias_.get(), ld_, kpad_, k_,
                         o_.metric, sl.xnorm.get(), labels_.get() + off, obj, state_.get()),
      s));
  QUIVER_RETURN_IF_ERROR(cuda::SortByCluster(labels_.get() + off, sl.keys_sorted.get(),
                                             sl.idx_sorted.get(), rows,
                                             key_bits_, sl.sort_temp.get(),
                                             sl.sort_temp.size(), s));
  return cuda::LaunchReduceSorted(sl.x.get(), xe_, ld_, d_, sl.keys_sorted.get(),
                                  sl.idx_sorted.get(), rows, sums_.get(), counts_.get(),
                                  state_.get(), s);
}

Status Run::EnqueueLocal(int it) {
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
                                               sl.idx_sorted.get(), rows_,
                                               key_bits_, sl.sort_temp.get(),
                                               sl.sort_temp.size(), s));
    return cuda::LaunchReduceSorted(x_, xe_, ld_, d_, sl.keys_sorted.get(), sl.idx_sorted.get(),
                                    rows_, sums_.get(), counts_.get(), state_.get(), s);
  }
  QUIVER_CUDA_RETURN(cudaEventRecord(iter_start_.get(), s));
  size_t c = 0;
  for (size_t off = 0; off < n_; off += chunk_, ++c) {
    QUIVER_RETURN_IF_ERROR(EnqueueChunk(slots_[c % 2], off, std::min(chunk_, n_ - off), obj));
  }
  for (Slot& sl : slots_) {
    QUIVER_CUDA_RETURN(cudaEventRecord(sl.done.get(), sl.stream.get()));
    QUIVER_CUDA_RETURN(cudaStreamWaitEvent(s, sl.done.get(), 0));
  }
  return Status::OK();
}

cuda::Collective::Part Run::Partials(int it) {
  cuda::Collective::Part p;
  p.floats = sums_.get();
  p.float_count = sums_.size();
  p.ints = counts_.get();
  p.int_count = counts_.size();
  p.doubles = objective_.get() + static_cast<size_t>(it) * batch_;
  p.double_count = batch_;
  p.stream = main_.get();
  return p;
}

Status Run::EnqueueUpdate(int it) {
  cuda::UpdateArgs u;
  u.batch = static_cast<int>(batch_);
  u.k = static_cast<int>(k_);
  u.d = d_;
  u.sums = sums_.get();
  u.counts = counts_.get();
  if (!streamed_ && !in_team_) {  // the farthest-point rule needs every point here
    Slot& sl = slots_[0];
    u.keys_sorted = sl.keys_sorted.get();
    u.idx_sorted = sl.idx_sorted.get();
    u.dist = dist_.get();
    u.x = x_;
    u.x_elem = xe_;
    u.labels = labels_.get();
    u.n = n_;
  }
  u.donor = donor_.get();
  u.empties = empties_.get() + static_cast<size_t>(it) * batch_;
  u.spherical = o_.metric != Metric::kL2;
  u.seed = o_.seed;
  u.iteration = it;
  u.master = master_.get();
  u.ckern = ckern_.get();
  u.arith = arith_;
  u.ld = ld_;
  u.kpad = static_cast<int>(kpad_);
  u.cbias = cbias_.get();
  u.l2 = l2_;
  u.objective = objective_.get();
  u.tolerance = o_.tolerance;
  u.state = state_.get();
  return cuda::LaunchUpdateCentroids(u, main_.get());
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

Status Run::ReadState(cuda::DeviceState* st, std::vector<double>* obj,
                      std::vector<int>* empties) {
  cudaStream_t s = main_.get();
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(st, state_.get(), sizeof(*st), cudaMemcpyDeviceToHost, s));
  if (obj != nullptr) {
    obj->resize(objective_.size());
    empties->resize(empties_.size());
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(obj->data(), objective_.get(), objective_.bytes(),
                                       cudaMemcpyDeviceToHost, s));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(empties->data(), empties_.get(), empties_.bytes(),
                                       cudaMemcpyDeviceToHost, s));
  }
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
  return Status::OK();
}

Status Run::AskState() {
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(state_host_.get(), state_.get(), sizeof(cuda::DeviceState),
                                     cudaMemcpyDeviceToHost, main_.get()));
  QUIVER_CUDA_RETURN(cudaEventRecord(state_copied_.get(), main_.get()));
  return Status::OK();
}

Status Run::AwaitState(cuda::DeviceState* st) {
  QUIVER_CUDA_RETURN(cudaEventSynchronize(state_copied_.get()));
  *st = *state_host_.get();
  return Status::OK();
}

Status Run::Collect(KMeansResult* results, size_t offset, size_t total, bool lead) {
  cudaStream_t s = main_.get();
  cuda::DeviceState st{};
  std::vector<uint32_t> labels(rows_);
  std::vector<float> master;
  std::vector<double> obj;
  QUIVER_CUDA_RETURN(cudaMemcpyAsync(labels.data(), labels_.get(), rows_ * sizeof(uint32_t),
                                     cudaMemcpyDeviceToHost, s));
  if (lead) {
    master.resize(batch_ * k_ * d_);
    obj.resize(objective_.size());
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(&st, state_.get(), sizeof(st), cudaMemcpyDeviceToHost, s));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(master.data(), master_.get(), master_.bytes(),
                                       cudaMemcpyDeviceToHost, s));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(obj.data(), objective_.get(), objective_.bytes(),
                                       cudaMemcpyDeviceToHost, s));
  }
  QUIVER_CUDA_RETURN(cudaStreamSynchronize(s));
  for (size_t b = 0; b < batch_; ++b) {
    KMeansResult& r = results[b];
    if (lead) {
      r.centroids.assign(master.begin() + b * k_ * d_, master.begin() + (b + 1) * k_ * d_);
      r.assignments.resize(total);
      r.objective.clear();
      for (int it = 0; it < st.iterations; ++it) r.objective.push_back(obj[it * batch_ + b]);
      r.iterations = st.iterations;
      r.converged = st.converged != 0;
      r.device = Device::kGpu;
    }
    const uint32_t base = static_cast<uint32_t>(b * k_);
    for (size_t i = 0; i < n_; ++i) r.assignments[offset + i] = labels[b * n_ + i] - base;
  }
  return Status::OK();
}

Status Run::MarkLloydStart() {
  QUIVER_CUDA_RETURN(cudaEventRecord(t_setup_.get(), main_.get()));
  return Status::OK();
}

Status Run::MarkLloydEnd() {
  QUIVER_CUDA_RETURN(cudaEventRecord(t_end_.get(), main_.get()));
  return Status::OK();
}

Status Run::Elapsed(double* setup_ms, double* lloyd_ms) {
  float setup = 0, lloyd = 0;
  QUIVER_CUDA_RETURN(cudaEventElapsedTime(&setup, t_begin_.get(), t_setup_.get()));
  QUIVER_CUDA_RETURN(cudaEventElapsedTime(&lloyd, t_setup_.get(), t_end_.get()));
  *setup_ms = setup;
  *lloyd_ms = lloyd;
  return Status::OK();
}

// One GPU's share of the points: `rows` rows from `data` (host, or on
// `device` when the options say data_on_device), rows [offset, offset +
// rows) of the whole.
struct Shard {
  int device = 0;
  const void* data = nullptr;
  size_t rows = 0;
  size_t offset = 0;
};

// A team's common starting centroids, made once on the host from all the
// points (device shards are copied back for it).
Status TeamInitCentroids(const KMeansOptions& o, const std::vector<Shard>& shards,
                         KMeansInput input, size_t n, size_t d, size_t k,
                         std::vector<float>* out) {
  const Elem e = ElemOfInput(input);
  const size_t row_bytes = d * cuda::ElemBytes(e);
  out->resize(k * d);
  if (!o.data_on_device) {  // the shards are consecutive pieces of one array
    return HostInitCentroids(o, shards[0].data, e, n, d, k, out->data());
  }
  std::vector<uint8_t> host(n * row_bytes);
  for (const Shard& sh : shards) {
    DeviceGuard guard(sh.device);
    QUIVER_CUDA_RETURN(cudaMemcpy(host.data() + sh.offset * row_bytes, sh.data,
                                  sh.rows * row_bytes, cudaMemcpyDeviceToHost));
  }
  return HostInitCentroids(o, host.data(), e, n, d, k, out->data());
}

std::vector<cudaStream_t> MainStreams(const std::vector<std::unique_ptr<Run>>& runs) {
  std::vector<cudaStream_t> streams;
  for (const auto& r : runs) streams.push_back(r->stream());
  return streams;
}

// Runs k-means over `shards` (one per GPU, distinct GPUs): one GPU alone,
// or a team whose partial sums meet in an NCCL all-reduce each iteration.
Status Solve(const KMeansOptions& options, const std::vector<Shard>& shards,
             KMeansInput input, size_t n, size_t d, size_t k, size_t batch,
             const KMeansCudaConfig& cfg, KMeansResult* results,
             KMeansCudaTimings* timings) {
  const bool team = shards.size() > 1;
  std::unique_ptr<cuda::Collective> collective;
  KMeansOptions o = options;
  std::vector<float> init;
  if (team) {
    std::vector<int> devices;
    for (const Shard& sh : shards) devices.push_back(sh.device);
    QUIVER_RETURN_IF_ERROR(cuda::Collective::Acquire(devices, &collective));
    if (o.init != KMeansInit::kGiven) {
      QUIVER_RETURN_IF_ERROR(TeamInitCentroids(options, shards, input, n, d, k, &init));
      o.init = KMeansInit::kGiven;
      o.initial_centroids = init.data();
    }
  }
  // A team streaming host data pins the whole range once, for every GPU
  // (a shard's edge pages are shared with its neighbour's); it outlives
  // the runs, whose copies read it.
  cuda::HostRegistration registration;
  // Each Run is built and destroyed with its GPU current; a team's work is
  // waited for through the collective first (if a GPU failed, that aborts
  // the all-reduce the others wait in, which freeing would wait for).
  std::vector<std::unique_ptr<Run>> runs;
  struct Release {
    std::vector<std::unique_ptr<Run>>* runs;
    cuda::Collective* collective;
    ~Release() {
      if (collective != nullptr && runs->size() == static_cast<size_t>(collective->size())) {
        (void)collective->Wait(MainStreams(*runs));
      }
      for (auto& r : *runs) {
        DeviceGuard guard(r->device());
        r.reset();
      }
    }
  } release{&runs, collective.get()};
  for (const Shard& sh : shards) {
    DeviceGuard guard(sh.device);
    runs.push_back(std::make_unique<Run>(o, sh.data, input, sh.rows, d, k, batch, cfg,
                                         sh.device, team));
    QUIVER_RETURN_IF_ERROR(runs.back()->Allocate());
  }
  const bool streamed = std::any_of(runs.begin(), runs.end(),
                                    [](const auto& r) { return r->streamed(); });
  if (team && !o.data_on_device && streamed) {
    (void)registration.Register(shards[0].data, n * d * cuda::ElemBytes(ElemOfInput(input)));
  }
  for (auto& r : runs) {
    DeviceGuard guard(r->device());
    QUIVER_RETURN_IF_ERROR(r->PreparePoints());
    QUIVER_RETURN_IF_ERROR(r->InitCentroids());
  }
  for (auto& r : runs) {
    DeviceGuard guard(r->device());
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(r->stream()));
  }
  // The lead GPU's events time the run; the all-reduce ends an iteration
  // on every GPU at once.
  Run& lead = *runs[0];
  DeviceGuard lead_guard(lead.device());
  QUIVER_RETURN_IF_ERROR(lead.MarkLloydStart());

  const bool progress = static_cast<bool>(o.progress);
  // A streamed iteration is long: syncing each costs nothing and avoids
  // streaming iterations that would be skipped.
  const int sync_every = (progress || streamed) ? 1 : std::max(1, cfg.sync_every);
  // A lone GPU reads the state one batch of iterations late: it enqueues
  // the next batch before it waits for the state after this one, so the
  // GPU is not idle while the host reads (a batch enqueued past the stop
  // costs its sorts; its other kernels return at once).
  const bool read_late = !team && sync_every > 1;
  bool asked = false;
  int reported = 0;
  std::vector<double> obj;
  std::vector<int> empties;
  for (int it = 0; it < o.max_iterations; ++it) {
    for (auto& r : runs) {
      DeviceGuard guard(r->device());
      QUIVER_RETURN_IF_ERROR(r->EnqueueLocal(it));
    }
    if (team) {
      std::vector<cuda::Collective::Part> parts;
      for (auto& r : runs) parts.push_back(r->Partials(it));
      QUIVER_RETURN_IF_ERROR(collective->SumAll(parts));
    }
    for (auto& r : runs) {
      DeviceGuard guard(r->device());
      QUIVER_RETURN_IF_ERROR(r->EnqueueUpdate(it));
    }
    if ((it + 1) % sync_every != 0 && it + 1 != o.max_iterations) continue;
    cuda::DeviceState st{};
    if (read_late) {
      if (asked) {
        QUIVER_RETURN_IF_ERROR(lead.AwaitState(&st));
        if (st.stop) break;
      }
      QUIVER_RETURN_IF_ERROR(lead.AskState());
      asked = true;
      continue;
    }
    if (team) QUIVER_RETURN_IF_ERROR(collective->Wait(MainStreams(runs)));
    QUIVER_RETURN_IF_ERROR(lead.ReadState(&st, progress ? &obj : nullptr, &empties));
    if (progress) {
      for (; reported < st.iterations; ++reported) {
        KMeansIterationInfo info;
        info.iteration = reported;
        info.objective = obj[static_cast<size_t>(reported) * batch];
        info.empty_clusters = empties[static_cast<size_t>(reported) * batch];
        if (!o.progress(info)) {
          return Status::Aborted("k-means: stopped by the progress callback");
        }
      }
    }
    if (st.stop) break;
  }
  QUIVER_RETURN_IF_ERROR(lead.MarkLloydEnd());
  for (auto& r : runs) {
    DeviceGuard guard(r->device());
    QUIVER_RETURN_IF_ERROR(r->FinalAssign());
  }
  if (team) QUIVER_RETURN_IF_ERROR(collective->Wait(MainStreams(runs)));
  double bytes = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    DeviceGuard guard(runs[i]->device());
    QUIVER_RETURN_IF_ERROR(runs[i]->Collect(results, shards[i].offset, n, i == 0));
    bytes += runs[i]->streamed_bytes();
  }
  if (timings != nullptr) {
    QUIVER_RETURN_IF_ERROR(lead.Elapsed(&timings->setup_ms, &timings->lloyd_ms));
    timings->iterations = results[0].iterations;
    timings->streamed = streamed;
    timings->h2d_gbps = timings->lloyd_ms > 0 ? bytes / (timings->lloyd_ms * 1e-3) / 1e9 : 0;
  }
  return Status::OK();
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

bool CudaDeviceAvailable() { return CudaDeviceCount() > 0; }

std::vector<int> DefaultDevices() {
  const int count = CudaDeviceCount();
  if (count == 0) return {};
  int current = 0;
  if (cudaGetDevice(&current) != cudaSuccess) {
    (void)cudaGetLastError();
    current = 0;
  }
  if (!cuda::Collective::Available()) return {current};
  std::vector<int> devices;
  for (int g = 0; g < count; ++g) devices.push_back((current + g) % count);
  return devices;
}

// The checks every entry point makes on a problem of n points.
Status CheckProblem(const KMeansOptions& options, size_t n, size_t d, size_t k, size_t batch) {
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
  if (options.max_iterations < 1) {
    return Status::InvalidArgument("k-means gpu: max_iterations must be >= 1");
  }
  if (options.init == KMeansInit::kGiven && options.initial_centroids == nullptr) {
    return Status::InvalidArgument("k-means gpu: init = kGiven needs initial_centroids");
  }
  return Status::OK();
}

Status KMeansCudaEx(const KMeansOptions& options, const void* data,
                    KMeansInput input, size_t n, size_t d, size_t k,
                    size_t batch, const KMeansCudaConfig& config,
                    KMeansResult* results, KMeansCudaTimings* timings) {
  if (data == nullptr || results == nullptr) {
    return Status::InvalidArgument("k-means gpu: null argument");
  }
  QUIVER_RETURN_IF_ERROR(CheckProblem(options, n, d, k, batch));
  if (batch > 1 && !options.data_on_device) {
    return Status::InvalidArgument("k-means gpu: batched problems need data on the device");
  }
  int count = 0;
  QUIVER_CUDA_RETURN(cudaGetDeviceCount(&count));
  if (count == 0) return Status::NotSupported("k-means gpu: no CUDA device");
  int current = 0;
  QUIVER_CUDA_RETURN(cudaGetDevice(&current));

  // The GPUs: data on the device and batches stay on the current one.
  std::vector<int> devices;
  if (options.data_on_device || batch > 1) {
    devices = {current};
  } else if (options.devices.empty()) {
    // Several GPUs only where they pay.
    devices = DefaultDevices();
    devices.resize(std::min(devices.size(), std::max<size_t>(1, n / kMinPointsPerGpu)));
  } else {
    QUIVER_RETURN_IF_ERROR(CheckDeviceList(options.devices, count));
    devices = options.devices;
    if (devices.size() > n) {
      return Status::InvalidArgument("k-means gpu: more devices than points");
    }
  }
  // Contiguous, nearly equal shares.
  std::vector<Shard> shards(devices.size());
  const size_t row_bytes = d * cuda::ElemBytes(ElemOfInput(input));
  for (size_t g = 0; g < devices.size(); ++g) {
    const size_t begin = n * g / devices.size(), end = n * (g + 1) / devices.size();
    shards[g].device = devices[g];
    shards[g].data = static_cast<const uint8_t*>(data) + begin * row_bytes;
    shards[g].rows = end - begin;
    shards[g].offset = begin;
  }
  return Solve(options, shards, input, n, d, k, batch, config, results, timings);
}

Status KMeansCudaSharded(const KMeansOptions& options, const DeviceShard* shards,
                         size_t count, KMeansInput input, size_t d, size_t k,
                         const KMeansCudaConfig& config, KMeansResult* result,
                         KMeansCudaTimings* timings) {
  if (shards == nullptr || count == 0 || result == nullptr) {
    return Status::InvalidArgument("k-means gpu: no shards");
  }
  int visible = 0;
  QUIVER_CUDA_RETURN(cudaGetDeviceCount(&visible));
  std::vector<int> devices;
  std::vector<Shard> list(count);
  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    const DeviceShard& sh = shards[i];
    if (sh.data == nullptr || sh.rows == 0) {
      return Status::InvalidArgument("k-means gpu: an empty shard");
    }
    devices.push_back(sh.device);
    list[i] = Shard{sh.device, sh.data, sh.rows, n};
    n += sh.rows;
  }
  QUIVER_RETURN_IF_ERROR(CheckDeviceList(devices, visible));
  QUIVER_RETURN_IF_ERROR(CheckProblem(options, n, d, k, 1));
  KMeansOptions o = options;
  o.data_on_device = true;
  if (count == 1) {  // the current-device path on the shard's GPU
    DeviceGuard guard(shards[0].device);
    return KMeansCudaEx(o, shards[0].data, input, shards[0].rows, d, k, 1, config, result,
                        timings);
  }
  return Solve(o, list, input, n, d, k, 1, config, result, timings);
}

Status KMeansCuda(const KMeansOptions& options, const float* data, size_t n,
                  size_t d, size_t k, KMeansResult* result) {
  return KMeansCudaEx(options, data, KMeansInput::kF32, n, d, k, 1,
                      KMeansCudaConfig(), result, nullptr);
}

}  // namespace quiver::kernels
