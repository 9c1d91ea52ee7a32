// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A WriteBatch holds puts and deletes applied atomically by DB::Write():
// after a crash either all of them are present or none.
//
//   quiver::WriteBatch batch;
//   batch.Put(7, vec7);
//   batch.Delete(3);
//   quiver::Status s = db->Write(quiver::WriteOptions(), &batch);
//
// Operations apply in the order they were added; a later Put of the same id
// wins. Thread safety: a batch needs external synchronization if shared.

#ifndef QUIVER_WRITE_BATCH_H_
#define QUIVER_WRITE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quiver/export.h"

namespace quiver {

class QUIVER_EXPORT WriteBatch {
 public:
  enum class OpType : uint8_t { kPut = 0, kDelete = 1 };

  // One recorded operation. For kDelete, `vector` and `payload` are empty.
  struct Op {
    OpType type;
    uint64_t id;
    std::vector<float> vector;
    std::string payload;
  };

  WriteBatch() = default;

  // Stores (upserts) vector `vec` under `id`, with optional opaque bytes.
  // The vector is copied; it is checked (dimension, finite) by DB::Write.
  void Put(uint64_t id, std::span<const float> vec,
           std::string_view payload = {});

  // Removes `id`. Deleting an id that does not exist is a no-op in a batch.
  void Delete(uint64_t id);

  void Clear() { ops_.clear(); }
  size_t Count() const { return ops_.size(); }
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

}  // namespace quiver

#endif  // QUIVER_WRITE_BATCH_H_
