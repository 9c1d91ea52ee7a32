// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// SharedSlot<T>: a shared_ptr that readers copy and one writer replaces:
// the publication point of RCU-style versions (an IndexVersion, a
// partition's block). A reader holds its copy as long as it likes; the old
// object is freed when the last copy goes, never under the lock.
//
// Why not std::atomic<std::shared_ptr<T>>: libstdc++ implements it with a
// spin lock hidden in the control-block pointer, so it is not lock-free
// either, and ThreadSanitizer cannot see the ordering it provides. Here the
// critical section is one reference-count increment, under a mutex every
// tool understands.
//
// Thread safety: Load() and Store() may be called from any threads.

#ifndef QUIVER_INDEX_SHARED_SLOT_H_
#define QUIVER_INDEX_SHARED_SLOT_H_

#include <memory>
#include <mutex>
#include <utility>

namespace quiver::index {

template <typename T>
class SharedSlot {
 public:
  SharedSlot() = default;
  explicit SharedSlot(std::shared_ptr<T> p) : ptr_(std::move(p)) {}
  SharedSlot(const SharedSlot&) = delete;
  SharedSlot& operator=(const SharedSlot&) = delete;

  std::shared_ptr<T> Load() const {
    std::lock_guard lock(mu_);
    return ptr_;
  }

  void Store(std::shared_ptr<T> p) {
    {
      std::lock_guard lock(mu_);
      std::swap(ptr_, p);
    }
    // `p` now holds the previous object; it is released here, unlocked.
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<T> ptr_;
};

}  // namespace quiver::index

#endif  // QUIVER_INDEX_SHARED_SLOT_H_
