// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A Status reports the outcome of an operation: success, or an error code
// with a message. Every fallible call of the public API returns one; no
// exception crosses the API.
//
//   quiver::Status s = db->Get(quiver::ReadOptions(), id, &vec);
//   if (s.IsNotFound()) { ... } else if (!s.ok()) { log(s.ToString()); }
//
// Thread safety: a const Status may be read from many threads; mutating one
// requires external synchronization.

#ifndef QUIVER_STATUS_H_
#define QUIVER_STATUS_H_

#include <memory>
#include <string>
#include <string_view>

#include "quiver/export.h"

namespace quiver {

class [[nodiscard]] QUIVER_EXPORT Status {
 public:
  enum class Code : unsigned char {
    kOk = 0,
    kNotFound = 1,
    kCorruption = 2,
    kNotSupported = 3,
    kInvalidArgument = 4,
    kIOError = 5,
    kBusy = 6,
    kAborted = 7,
    kResourceExhausted = 8,
  };

  // Success; holds no allocation.
  Status() noexcept = default;
  Status(const Status& rhs);
  Status& operator=(const Status& rhs);
  Status(Status&& rhs) noexcept = default;
  Status& operator=(Status&& rhs) noexcept = default;
  ~Status() = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) { return Status(Code::kNotFound, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status NotSupported(std::string_view msg) { return Status(Code::kNotSupported, msg); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(Code::kInvalidArgument, msg);
  }
  static Status IOError(std::string_view msg) { return Status(Code::kIOError, msg); }
  // Another user holds a resource this call needs (e.g. the DB's lock).
  static Status Busy(std::string_view msg) { return Status(Code::kBusy, msg); }
  // The operation was stopped before it finished (e.g. by a callback).
  static Status Aborted(std::string_view msg) { return Status(Code::kAborted, msg); }
  // Out of memory, on the host or on a GPU.
  static Status ResourceExhausted(std::string_view msg) {
    return Status(Code::kResourceExhausted, msg);
  }

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ == nullptr ? Code::kOk : state_->code; }
  bool IsNotFound() const { return code() == Code::kNotFound; }
  bool IsCorruption() const { return code() == Code::kCorruption; }
  bool IsNotSupported() const { return code() == Code::kNotSupported; }
  bool IsInvalidArgument() const { return code() == Code::kInvalidArgument; }
  bool IsIOError() const { return code() == Code::kIOError; }
  bool IsBusy() const { return code() == Code::kBusy; }
  bool IsAborted() const { return code() == Code::kAborted; }
  bool IsResourceExhausted() const { return code() == Code::kResourceExhausted; }

  // The message alone, without the code ("" for OK).
  std::string_view message() const;
  // "OK", or the code's name followed by ": " and the message.
  std::string ToString() const;

 private:
  struct State {
    Code code;
    std::string message;
  };
  Status(Code code, std::string_view msg);

  std::unique_ptr<State> state_;
};

}  // namespace quiver

#endif  // QUIVER_STATUS_H_
