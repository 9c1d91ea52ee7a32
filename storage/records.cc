// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "storage/records.h"

#include <cstdint>
#include <cstring>
#include <memory>

#include "storage/records_generated.h"

namespace quiver::storage {
namespace {

// FlatBuffers reads every scalar in place, so the buffer must be aligned
// to its largest scalar (8 bytes: the ids). Misaligned bytes are copied
// into `owner` and the copy is returned.
std::string_view Aligned(std::string_view bytes, std::unique_ptr<uint64_t[]>* owner) {
  if (reinterpret_cast<uintptr_t>(bytes.data()) % alignof(uint64_t) == 0) return bytes;
  owner->reset(new uint64_t[(bytes.size() + 7) / 8]);
  std::memcpy(owner->get(), bytes.data(), bytes.size());
  return std::string_view(reinterpret_cast<const char*>(owner->get()), bytes.size());
}

template <typename T>
Status VerifyRoot(std::string_view bytes, const char* what, const T** out) {
  if (bytes.empty()) return Status::Corruption(std::string(what) + " record is empty");
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()),
                                 bytes.size());
  if (!verifier.VerifyBuffer<T>(nullptr)) {
    return Status::Corruption(std::string(what) +
                              " record fails FlatBuffers verification (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  *out = flatbuffers::GetRoot<T>(bytes.data());
  return Status::OK();
}

Status CheckVersion(uint16_t v, const char* what) {
  if (v == 0 || v > kFormatVersion) {
    return Status::Corruption(std::string(what) + " record has format version " +
                              std::to_string(v) + "; this library reads 1.." +
                              std::to_string(kFormatVersion));
  }
  return Status::OK();
}

std::string Finish(flatbuffers::FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()),
                     fbb.GetSize());
}

}  // namespace

void VectorRecordView::CopyVector(float* out) const {
  std::memcpy(out, vector_data, sizeof(float) * dim);
}

std::vector<float> VectorRecordView::Vector() const {
  std::vector<float> v(dim);
  CopyVector(v.data());
  return v;
}

std::string EncodeDbMeta(const DbMeta& meta) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto magic = fbb.CreateString(kMagic.data(), kMagic.size());
  auto created = fbb.CreateString(meta.created_by);
  fbb.Finish(fb::CreateDbMeta(fbb, magic, meta.format_version, meta.dim,
                              static_cast<uint8_t>(meta.metric), created,
                              meta.target_partition_size));
  return Finish(fbb);
}

Status DecodeDbMeta(std::string_view bytes, DbMeta* meta) {
  std::unique_ptr<uint64_t[]> owner;
  bytes = Aligned(bytes, &owner);
  const fb::DbMeta* m = nullptr;
  Status s = VerifyRoot(bytes, "metadata", &m);
  if (!s.ok()) return s;
  if (m->magic() == nullptr || m->magic()->string_view() != kMagic) {
    return Status::InvalidArgument("metadata does not carry the quiver magic");
  }
  s = CheckVersion(m->format_version(), "metadata");
  if (!s.ok()) return s;
  if (m->dim() == 0) return Status::Corruption("metadata records dimension 0");
  if (m->metric() > static_cast<uint8_t>(Metric::kCosine)) {
    return Status::Corruption("metadata records unknown metric " +
                              std::to_string(m->metric()));
  }
  meta->dim = m->dim();
  meta->metric = static_cast<Metric>(m->metric());
  meta->format_version = m->format_version();
  meta->created_by = m->created_by() ? m->created_by()->str() : "";
  meta->target_partition_size = m->target_partition_size();
  return Status::OK();
}

std::string EncodeVectorRecord(uint64_t id, std::span<const float> vec,
                               std::string_view payload) {
  flatbuffers::FlatBufferBuilder fbb(64 + vec.size() * sizeof(float) + payload.size());
  auto v = fbb.CreateVector(vec.data(), vec.size());
  flatbuffers::Offset<flatbuffers::Vector<uint8_t>> p;
  if (!payload.empty()) {
    p = fbb.CreateVector(reinterpret_cast<const uint8_t*>(payload.data()),
                         payload.size());
  }
  fbb.Finish(fb::CreateVectorRecord(fbb, kFormatVersion, id, v, p));
  return Finish(fbb);
}

Status DecodeVectorRecord(std::string_view bytes, VectorRecordView* view) {
  view->aligned_copy.reset();
  bytes = Aligned(bytes, &view->aligned_copy);
  const fb::VectorRecord* r = nullptr;
  Status s = VerifyRoot(bytes, "vector", &r);
  if (!s.ok()) return s;
  s = CheckVersion(r->format_version(), "vector");
  if (!s.ok()) return s;
  if (r->vector() == nullptr || r->vector()->size() == 0) {
    return Status::Corruption("vector record holds no vector");
  }
  view->id = r->id();
  view->vector_data = r->vector()->Data();
  view->dim = r->vector()->size();
  view->payload = r->payload()
                      ? std::string_view(
                            reinterpret_cast<const char*>(r->payload()->Data()),
                            r->payload()->size())
                      : std::string_view();
  return Status::OK();
}

std::string EncodeIndexRecord(const IndexRecord& rec) {
  flatbuffers::FlatBufferBuilder fbb(128 + rec.centroids.size() * sizeof(float));
  auto c = fbb.CreateVector(rec.centroids);
  fbb.Finish(fb::CreateIndexRecord(fbb, kFormatVersion, rec.epoch, rec.dim,
                                   static_cast<uint8_t>(rec.metric),
                                   rec.num_centroids, c, rec.trained_on,
                                   rec.handover_id, rec.epoch_distortion));
  return Finish(fbb);
}

Status DecodeIndexRecord(std::string_view bytes, IndexRecord* rec) {
  std::unique_ptr<uint64_t[]> owner;
  bytes = Aligned(bytes, &owner);
  const fb::IndexRecord* r = nullptr;
  Status s = VerifyRoot(bytes, "index", &r);
  if (!s.ok()) return s;
  s = CheckVersion(r->format_version(), "index");
  if (!s.ok()) return s;
  const size_t expected = static_cast<size_t>(r->num_centroids()) * r->dim();
  if (r->centroids() == nullptr || r->num_centroids() == 0 ||
      r->centroids()->size() != expected) {
    return Status::Corruption("index record of epoch " +
                              std::to_string(r->epoch()) +
                              " has inconsistent centroid sizes");
  }
  rec->epoch = r->epoch();
  rec->dim = r->dim();
  rec->metric = static_cast<Metric>(r->metric());
  rec->num_centroids = r->num_centroids();
  rec->centroids.resize(expected);
  std::memcpy(rec->centroids.data(), r->centroids()->Data(), expected * sizeof(float));
  rec->trained_on = r->trained_on();
  rec->handover_id = r->handover_id();
  rec->epoch_distortion = r->epoch_distortion();
  return Status::OK();
}

}  // namespace quiver::storage
