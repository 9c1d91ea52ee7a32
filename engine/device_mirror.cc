// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "engine/device_mirror.h"

#include "kernels/cuda/kmeans_cuda.h"

namespace quiver {
namespace {

// Staged puts that trigger an upload: bounds the host staging memory and
// makes each upload one sizeable copy.
constexpr size_t kStagedRowsPerUpload = 4096;

}  // namespace

std::unique_ptr<DeviceMirror> DeviceMirror::Create(uint32_t dim, const std::vector<int>& devices) {
  const std::vector<int> list = devices.empty() ? kernels::DefaultDevices() : devices;
  if (list.empty()) return nullptr;
  std::vector<std::unique_ptr<kernels::DeviceRows>> tables(list.size());
  for (size_t g = 0; g < list.size(); ++g) {
    if (!kernels::DeviceRows::Create(dim, list[g], &tables[g]).ok()) return nullptr;
  }
  return std::unique_ptr<DeviceMirror>(new DeviceMirror(std::move(tables)));
}

DeviceMirror::DeviceMirror(std::vector<std::unique_ptr<kernels::DeviceRows>> tables)
    : tables_(std::move(tables)) {}

void DeviceMirror::Put(uint64_t id, const float* vec) {
  if (!ok_) return;
  auto [it, fresh] = row_of_.try_emplace(id, 0);
  if (fresh) {
    if (free_rows_.empty()) {
      it->second = static_cast<uint32_t>(id_of_row_.size());
      id_of_row_.push_back(id);
      row_live_.push_back(1);
    } else {
      it->second = free_rows_.back();
      free_rows_.pop_back();
      id_of_row_[it->second] = id;
      row_live_[it->second] = 1;
    }
  }
  const uint32_t row = it->second;
  tables_[row % tables_.size()]->Put(static_cast<uint32_t>(row / tables_.size()), vec);
  if (++staged_ >= kStagedRowsPerUpload) (void)Flush();
}

void DeviceMirror::Erase(uint64_t id) {
  auto it = row_of_.find(id);
  if (it == row_of_.end()) return;
  row_live_[it->second] = 0;
  free_rows_.push_back(it->second);
  row_of_.erase(it);
}

Status DeviceMirror::Flush() {
  if (!ok_) return Status::Aborted("the device mirror failed earlier");
  for (auto& table : tables_) {
    Status s = table->Flush();
    if (!s.ok()) {
      ok_ = false;
      return s;
    }
  }
  staged_ = 0;
  return Status::OK();
}

Status DeviceMirror::Snapshot(std::vector<uint64_t>* ids, std::vector<Shard>* shards) {
  Status s = Flush();
  if (!s.ok()) return s;
  ids->clear();
  ids->reserve(row_of_.size());
  shards->clear();
  const size_t g_count = tables_.size();
  std::vector<uint32_t> slots;
  for (size_t g = 0; g < g_count; ++g) {
    // Row order: the gather reads the table nearly sequentially.
    slots.clear();
    for (size_t r = g; r < id_of_row_.size(); r += g_count) {
      if (row_live_[r] == 0) continue;
      ids->push_back(id_of_row_[r]);
      slots.push_back(static_cast<uint32_t>(r / g_count));
    }
    if (slots.empty()) continue;
    Shard shard;
    shard.device = tables_[g]->device();
    shard.count = slots.size();
    s = tables_[g]->Gather(slots.data(), slots.size(), &shard.rows);
    if (!s.ok()) return s;
    shards->push_back(std::move(shard));
  }
  return Status::OK();
}

}  // namespace quiver
