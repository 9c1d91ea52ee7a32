// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// IvfIndex: state, writes, building and publishing versions, statistics.

#include "index/ivf_index.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include <tbb/parallel_for.h>

#include "kernels/cpu/assign.h"
#include "kernels/cpu/distance.h"

namespace quiver::index {
namespace {

// Initial capacity of a partition: its size now plus room to grow.
size_t InitialCapacity(size_t size) { return size + size / 4 + 16; }

}  // namespace

IvfIndex::IvfIndex(uint32_t dim, Metric metric) : dim_(dim), metric_(metric) {
  Publish(Build(0, {}, {}, {}, {}, {}));
}

void IvfIndex::PrepareVector(const float* vec, float* out) const {
  std::memcpy(out, vec, sizeof(float) * dim_);
  if (metric_ == Metric::kCosine) kernels::Normalize(out, dim_);
}

uint32_t IvfIndex::NearestPartition(const IndexVersion& v, const float* vec,
                                    float* dist) const {
  *dist = 0.0f;
  if (v.flat()) return 0;
  uint32_t label = 0;
  kernels::AssignNearest(metric_, vec, 1, v.centroids.data(), nullptr, v.partitions.size(),
                         dim_, &label, dist);
  return label;
}

void IvfIndex::UpsertInto(IndexState* state, uint64_t id, const float* vec) const {
  // Tombstone the old copy first: a concurrent search may briefly miss this
  // id (the write is not acknowledged yet) but never sees it twice.
  RemoveFrom(state, id);
  float dist = 0.0f;
  const uint32_t p = NearestPartition(*state->version, vec, &dist);
  const uint32_t slot = state->version->partitions[p]->Append(id, vec);
  state->locations[id] = Location{p, slot, dist};
  state->distortion_sum += dist;
}

bool IvfIndex::RemoveFrom(IndexState* state, uint64_t id) const {
  auto it = state->locations.find(id);
  if (it == state->locations.end()) return false;
  state->version->partitions[it->second.partition]->MarkDeleted(it->second.slot);
  state->distortion_sum -= it->second.distance;
  state->locations.erase(it);
  return true;
}

void IvfIndex::CollectLive(std::vector<uint64_t>* ids, std::vector<float>* vectors) const {
  CollectLive(*state_.version, ids, vectors);
}

void IvfIndex::CollectLive(const IndexVersion& v, std::vector<uint64_t>* ids,
                           std::vector<float>* vectors) const {
  ids->clear();
  vectors->clear();
  // An upsert tombstones the old slot, then appends: a copy racing it may
  // see both slots live. Keep the first.
  std::vector<Partition::View> views;
  views.reserve(v.partitions.size());
  size_t slots = 0;
  for (const auto& p : v.partitions) {
    views.push_back(p->Read());
    slots += views.back().size;
  }
  std::unordered_set<uint64_t> seen;
  seen.reserve(slots);  // once: growing it per partition rehashes it each time
  ids->reserve(slots);
  vectors->reserve(slots * dim_);
  for (const Partition::View& view : views) {
    for (size_t s = 0; s < view.size; ++s) {
      if (view.deleted(s) || !seen.insert(view.block->ids[s]).second) continue;
      ids->push_back(view.block->ids[s]);
      vectors->insert(vectors->end(), view.vector(s), view.vector(s) + dim_);
    }
  }
}

const float* IvfIndex::VectorOf(uint64_t id) const {
  auto it = state_.locations.find(id);
  if (it == state_.locations.end()) return nullptr;
  return state_.version->partitions[it->second.partition]->Read().vector(it->second.slot);
}

std::vector<uint64_t> IvfIndex::CheckConsistency(
    const std::function<void(std::string)>& problem) const {
  const IndexVersion& v = *state_.version;
  if (!v.flat() && v.centroids.size() != v.partitions.size() * dim_) {
    problem("the index has " + std::to_string(v.partitions.size()) + " partitions and " +
            std::to_string(v.centroids.size() / dim_) + " centroids");
  }
  std::vector<uint64_t> ids;
  ids.reserve(state_.locations.size());
  for (size_t p = 0; p < v.partitions.size(); ++p) {
    Partition::View view = v.partitions[p]->Read();
    for (size_t slot = 0; slot < view.size; ++slot) {
      if (view.deleted(slot)) continue;
      const uint64_t id = view.block->ids[slot];
      ids.push_back(id);
      auto it = state_.locations.find(id);
      if (it == state_.locations.end()) {
        problem("partition " + std::to_string(p) + " holds id " + std::to_string(id) +
                " which the index does not list as live");
      } else if (it->second.partition != p || it->second.slot != slot) {
        problem("id " + std::to_string(id) + " is in partition " + std::to_string(p) +
                " slot " + std::to_string(slot) + " but listed at partition " +
                std::to_string(it->second.partition) + " slot " +
                std::to_string(it->second.slot));
      }
    }
  }
  std::sort(ids.begin(), ids.end());
  for (size_t i = 1; i < ids.size(); ++i) {
    if (ids[i] == ids[i - 1] && (i + 1 == ids.size() || ids[i + 1] != ids[i])) {
      problem("id " + std::to_string(ids[i]) + " is live in more than one partition slot");
    }
  }
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.size() != state_.locations.size()) {
    problem("the index lists " + std::to_string(state_.locations.size()) +
            " live ids but its partitions hold " + std::to_string(ids.size()));
  }
  return ids;
}

IndexState IvfIndex::Build(uint64_t epoch, std::vector<float> centroids,
                           const std::vector<uint64_t>& ids,
                           const std::vector<float>& vectors,
                           const std::vector<uint32_t>& assignments,
                           const std::vector<float>& distances) const {
  IndexState state;
  auto v = std::make_shared<IndexVersion>();
  v->epoch = epoch;
  v->centroids = std::move(centroids);
  const bool flat = v->flat();
  const size_t nparts = flat ? 1 : v->centroids.size() / dim_;
  const size_t n = ids.size();
  auto part_of = [&](size_t i) -> size_t { return flat ? 0 : assignments[i]; };

  // Counting sort of the points by partition: each partition's block is
  // then filled in one contiguous pass.
  std::vector<size_t> offsets(nparts + 1, 0);
  for (size_t i = 0; i < n; ++i) ++offsets[part_of(i) + 1];
  for (size_t p = 0; p < nparts; ++p) offsets[p + 1] += offsets[p];
  std::vector<size_t> order(n);
  {
    std::vector<size_t> cursor(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < n; ++i) order[cursor[part_of(i)]++] = i;
  }

  v->partitions.resize(nparts);
  tbb::parallel_for(size_t{0}, nparts, [&](size_t p) {
    const size_t begin = offsets[p], end = offsets[p + 1];
    auto part = std::make_shared<Partition>(dim_, InitialCapacity(end - begin));
    for (size_t j = begin; j < end; ++j) part->Append(ids[order[j]], &vectors[order[j] * dim_]);
    v->partitions[p] = std::move(part);
  });

  state.locations.reserve(n);
  for (size_t p = 0; p < nparts; ++p) {
    for (size_t j = offsets[p]; j < offsets[p + 1]; ++j) {
      const size_t i = order[j];
      const float dist = flat ? 0.0f : distances[i];
      state.locations[ids[i]] =
          Location{static_cast<uint32_t>(p), static_cast<uint32_t>(j - offsets[p]), dist};
      state.distortion_sum += dist;
    }
  }
  state.version = std::move(v);
  return state;
}

IndexState IvfIndex::Publish(IndexState state) {
  std::swap(state_, state);
  current_.Store(state_.version);
  return state;
}

std::shared_ptr<IndexVersion> IvfIndex::CopyVersion() const {
  return std::make_shared<IndexVersion>(*state_.version);
}

void IvfIndex::PublishVersion(std::shared_ptr<IndexVersion> v) {
  state_.version = std::move(v);
  current_.Store(state_.version);
}

IndexStats IvfIndex::Stats() const {
  std::shared_ptr<const IndexVersion> v = Current();
  IndexStats s;
  s.epoch = v->epoch;
  for (const auto& p : v->partitions) {
    Partition::View view = p->Read();
    uint64_t live = 0;
    for (size_t i = 0; i < view.size; ++i) live += view.deleted(i) ? 0 : 1;
    s.partition_sizes.push_back(live);
    s.live += live;
    s.tombstones += view.size - live;
  }
  return s;
}

}  // namespace quiver::index
