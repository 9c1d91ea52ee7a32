// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "quiver/status.h"

namespace quiver {

Status::Status(Code code, std::string_view msg)
    : state_(std::make_unique<State>(State{code, std::string(msg)})) {}

Status::Status(const Status& rhs)
    : state_(rhs.state_ ? std::make_unique<State>(*rhs.state_) : nullptr) {}

Status& Status::operator=(const Status& rhs) {
  if (this != &rhs) {
    state_ = rhs.state_ ? std::make_unique<State>(*rhs.state_) : nullptr;
  }
  return *this;
}

std::string_view Status::message() const {
  return state_ ? std::string_view(state_->message) : std::string_view();
}

std::string Status::ToString() const {
  if (state_ == nullptr) return "OK";
  const char* name = "Unknown";
  switch (state_->code) {
    case Code::kOk: name = "OK"; break;
    case Code::kNotFound: name = "NotFound"; break;
    case Code::kCorruption: name = "Corruption"; break;
    case Code::kNotSupported: name = "NotSupported"; break;
    case Code::kInvalidArgument: name = "InvalidArgument"; break;
    case Code::kIOError: name = "IOError"; break;
    case Code::kBusy: name = "Busy"; break;
    case Code::kAborted: name = "Aborted"; break;
    case Code::kResourceExhausted: name = "ResourceExhausted"; break;
  }
  std::string out(name);
  if (!state_->message.empty()) {
    out += ": ";
    out += state_->message;
  }
  return out;
}

}  // namespace quiver
