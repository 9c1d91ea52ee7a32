// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DeviceRows on CUDA: a growable device table, host staging, and the two
// kernels that move rows between the table and a contiguous matrix.

#include "kernels/cuda/device_rows.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/kmeans_cuda.h"

namespace quiver::kernels {
namespace {

constexpr int kThreads = 256;

int BlocksFor(size_t elements) {
  return static_cast<int>(std::min<size_t>((elements + kThreads - 1) / kThreads, 65535));
}

// table[slots[i]] = rows[i] for i < n (row width dim). Slots are distinct.
__global__ void ScatterRows(const uint32_t* __restrict__ slots, const float* __restrict__ rows,
                            size_t n, uint32_t dim, float* __restrict__ table) {
  const size_t total = n * dim;
  for (size_t e = size_t{blockIdx.x} * blockDim.x + threadIdx.x; e < total;
       e += size_t{gridDim.x} * blockDim.x) {
    const size_t i = e / dim;
    table[size_t{slots[i]} * dim + (e - i * dim)] = rows[e];
  }
}

// out[i] = table[slots[i]] for i < n.
__global__ void GatherRows(const uint32_t* __restrict__ slots, size_t n, uint32_t dim,
                           const float* __restrict__ table, float* __restrict__ out) {
  const size_t total = n * dim;
  for (size_t e = size_t{blockIdx.x} * blockDim.x + threadIdx.x; e < total;
       e += size_t{gridDim.x} * blockDim.x) {
    const size_t i = e / dim;
    out[e] = table[size_t{slots[i]} * dim + (e - i * dim)];
  }
}

// A device matrix that frees itself with its device current.
struct OwnedMatrix {
  int device;
  cuda::DeviceBuffer<float> buffer;
  ~OwnedMatrix() {
    cuda::DeviceGuard guard(device);
    buffer.Reset();
  }
};

class CudaDeviceRows final : public DeviceRows {
 public:
  CudaDeviceRows(uint32_t dim, int device) : dim_(dim), device_(device) {}
  ~CudaDeviceRows() override {
    cuda::DeviceGuard guard(device_);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
    table_.Reset();
    slots_scratch_.Reset();
    rows_scratch_.Reset();
  }

  Status Init() {
    cuda::DeviceGuard guard(device_);
    QUIVER_CUDA_RETURN(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    return Status::OK();
  }

  uint32_t dim() const override { return dim_; }
  int device() const override { return device_; }
  size_t capacity() const override { return capacity_; }

  void Put(uint32_t slot, const float* row) override {
    auto [it, fresh] = staged_at_.try_emplace(slot, staged_slots_.size());
    if (fresh) {
      staged_slots_.push_back(slot);
      staged_rows_.resize(staged_rows_.size() + dim_);
    }
    std::copy(row, row + dim_, staged_rows_.begin() + it->second * dim_);
  }

  Status Flush() override {
    const size_t n = staged_slots_.size();
    if (n == 0) return Status::OK();
    cuda::DeviceGuard guard(device_);
    const size_t need = size_t{*std::max_element(staged_slots_.begin(), staged_slots_.end())} + 1;
    if (need > capacity_) {
      // Doubling: a table filled a row at a time moves O(rows) in all.
      const size_t grown = std::max({need, capacity_ * 2, size_t{1024}});
      cuda::DeviceBuffer<float> bigger;
      QUIVER_RETURN_IF_ERROR(bigger.Allocate(grown * dim_));
      if (capacity_ > 0) {
        QUIVER_CUDA_RETURN(cudaMemcpyAsync(bigger.get(), table_.get(), table_.bytes(),
                                           cudaMemcpyDeviceToDevice, stream_));
      }
      QUIVER_CUDA_RETURN(cudaStreamSynchronize(stream_));
      table_ = std::move(bigger);
      capacity_ = grown;
    }
    QUIVER_RETURN_IF_ERROR(Upload(staged_slots_.data(), n));
    if (rows_scratch_.size() < n * dim_) QUIVER_RETURN_IF_ERROR(rows_scratch_.Allocate(n * dim_));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(rows_scratch_.get(), staged_rows_.data(),
                                       n * dim_ * sizeof(float), cudaMemcpyHostToDevice,
                                       stream_));
    ScatterRows<<<BlocksFor(n * dim_), kThreads, 0, stream_>>>(
        slots_scratch_.get(), rows_scratch_.get(), n, dim_, table_.get());
    QUIVER_CUDA_LAUNCH_CHECK();
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(stream_));
    staged_slots_.clear();
    staged_rows_.clear();
    staged_at_.clear();
    return Status::OK();
  }

  Status Gather(const uint32_t* slots, size_t n, std::shared_ptr<const float>* out) override {
    out->reset();
    if (n == 0) return Status::OK();
    if (!staged_slots_.empty()) {
      return Status::InvalidArgument("DeviceRows::Gather: rows are staged; Flush first");
    }
    for (size_t i = 0; i < n; ++i) {
      if (slots[i] >= capacity_) {
        return Status::InvalidArgument("DeviceRows::Gather: slot " + std::to_string(slots[i]) +
                                       " beyond the table's " + std::to_string(capacity_) +
                                       " rows");
      }
    }
    cuda::DeviceGuard guard(device_);
    // The matrix outlives this call: its owner goes with the shared_ptr.
    auto holder = std::make_shared<OwnedMatrix>();
    holder->device = device_;
    QUIVER_RETURN_IF_ERROR(holder->buffer.Allocate(n * dim_));
    QUIVER_RETURN_IF_ERROR(Upload(slots, n));
    GatherRows<<<BlocksFor(n * dim_), kThreads, 0, stream_>>>(
        slots_scratch_.get(), n, dim_, table_.get(), holder->buffer.get());
    QUIVER_CUDA_LAUNCH_CHECK();
    QUIVER_CUDA_RETURN(cudaStreamSynchronize(stream_));
    *out = std::shared_ptr<const float>(holder, holder->buffer.get());
    return Status::OK();
  }

  Status Read(const uint32_t* slots, size_t n, float* host) override {
    std::shared_ptr<const float> matrix;
    QUIVER_RETURN_IF_ERROR(Gather(slots, n, &matrix));
    if (n == 0) return Status::OK();
    QUIVER_CUDA_RETURN(
        cudaMemcpy(host, matrix.get(), n * dim_ * sizeof(float), cudaMemcpyDeviceToHost));
    return Status::OK();
  }

 private:
  // Copies n slot numbers to the device scratch (synchronously enough:
  // pageable memory is staged by the driver before the call returns).
  Status Upload(const uint32_t* slots, size_t n) {
    if (slots_scratch_.size() < n) QUIVER_RETURN_IF_ERROR(slots_scratch_.Allocate(n));
    QUIVER_CUDA_RETURN(cudaMemcpyAsync(slots_scratch_.get(), slots, n * sizeof(uint32_t),
                                       cudaMemcpyHostToDevice, stream_));
    return Status::OK();
  }

  const uint32_t dim_;
  const int device_;
  cudaStream_t stream_ = nullptr;
  cuda::DeviceBuffer<float> table_;  // capacity_ x dim_
  size_t capacity_ = 0;
  cuda::DeviceBuffer<uint32_t> slots_scratch_;
  cuda::DeviceBuffer<float> rows_scratch_;
  // Staged writes: one entry per slot, the last Put wins.
  std::vector<uint32_t> staged_slots_;
  std::vector<float> staged_rows_;
  std::unordered_map<uint32_t, size_t> staged_at_;
};

}  // namespace

Status DeviceRows::Create(uint32_t dim, int device, std::unique_ptr<DeviceRows>* rows) {
  rows->reset();
  if (dim == 0) return Status::InvalidArgument("DeviceRows: dimension must be >= 1");
  const int count = CudaDeviceCount();
  if (count == 0) return Status::NotSupported("DeviceRows: no CUDA GPU is available");
  if (device < 0 || device >= count) {
    return Status::InvalidArgument("DeviceRows: device " + std::to_string(device) +
                                   " does not exist (" + std::to_string(count) + " visible)");
  }
  auto table = std::make_unique<CudaDeviceRows>(dim, device);
  QUIVER_RETURN_IF_ERROR(table->Init());
  *rows = std::move(table);
  return Status::OK();
}

Status CopyToHost(const float* device, size_t count, float* host) {
  if (count == 0) return Status::OK();
  cudaPointerAttributes attr{};
  QUIVER_CUDA_RETURN(cudaPointerGetAttributes(&attr, device));
  cuda::DeviceGuard guard(attr.device);
  QUIVER_CUDA_RETURN(cudaMemcpy(host, device, count * sizeof(float), cudaMemcpyDeviceToHost));
  return Status::OK();
}

}  // namespace quiver::kernels
