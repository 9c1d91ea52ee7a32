// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Local maintenance of IvfIndex: split, merge, compaction and the
// reassignment of vectors near moved boundaries (the LIRE idea of SPFresh).
// Each action is one partition's worth of work (plus its neighbours for a
// reassignment) and publishes a new version that shares every partition
// it does not touch.

#include <algorithm>

#include "index/ivf_index.h"
#include "kernels/cpu/assign.h"
#include "quiver/kmeans.h"

namespace quiver::index {
namespace {

struct LiveSet {
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  std::vector<uint32_t> partitions;
};

void Gather(const Partition& part, uint32_t p, uint32_t dim, LiveSet* out) {
  Partition::View view = part.Read();
  for (size_t s = 0; s < view.size; ++s) {
    if (view.deleted(s)) continue;
    out->ids.push_back(view.block->ids[s]);
    out->vectors.insert(out->vectors.end(), view.vector(s), view.vector(s) + dim);
    out->partitions.push_back(p);
  }
}

}  // namespace

std::vector<IvfIndex::PartitionLoad> IvfIndex::Loads() const {
  std::vector<PartitionLoad> loads;
  loads.reserve(state_.version->partitions.size());
  for (const auto& p : state_.version->partitions) {
    loads.push_back(PartitionLoad{p->live(), p->tombstones()});
  }
  return loads;
}

void IvfIndex::MoveTo(uint64_t id, const float* vec, uint32_t to, float dist) {
  Location& loc = state_.locations.at(id);
  state_.version->partitions[loc.partition]->MarkDeleted(loc.slot);
  const uint32_t slot = state_.version->partitions[to]->Append(id, vec);
  state_.distortion_sum += dist - loc.distance;
  loc = Location{to, slot, dist};
}

uint64_t IvfIndex::Reassign(const std::vector<uint32_t>& parts) {
  const IndexVersion& v = *state_.version;
  LiveSet live;
  for (uint32_t p : parts) Gather(*v.partitions[p], p, dim_, &live);
  const size_t n = live.ids.size();
  if (n == 0) return 0;
  std::vector<uint32_t> labels(n);
  std::vector<float> dists(n);
  kernels::AssignNearest(metric_, live.vectors.data(), n, v.centroids.data(), nullptr,
                         v.partitions.size(), dim_, labels.data(), dists.data());
  uint64_t moved = 0;
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] != live.partitions[i]) {
      MoveTo(live.ids[i], &live.vectors[i * dim_], labels[i], dists[i]);
      ++moved;
    } else {
      Location& loc = state_.locations.at(live.ids[i]);
      state_.distortion_sum += dists[i] - loc.distance;
      loc.distance = dists[i];
    }
  }
  return moved;
}

bool IvfIndex::Split(uint32_t p, size_t neighbors, size_t min_half,
                     MaintenanceCounters* counters) {
  const IndexVersion& cur = *state_.version;
  if (cur.flat() || p >= cur.partitions.size()) return false;
  LiveSet live;
  Gather(*cur.partitions[p], p, dim_, &live);
  const size_t n = live.ids.size();
  if (n < 4) return false;

  KMeansOptions ko;
  ko.max_iterations = 10;
  ko.seed = 1 + p;
  // Prepared cosine vectors are unit length: spherical 2-means over them.
  ko.metric = metric_ == Metric::kCosine ? Metric::kInnerProduct : metric_;
  ko.device = Device::kCpu;  // a partition's worth: not worth a GPU launch
  KMeansResult res;
  if (!KMeans(ko, live.vectors.data(), n, dim_, 2, &res).ok()) return false;
  std::vector<uint32_t> labels(n);
  std::vector<float> dists(n);
  kernels::AssignNearest(metric_, live.vectors.data(), n, res.centroids.data(), nullptr, 2,
                         dim_, labels.data(), dists.data());
  const size_t ones = std::count(labels.begin(), labels.end(), 1u);
  if (std::min(ones, n - ones) < std::max<size_t>(min_half, 1)) return false;

  auto v = CopyVersion();
  const uint32_t q = static_cast<uint32_t>(v->partitions.size());
  const std::vector<float> old_centroid(v->centroids.begin() + size_t{p} * dim_,
                                        v->centroids.begin() + size_t{p + 1} * dim_);
  std::copy(res.centroids.begin(), res.centroids.begin() + dim_,
            v->centroids.begin() + size_t{p} * dim_);
  v->centroids.insert(v->centroids.end(), res.centroids.begin() + dim_, res.centroids.end());
  auto a = std::make_shared<Partition>(dim_, (n - ones) * 5 / 4 + 16);
  auto b = std::make_shared<Partition>(dim_, ones * 5 / 4 + 16);
  for (size_t i = 0; i < n; ++i) {
    const bool second = labels[i] == 1;
    const uint32_t slot = (second ? b : a)->Append(live.ids[i], &live.vectors[i * dim_]);
    Location& loc = state_.locations.at(live.ids[i]);
    state_.distortion_sum += dists[i] - loc.distance;
    loc = Location{second ? q : p, slot, dists[i]};
  }
  v->partitions[p] = std::move(a);
  v->partitions.push_back(std::move(b));
  PublishVersion(std::move(v));
  ++counters->splits;

  // The boundary moved: vectors of the two halves and of the partitions
  // nearest the old centroid may now be nearer another centroid.
  const size_t want = std::min(state_.version->partitions.size(), neighbors + 2);
  std::vector<uint32_t> near(want);
  kernels::NearestCentroids(metric_, old_centroid.data(), 1, state_.version->centroids.data(),
                            state_.version->partitions.size(), dim_, want, near.data(), nullptr);
  if (std::find(near.begin(), near.end(), p) == near.end()) near.push_back(p);
  if (std::find(near.begin(), near.end(), q) == near.end()) near.push_back(q);
  counters->reassigned += Reassign(near);
  return true;
}

bool IvfIndex::Merge(uint32_t p, MaintenanceCounters* counters) {
  const IndexVersion& cur = *state_.version;
  const size_t nparts = cur.partitions.size();
  if (cur.flat() || nparts <= 1 || p >= nparts) return false;
  LiveSet live;
  Gather(*cur.partitions[p], p, dim_, &live);

  // Partition `last` takes p's place: its vectors keep their slots.
  auto v = CopyVersion();
  const uint32_t last = static_cast<uint32_t>(nparts - 1);
  if (p != last) {
    std::copy(v->centroids.begin() + size_t{last} * dim_,
              v->centroids.begin() + size_t{last + 1} * dim_,
              v->centroids.begin() + size_t{p} * dim_);
    v->partitions[p] = v->partitions[last];
    Partition::View view = v->partitions[p]->Read();
    for (size_t s = 0; s < view.size; ++s) {
      if (!view.deleted(s)) state_.locations.at(view.block->ids[s]).partition = p;
    }
  }
  v->centroids.resize(size_t{last} * dim_);
  v->partitions.pop_back();
  for (uint64_t id : live.ids) {
    state_.distortion_sum -= state_.locations.at(id).distance;
    state_.locations.erase(id);
  }
  // Publish first, then re-insert: a search may briefly miss these vectors
  // but never sees one twice.
  PublishVersion(std::move(v));
  for (size_t i = 0; i < live.ids.size(); ++i) {
    UpsertInto(&state_, live.ids[i], &live.vectors[i * dim_]);
  }
  ++counters->merges;
  counters->reassigned += live.ids.size();
  return true;
}

bool IvfIndex::Compact(uint32_t p, MaintenanceCounters* counters) {
  const IndexVersion& cur = *state_.version;
  if (p >= cur.partitions.size() || cur.partitions[p]->tombstones() == 0) return false;
  Partition::View view = cur.partitions[p]->Read();
  auto fresh = std::make_shared<Partition>(dim_, cur.partitions[p]->live() * 5 / 4 + 16);
  for (size_t s = 0; s < view.size; ++s) {
    if (view.deleted(s)) continue;
    const uint64_t id = view.block->ids[s];
    state_.locations.at(id).slot = fresh->Append(id, view.vector(s));
  }
  auto v = CopyVersion();
  v->partitions[p] = std::move(fresh);
  PublishVersion(std::move(v));
  ++counters->compactions;
  return true;
}

}  // namespace quiver::index
