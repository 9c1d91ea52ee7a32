// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "index/partition.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace quiver::index {
namespace {

constexpr size_t kAlignment = 64;

float* AllocateAligned(size_t floats) {
  size_t bytes = std::max<size_t>(kAlignment, floats * sizeof(float));
  bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, bytes);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<float*>(p);
}

}  // namespace

Partition::Block::Block(size_t cap, uint32_t d)
    : capacity(cap),
      dim(d),
      vectors(AllocateAligned(cap * d)),
      ids(new uint64_t[cap]),
      deleted(new std::atomic<uint8_t>[cap]) {
  for (size_t i = 0; i < cap; ++i) deleted[i].store(0, std::memory_order_relaxed);
}

Partition::Block::~Block() { std::free(vectors); }

Partition::Partition(uint32_t dim, size_t initial_capacity)
    : dim_(dim),
      block_(std::make_shared<Block>(std::max<size_t>(initial_capacity, 16), dim)) {}

Partition::View Partition::Read() const {
  View v;
  std::shared_ptr<Block> b = block_.Load();
  v.size = b->size.load(std::memory_order_acquire);
  v.block = std::move(b);
  return v;
}

uint32_t Partition::Append(uint64_t id, const float* vec) {
  std::shared_ptr<Block> b = block_.Load();
  if (slots_ == b->capacity) {
    // Grow by half: amortised O(1) appends, at most 1.5x the memory.
    auto bigger = std::make_shared<Block>(b->capacity + b->capacity / 2 + 16, dim_);
    std::memcpy(bigger->vectors, b->vectors, sizeof(float) * slots_ * dim_);
    std::memcpy(bigger->ids.get(), b->ids.get(), sizeof(uint64_t) * slots_);
    for (size_t i = 0; i < slots_; ++i) {
      bigger->deleted[i].store(b->deleted[i].load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
    }
    bigger->size.store(slots_, std::memory_order_relaxed);
    block_.Store(bigger);
    b = std::move(bigger);
  }
  const size_t slot = slots_;
  std::memcpy(b->vectors + slot * dim_, vec, sizeof(float) * dim_);
  b->ids[slot] = id;
  b->deleted[slot].store(0, std::memory_order_relaxed);
  ++slots_;
  b->size.store(slots_, std::memory_order_release);
  return static_cast<uint32_t>(slot);
}

void Partition::MarkDeleted(uint32_t slot) {
  std::shared_ptr<Block> b = block_.Load();
  if (b->deleted[slot].exchange(1, std::memory_order_release) == 0) ++tombstones_;
}

}  // namespace quiver::index
