// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "engine/device_mirror.h"

namespace quiver {
namespace {

// Staged puts that trigger an upload: bounds the host staging memory and
// makes each upload one sizeable copy.
constexpr size_t kStagedRowsPerUpload = 4096;

}  // namespace

std::unique_ptr<DeviceMirror> DeviceMirror::Create(uint32_t dim) {
  std::unique_ptr<kernels::DeviceRows> rows;
  if (!kernels::DeviceRows::Create(dim, &rows).ok()) return nullptr;
  return std::unique_ptr<DeviceMirror>(new DeviceMirror(std::move(rows)));
}

DeviceMirror::DeviceMirror(std::unique_ptr<kernels::DeviceRows> rows) : rows_(std::move(rows)) {}

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
  rows_->Put(it->second, vec);
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
  Status s = rows_->Flush();
  if (!s.ok()) {
    ok_ = false;
    return s;
  }
  staged_ = 0;
  return Status::OK();
}

Status DeviceMirror::Snapshot(std::vector<uint64_t>* ids, std::shared_ptr<const float>* rows) {
  Status s = Flush();
  if (!s.ok()) return s;
  ids->clear();
  ids->reserve(row_of_.size());
  std::vector<uint32_t> live_rows;
  live_rows.reserve(row_of_.size());
  // Row order: the gather reads the table nearly sequentially.
  for (size_t r = 0; r < id_of_row_.size(); ++r) {
    if (row_live_[r] == 0) continue;
    ids->push_back(id_of_row_[r]);
    live_rows.push_back(static_cast<uint32_t>(r));
  }
  return rows_->Gather(live_rows.data(), live_rows.size(), rows);
}

}  // namespace quiver
