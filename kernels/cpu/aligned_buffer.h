// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Internal: a growable, 64-byte aligned, uninitialised buffer of trivially
// copyable values (scratch space of the CPU kernels).

#ifndef QUIVER_KERNELS_CPU_ALIGNED_BUFFER_H_
#define QUIVER_KERNELS_CPU_ALIGNED_BUFFER_H_

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>

namespace quiver::kernels {

template <typename T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  static constexpr size_t kAlignment = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) { Reset(n); }

  // Holds exactly n uninitialised elements (old content dropped).
  void Reset(size_t n) {
    data_.reset(Allocate(n));
    size_ = capacity_ = n;
  }

  // Holds at least n elements; keeps the storage (not the content) when it
  // is large enough already.
  void Reserve(size_t n) {
    if (n > capacity_) Reset(n);
    size_ = n;
  }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_.get()[i]; }
  const T& operator[](size_t i) const { return data_.get()[i]; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };

  static T* Allocate(size_t n) {
    if (n == 0) return nullptr;
    const size_t bytes =
        (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }

  std::unique_ptr<T, Free> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace quiver::kernels

#endif  // QUIVER_KERNELS_CPU_ALIGNED_BUFFER_H_
