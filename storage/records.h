// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Encoding and verified decoding of the FlatBuffers records of records.fbs.
// Decoders never trust their input: a record that fails the FlatBuffers
// verifier, carries an unknown format version or has inconsistent sizes is
// reported as Corruption, never read past its end.

#ifndef QUIVER_STORAGE_RECORDS_H_
#define QUIVER_STORAGE_RECORDS_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quiver/status.h"
#include "quiver/types.h"

namespace quiver::storage {

// Version written into every record. Readers accept versions
// 1..kFormatVersion.
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr std::string_view kMagic = "quiver";

struct DbMeta {
  uint32_t dim = 0;
  Metric metric = Metric::kL2;
  uint16_t format_version = kFormatVersion;
  std::string created_by;
  uint32_t target_partition_size = 0;  // 0: not recorded
};

// A decoded vector record. It points into the decoded bytes, or into its
// own aligned copy of them when they were not 8-byte aligned (FlatBuffers
// reads scalars in place; a RocksDB value carries no alignment guarantee).
// Valid while both the bytes and the view live.
struct VectorRecordView {
  uint64_t id = 0;
  const void* vector_data = nullptr;
  uint32_t dim = 0;
  std::string_view payload;
  std::unique_ptr<uint64_t[]> aligned_copy;  // set when the bytes were copied

  void CopyVector(float* out) const;
  std::vector<float> Vector() const;
};

struct IndexRecord {
  uint64_t epoch = 0;
  uint32_t dim = 0;
  Metric metric = Metric::kL2;
  uint32_t num_centroids = 0;
  std::vector<float> centroids;
  uint64_t trained_on = 0;
  // Id of the last centroid hand-over (see engine/handover.h) applied at or
  // before this epoch; 0 when none. Tells a restarted DB that a hand-over
  // file it finds was already committed.
  uint64_t handover_id = 0;
  // Mean distance of the vectors to their centroid when the epoch was
  // trained: the baseline of the drift; 0 when unknown (older records).
  double epoch_distortion = 0.0;
};

std::string EncodeDbMeta(const DbMeta& meta);
Status DecodeDbMeta(std::string_view bytes, DbMeta* meta);

std::string EncodeVectorRecord(uint64_t id, std::span<const float> vec,
                               std::string_view payload);
// `view` points into `bytes`, which must outlive it.
Status DecodeVectorRecord(std::string_view bytes, VectorRecordView* view);

std::string EncodeIndexRecord(const IndexRecord& rec);
Status DecodeIndexRecord(std::string_view bytes, IndexRecord* rec);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_RECORDS_H_
