// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A bounded max-heap that keeps the k smallest (distance, id) pairs seen.
//
//   quiver::kernels::TopKHeap<uint64_t> heap(10);
//   for (...) heap.Push(dist, id);
//   std::vector<quiver::kernels::TopKHeap<uint64_t>::Entry> best;
//   heap.ExtractSorted(&best);   // increasing distance, ties by id
//
// Pairs are ordered by distance, then by id, so the result does not depend on
// the order of the pushes. Not thread-safe: one heap per thread, merge with
// Merge().

#ifndef QUIVER_KERNELS_CPU_TOPK_H_
#define QUIVER_KERNELS_CPU_TOPK_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace quiver::kernels {

template <typename Id>
class TopKHeap {
 public:
  struct Entry {
    float distance;
    Id id;
  };

  // k == 0 keeps nothing.
  explicit TopKHeap(size_t k) : k_(k) { heap_.reserve(k); }

  size_t k() const { return k_; }
  size_t size() const { return heap_.size(); }
  bool full() const { return heap_.size() == k_; }

  // The distance a new pair must beat (be below) to enter: the largest kept
  // distance once full, +inf before.
  float Threshold() const {
    return full() && k_ > 0 ? heap_[0].distance
                            : std::numeric_limits<float>::infinity();
  }

  // Offers a pair; kept if it is among the k smallest so far. Returns true
  // when kept.
  bool Push(float distance, Id id) {
    if (heap_.size() < k_) {
      heap_.push_back(Entry{distance, id});
      SiftUp(heap_.size() - 1);
      return true;
    }
    if (k_ == 0 || !Less(Entry{distance, id}, heap_[0])) return false;
    heap_[0] = Entry{distance, id};
    SiftDown(0);
    return true;
  }

  // Offers every pair of another heap.
  void Merge(const TopKHeap& other) {
    for (const Entry& e : other.heap_) Push(e.distance, e.id);
  }

  // Moves the kept pairs, in increasing (distance, id), to *out (replacing
  // its content) and empties the heap.
  void ExtractSorted(std::vector<Entry>* out) {
    out->resize(heap_.size());
    for (size_t i = heap_.size(); i > 0; --i) {
      (*out)[i - 1] = heap_[0];
      heap_[0] = heap_.back();
      heap_.pop_back();
      if (!heap_.empty()) SiftDown(0);
    }
  }

  void Clear() { heap_.clear(); }

 private:
  static bool Less(const Entry& a, const Entry& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.id < b.id);
  }

  void SiftUp(size_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const size_t parent = (i - 1) / 2;
      if (!Less(heap_[parent], e)) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }

  void SiftDown(size_t i) {
    const size_t n = heap_.size();
    const Entry e = heap_[i];
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && Less(heap_[child], heap_[child + 1])) ++child;
      if (!Less(e, heap_[child])) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = e;
  }

  size_t k_;
  std::vector<Entry> heap_;  // max-heap under Less
};

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_TOPK_H_
