// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Partition: one inverted list of the IVF index. Vectors lie contiguously
// (structure of arrays: a 64-byte aligned float block, the ids, a tombstone
// flag per slot) so that a scan streams through memory.
//
// Concurrency: one writer at a time (the engine serialises writes), any
// number of readers, which never wait for the writer. A reader takes a View: the current block and
// the number of slots published in it. Appends write past the published
// count and then publish it (release); a full block is copied into a larger
// one that replaces it atomically, while readers of the old block keep it
// alive through their shared_ptr. Deleting sets a slot's tombstone, which
// readers check.

#ifndef QUIVER_INDEX_PARTITION_H_
#define QUIVER_INDEX_PARTITION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "index/shared_slot.h"

namespace quiver::index {

class Partition {
 public:
  // Fixed-capacity storage of `capacity` slots of `dim` floats.
  struct Block {
    Block(size_t capacity, uint32_t dim);
    ~Block();
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;

    size_t capacity;
    uint32_t dim;
    float* vectors;                            // capacity x dim, 64-byte aligned
    std::unique_ptr<uint64_t[]> ids;           // capacity
    std::unique_ptr<std::atomic<uint8_t>[]> deleted;  // capacity, 1 = tombstone
    std::atomic<size_t> size{0};               // published slots
  };

  // What a reader scans: slots [0, size) of block.
  struct View {
    std::shared_ptr<const Block> block;
    size_t size = 0;
    const float* vector(size_t slot) const { return block->vectors + slot * block->dim; }
    bool deleted(size_t slot) const {
      return block->deleted[slot].load(std::memory_order_relaxed) != 0;
    }
  };

  Partition(uint32_t dim, size_t initial_capacity);

  View Read() const;

  // Writer side. REQUIRES: calls serialised by the owner.
  // Appends and publishes one vector; returns its slot.
  uint32_t Append(uint64_t id, const float* vec);
  void MarkDeleted(uint32_t slot);
  size_t slots() const { return slots_; }       // appended, deleted included
  size_t live() const { return slots_ - tombstones_; }
  size_t tombstones() const { return tombstones_; }

 private:
  uint32_t dim_;
  SharedSlot<Block> block_;
  // Writer-only bookkeeping.
  size_t slots_ = 0;
  size_t tombstones_ = 0;
};

}  // namespace quiver::index

#endif  // QUIVER_INDEX_PARTITION_H_
