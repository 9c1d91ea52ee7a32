// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The read side of IvfIndex: coarse quantisation, partition scans, top-k.

#include <algorithm>
#include <cstring>
#include <limits>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "index/ivf_index.h"
#include "kernels/cpu/assign.h"
#include "kernels/cpu/distance.h"
#include "kernels/cpu/topk.h"

namespace quiver::index {
namespace {

// Distances are computed for this many slots at a time, so the scratch
// buffer stays in L1/L2 whatever the partition size.
constexpr size_t kScanChunk = 1024;

// A batch scans partition-major once its queries probe each partition this
// many times on average: then reading a partition once for all of them,
// with a register-blocked distance kernel, beats one scan per query.
constexpr size_t kBatchedScanMinQueriesPerPartition = 4;

}  // namespace

void IvfIndex::SearchIn(const IndexVersion& v, const float* q,
                        const uint32_t* probes, size_t nprobe,
                        const SearchParams& params,
                        std::vector<Neighbor>* out) const {
  kernels::TopKHeap<uint64_t> heap(params.k);
  float dists[kScanChunk];
  for (size_t i = 0; i < nprobe; ++i) {
    Partition::View view = v.partitions[probes[i]]->Read();
    for (size_t begin = 0; begin < view.size; begin += kScanChunk) {
      const size_t m = std::min(kScanChunk, view.size - begin);
      kernels::DistancesToBlock(metric_, q, view.vector(begin), m, dim_, dists);
      const float threshold = heap.Threshold();
      for (size_t j = 0; j < m; ++j) {
        if (dists[j] > threshold) continue;
        if (view.deleted(begin + j)) continue;
        heap.Push(dists[j], view.block->ids[begin + j]);
      }
    }
  }
  std::vector<kernels::TopKHeap<uint64_t>::Entry> best;
  heap.ExtractSorted(&best);
  out->clear();
  out->reserve(best.size());
  for (const auto& e : best) out->push_back(Neighbor{e.id, e.distance});
}

void IvfIndex::SearchBatch(const float* queries, size_t nq,
                           const SearchParams& params,
                           std::vector<std::vector<Neighbor>>* out) const {
  std::shared_ptr<const IndexVersion> v = Current();
  out->assign(nq, {});
  const size_t nparts = v->partitions.size();
  const bool scan_all = v->flat() || params.exact || params.nprobe >= nparts;
  const size_t nprobe = scan_all ? nparts : std::max<size_t>(1, params.nprobe);

  std::vector<uint32_t> probes(nq * nprobe);
  if (scan_all) {
    for (size_t i = 0; i < nq; ++i) {
      for (size_t p = 0; p < nprobe; ++p) probes[i * nprobe + p] = static_cast<uint32_t>(p);
    }
  } else {
    // Coarse quantisation of the whole batch at once.
    kernels::NearestCentroids(metric_, queries, nq, v->centroids.data(), nparts,
                              dim_, nprobe, probes.data(), nullptr);
  }
  // Many queries per partition: scan partition-major, so each partition is
  // read once for all the queries probing it, at GEMM speed.
  if (nq * nprobe >= kBatchedScanMinQueriesPerPartition * nparts) {
    SearchPartitionMajor(*v, queries, nq, probes.data(), nprobe, params, out);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<size_t>(0, nq, 1),
                    [&](const tbb::blocked_range<size_t>& r) {
                      for (size_t i = r.begin(); i != r.end(); ++i) {
                        SearchIn(*v, queries + i * dim_, &probes[i * nprobe],
                                 nprobe, params, &(*out)[i]);
                      }
                    });
}

void IvfIndex::SearchPartitionMajor(const IndexVersion& v, const float* queries,
                                    size_t nq, const uint32_t* probes, size_t nprobe,
                                    const SearchParams& params,
                                    std::vector<std::vector<Neighbor>>* out) const {
  const size_t nparts = v.partitions.size();
  const size_t k = params.k;
  // One view per partition, taken once: the candidate space below is sized
  // by the slots each holds, and the scan reads exactly those slots.
  std::vector<Partition::View> views(nparts);
  for (size_t p = 0; p < nparts; ++p) views[p] = v.partitions[p]->Read();
  // Invert the probe lists: for partition p, the (query, probe slot) pairs
  // that scan it, in query order.
  std::vector<size_t> offsets(nparts + 1, 0);
  for (size_t i = 0; i < nq * nprobe; ++i) ++offsets[probes[i] + 1];
  for (size_t p = 0; p < nparts; ++p) offsets[p + 1] += offsets[p];
  std::vector<uint32_t> slot_of(nq * nprobe);  // query * nprobe + slot
  {
    std::vector<size_t> cursor(offsets.begin(), offsets.end() - 1);
    for (size_t i = 0; i < nq * nprobe; ++i) slot_of[cursor[probes[i]]++] = static_cast<uint32_t>(i);
  }

  // Candidates: per (query, probe slot) room for min(k, the probed
  // partition's slots), so that their memory is bounded by nq x what the
  // index holds, never by nq x nprobe x k (k may be 65,536 over a small
  // DB); filled[i] says how many slot i got.
  std::vector<size_t> cand_begin(nq * nprobe + 1, 0);
  for (size_t i = 0; i < nq * nprobe; ++i) {
    cand_begin[i + 1] = cand_begin[i] + std::min(k, views[probes[i]].size);
  }
  std::vector<Neighbor> candidates(cand_begin.back());
  std::vector<size_t> filled(nq * nprobe, 0);

  tbb::parallel_for(tbb::blocked_range<size_t>(0, nparts, 1),
                    [&](const tbb::blocked_range<size_t>& r) {
    std::vector<float> gathered, dists;
    std::vector<uint32_t> labels;
    for (size_t p = r.begin(); p != r.end(); ++p) {
      const size_t m = offsets[p + 1] - offsets[p];
      if (m == 0) continue;
      const Partition::View& view = views[p];
      if (view.size == 0) continue;
      size_t deleted = 0;
      for (size_t j = 0; j < view.size; ++j) deleted += view.deleted(j) ? 1 : 0;
      if (deleted == view.size) continue;
      // Ask for enough neighbours that k survive the tombstones.
      const size_t want = std::min(view.size, k + deleted);
      gathered.resize(m * dim_);
      for (size_t t = 0; t < m; ++t) {
        const size_t q = slot_of[offsets[p] + t] / nprobe;
        std::memcpy(&gathered[t * dim_], queries + q * dim_, sizeof(float) * dim_);
      }
      labels.resize(m * want);
      dists.resize(m * want);
      kernels::NearestCentroids(metric_, gathered.data(), m, view.vector(0), view.size,
                                dim_, want, labels.data(), dists.data());
      for (size_t t = 0; t < m; ++t) {
        const size_t slot = slot_of[offsets[p] + t];
        Neighbor* dst = candidates.data() + cand_begin[slot];
        const size_t room = cand_begin[slot + 1] - cand_begin[slot];
        size_t kept = 0;
        for (size_t j = 0; j < want && kept < room; ++j) {
          const uint32_t row = labels[t * want + j];
          if (row >= view.size || view.deleted(row)) continue;
          dst[kept++] = Neighbor{view.block->ids[row], dists[t * want + j]};
        }
        filled[slot] = kept;
      }
    }
  });

  tbb::parallel_for(tbb::blocked_range<size_t>(0, nq, 16),
                    [&](const tbb::blocked_range<size_t>& r) {
    for (size_t q = r.begin(); q != r.end(); ++q) {
      kernels::TopKHeap<uint64_t> heap(k);
      for (size_t slot = q * nprobe; slot < (q + 1) * nprobe; ++slot) {
        // data() + offset, not &candidates[offset]: a slot with no room may
        // sit at the end, or the whole vector be empty (every probed
        // partition empty), where operator[] is undefined.
        const Neighbor* c = candidates.data() + cand_begin[slot];
        for (size_t j = 0; j < filled[slot]; ++j) heap.Push(c[j].distance, c[j].id);
      }
      std::vector<kernels::TopKHeap<uint64_t>::Entry> best;
      heap.ExtractSorted(&best);
      auto& dst = (*out)[q];
      dst.clear();
      for (const auto& e : best) dst.push_back(Neighbor{e.id, e.distance});
    }
  });
}

}  // namespace quiver::index
