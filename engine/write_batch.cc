// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "quiver/write_batch.h"

namespace quiver {

void WriteBatch::Put(uint64_t id, std::span<const float> vec,
                     std::string_view payload) {
  ops_.push_back(Op{OpType::kPut, id, std::vector<float>(vec.begin(), vec.end()),
                    std::string(payload)});
}

void WriteBatch::Delete(uint64_t id) {
  ops_.push_back(Op{OpType::kDelete, id, {}, {}});
}

}  // namespace quiver
