// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Local maintenance of IvfIndex: split, merge, compaction and the
// reassignment of vectors near moved boundaries (the LIRE idea of SPFresh).
// Each action is one partition's worth of work (plus its neighbours for a
// reassignment) and publishes a new version that shares every partition
// it does not touch. The arithmetic of a split (2-means, nearest centroids
// of the neighbours) is planned against a published version without the
// writer's lock; applying it under the lock only copies and relinks.

#include <algorithm>

#include "index/ivf_index.h"
#include "kernels/cpu/assign.h"
#include "quiver/kmeans.h"

namespace quiver::index {
namespace {

// The nearest of the k centroids c for every slot of `view`, tombstoned
// ones included (callers skip them): a partition's slots are contiguous
// rows, so they are read in place rather than copied out.
void AssignSlots(Metric metric, uint32_t dim, const Partition::View& view, const float* c,
                 size_t k, std::vector<uint32_t>* labels, std::vector<float>* dists) {
  labels->resize(view.size);
  dists->resize(view.size);
  if (view.size == 0) return;
  kernels::AssignNearest(metric, view.vector(0), view.size, c, nullptr, k, dim, labels->data(),
                         dists->data());
}

// Vectors the 2-means of a split is trained on, at most.
constexpr size_t kSplitSample = 512;

}  // namespace

std::vector<IvfIndex::PartitionLoad> IvfIndex::Loads() const {
  std::vector<PartitionLoad> loads;
  loads.reserve(state_.version->partitions.size());
  for (const auto& p : state_.version->partitions) {
    loads.push_back(PartitionLoad{p->live(), p->tombstones()});
  }
  return loads;
}

bool IvfIndex::PlanSplit(std::shared_ptr<const IndexVersion> v, uint32_t p, size_t min_half,
                         SplitPlan* plan) const {
  if (v->flat() || p >= v->partitions.size()) return false;
  // The 2-means runs on an even sample of at most kSplitSample live
  // vectors: two centroids are settled long before that, and a partition
  // waiting for its split may hold several times max_partition_size.
  const Partition::View view = v->partitions[p]->Read();
  std::vector<uint32_t> live_slots;
  for (size_t s = 0; s < view.size; ++s) {
    if (!view.deleted(s)) live_slots.push_back(static_cast<uint32_t>(s));
  }
  const size_t n = live_slots.size();
  if (n < 4) return false;
  const size_t m = std::min(n, kSplitSample);
  std::vector<float> sample(m * dim_);
  for (size_t i = 0; i < m; ++i) {
    const float* x = view.vector(live_slots[i * n / m]);
    std::copy(x, x + dim_, &sample[i * dim_]);
  }

  KMeansOptions ko;
  ko.max_iterations = 10;
  ko.seed = 1 + p;
  // Prepared cosine vectors are unit length: spherical 2-means over them.
  ko.metric = metric_ == Metric::kCosine ? Metric::kInnerProduct : metric_;
  ko.device = Device::kCpu;  // a partition's worth: not worth a GPU launch
  KMeansResult res;
  if (!KMeans(ko, sample.data(), m, dim_, 2, &res).ok()) return false;
  const size_t ones = std::count(res.assignments.begin(), res.assignments.end(), 1u);
  // The halves' shares in the sample stand for those in the partition.
  if (std::min(ones, m - ones) * n < std::max<size_t>(min_half, 1) * m) return false;
  plan->version = std::move(v);
  plan->partition = p;
  plan->centroids = std::move(res.centroids);
  return true;
}

bool IvfIndex::ApplySplit(const SplitPlan& plan, size_t neighbors, size_t min_half,
                          std::vector<uint32_t>* reassign, MaintenanceCounters* counters) {
  if (plan.version != state_.version) return false;
  const uint32_t p = plan.partition;
  // The vectors live now: the plan's, less deletes, plus appends since.
  const Partition::View view = state_.version->partitions[p]->Read();
  std::vector<uint32_t> labels;
  std::vector<float> dists;
  AssignSlots(metric_, dim_, view, plan.centroids.data(), 2, &labels, &dists);
  size_t n = 0, ones = 0;
  for (size_t s = 0; s < view.size; ++s) {
    if (view.deleted(s)) continue;
    ++n;
    ones += labels[s] == 1 ? 1 : 0;
  }
  if (std::min(ones, n - ones) < std::max<size_t>(min_half, 1)) return false;

  auto v = CopyVersion();
  const uint32_t q = static_cast<uint32_t>(v->partitions.size());
  const std::vector<float> old_centroid(v->centroids.begin() + size_t{p} * dim_,
                                        v->centroids.begin() + size_t{p + 1} * dim_);
  std::copy(plan.centroids.begin(), plan.centroids.begin() + dim_,
            v->centroids.begin() + size_t{p} * dim_);
  v->centroids.insert(v->centroids.end(), plan.centroids.begin() + dim_, plan.centroids.end());
  auto a = std::make_shared<Partition>(dim_, (n - ones) * 5 / 4 + 16);
  auto b = std::make_shared<Partition>(dim_, ones * 5 / 4 + 16);
  for (size_t s = 0; s < view.size; ++s) {
    if (view.deleted(s)) continue;
    const uint64_t id = view.block->ids[s];
    const bool second = labels[s] == 1;
    const uint32_t slot = (second ? b : a)->Append(id, view.vector(s));
    Location& loc = state_.locations.at(id);
    state_.distortion_sum += dists[s] - loc.distance;
    loc = Location{second ? q : p, slot, dists[s]};
  }
  v->partitions[p] = std::move(a);
  v->partitions.push_back(std::move(b));
  PublishVersion(std::move(v));
  ++counters->splits;

  // The boundary moved: vectors of the two halves and of the partitions
  // nearest the old centroid may now be nearer another centroid.
  const size_t want = std::min(state_.version->partitions.size(), neighbors + 2);
  reassign->assign(want, 0);
  kernels::NearestCentroids(metric_, old_centroid.data(), 1, state_.version->centroids.data(),
                            state_.version->partitions.size(), dim_, want, reassign->data(),
                            nullptr);
  for (uint32_t half : {p, q}) {
    if (std::find(reassign->begin(), reassign->end(), half) == reassign->end()) {
      reassign->push_back(half);
    }
  }
  return true;
}

IvfIndex::ReassignPlan IvfIndex::PlanReassign(std::shared_ptr<const IndexVersion> v,
                                              const std::vector<uint32_t>& parts) const {
  ReassignPlan plan;
  if (v->flat()) return plan;
  std::vector<uint32_t> labels;
  std::vector<float> dists;
  for (uint32_t p : parts) {
    if (p >= v->partitions.size()) continue;
    const Partition::View view = v->partitions[p]->Read();
    AssignSlots(metric_, dim_, view, v->centroids.data(), v->partitions.size(), &labels, &dists);
    for (size_t s = 0; s < view.size; ++s) {
      if (view.deleted(s)) continue;
      plan.entries.push_back({view.block->ids[s], p, static_cast<uint32_t>(s), labels[s], dists[s]});
    }
  }
  plan.version = std::move(v);
  return plan;
}

void IvfIndex::Rebuild(IndexVersion* v, const std::vector<uint32_t>& parts,
                       const std::vector<std::vector<uint8_t>>& leaving,
                       const std::vector<std::vector<Arrival>>& arriving) {
  for (uint32_t p : parts) {
    const Partition::View view = v->partitions[p]->Read();
    const bool drops = p < leaving.size() && !leaving[p].empty();
    const size_t arrivals = p < arriving.size() ? arriving[p].size() : 0;
    auto fresh =
        std::make_shared<Partition>(dim_, (v->partitions[p]->live() + arrivals) * 5 / 4 + 16);
    for (size_t s = 0; s < view.size; ++s) {
      if (view.deleted(s) || (drops && leaving[p][s] != 0)) continue;
      const uint64_t id = view.block->ids[s];
      Location& loc = state_.locations.at(id);
      loc.partition = p;
      loc.slot = fresh->Append(id, view.vector(s));
    }
    for (size_t i = 0; i < arrivals; ++i) {
      const Arrival& a = arriving[p][i];
      Location& loc = state_.locations.at(a.id);
      state_.distortion_sum += a.distance - loc.distance;
      loc = Location{p, fresh->Append(a.id, a.vec), a.distance};
    }
    v->partitions[p] = std::move(fresh);
  }
}

uint64_t IvfIndex::ApplyReassign(const ReassignPlan& plan, MaintenanceCounters* counters) {
  if (plan.version != state_.version) return 0;
  const IndexVersion& cur = *state_.version;
  const size_t nparts = cur.partitions.size();
  // Per partition: the slots whose vectors leave it, the vectors arriving.
  std::vector<std::vector<uint8_t>> leaving(nparts);
  std::vector<std::vector<Arrival>> arriving(nparts);
  std::vector<Partition::View> views(nparts);
  uint64_t moved = 0;
  for (const ReassignPlan::Entry& e : plan.entries) {
    // Only a vector still in the slot the plan read has the plan's value:
    // an upsert since moved it to a new slot, a delete removed it.
    auto it = state_.locations.find(e.id);
    if (it == state_.locations.end() || it->second.partition != e.partition ||
        it->second.slot != e.slot) {
      continue;
    }
    if (e.nearest == e.partition) {
      state_.distortion_sum += e.distance - it->second.distance;
      it->second.distance = e.distance;
      continue;
    }
    auto& out = leaving[e.partition];
    if (out.empty()) {
      views[e.partition] = cur.partitions[e.partition]->Read();
      out.assign(views[e.partition].size, 0);
    }
    out[e.slot] = 1;
    arriving[e.nearest].push_back({e.id, views[e.partition].vector(e.slot), e.distance});
    ++moved;
  }
  if (moved == 0) return 0;
  std::vector<uint32_t> touched;
  for (size_t p = 0; p < nparts; ++p) {
    if (!leaving[p].empty() || !arriving[p].empty()) touched.push_back(static_cast<uint32_t>(p));
  }
  auto v = CopyVersion();
  Rebuild(v.get(), touched, leaving, arriving);
  PublishVersion(std::move(v));
  counters->reassigned += moved;
  return moved;
}

bool IvfIndex::Merge(uint32_t p, MaintenanceCounters* counters) {
  const IndexVersion& cur = *state_.version;
  const size_t nparts = cur.partitions.size();
  if (cur.flat() || nparts <= 1 || p >= nparts) return false;
  // p's vectors, read in place (the view holds their block).
  const Partition::View merged = cur.partitions[p]->Read();

  // Partition `last` takes p's place.
  auto v = CopyVersion();
  const uint32_t last = static_cast<uint32_t>(nparts - 1);
  std::vector<uint32_t> touched;
  if (p != last) {
    std::copy(v->centroids.begin() + size_t{last} * dim_,
              v->centroids.begin() + size_t{last + 1} * dim_,
              v->centroids.begin() + size_t{p} * dim_);
    v->partitions[p] = v->partitions[last];
    touched.push_back(p);  // its vectors' locations name `last`
  }
  v->centroids.resize(size_t{last} * dim_);
  v->partitions.pop_back();

  // p's vectors go to their nearest remaining centroid.
  std::vector<uint32_t> labels;
  std::vector<float> dists;
  AssignSlots(metric_, dim_, merged, v->centroids.data(), last, &labels, &dists);
  std::vector<std::vector<Arrival>> arriving(last);
  size_t n = 0;
  for (size_t s = 0; s < merged.size; ++s) {
    if (merged.deleted(s)) continue;
    ++n;
    if (arriving[labels[s]].empty()) touched.push_back(labels[s]);
    arriving[labels[s]].push_back({merged.block->ids[s], merged.vector(s), dists[s]});
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  // Copies of the partitions that take them in: a search still reading
  // the serving version finds each of p's vectors once, in p.
  Rebuild(v.get(), touched, {}, arriving);
  PublishVersion(std::move(v));
  ++counters->merges;
  counters->reassigned += n;
  return true;
}

bool IvfIndex::Compact(uint32_t p, MaintenanceCounters* counters) {
  const IndexVersion& cur = *state_.version;
  if (p >= cur.partitions.size() || cur.partitions[p]->tombstones() == 0) return false;
  auto v = CopyVersion();
  Rebuild(v.get(), {p}, {}, {});
  PublishVersion(std::move(v));
  ++counters->compactions;
  return true;
}

}  // namespace quiver::index
