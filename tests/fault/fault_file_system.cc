// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "fault/fault_file_system.h"

#include <bit>
#include <utility>

namespace quiver::test {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

IOStatus Injected(FaultType type, FaultOp op, FileKind kind) {
  const std::string what = "injected fault: " + std::string(FaultTypeName(type)) + " on " +
                           std::string(FaultOpName(op)) + " of a " +
                           std::string(FileKindName(kind)) + " file";
  return type == FaultType::kNoSpace || type == FaultType::kTornNoSpace ? IOStatus::NoSpace(what)
                                                                        : IOStatus::IOError(what);
}

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, FaultFileSystem* fs,
                    FileKind kind)
      : FSWritableFileOwnerWrapper(std::move(file)), fs_(fs), kind_(kind) {}

  IOStatus Append(const Slice& data, const IOOptions& options,
                  IODebugContext* dbg) override {
    IOStatus s = Check(data, [&](const Slice& d) { return target()->Append(d, options, dbg); });
    return s.ok() ? target()->Append(data, options, dbg) : s;
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    // A torn prefix no longer matches the checksum handed over: write it
    // without one.
    IOStatus s = Check(data, [&](const Slice& d) { return target()->Append(d, options, dbg); });
    return s.ok() ? target()->Append(data, options, info, dbg) : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    IOStatus s = Check(data, [&](const Slice& d) {
      return target()->PositionedAppend(d, offset, options, dbg);
    });
    return s.ok() ? target()->PositionedAppend(data, offset, options, dbg) : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    IOStatus s = Check(data, [&](const Slice& d) {
      return target()->PositionedAppend(d, offset, options, dbg);
    });
    return s.ok() ? target()->PositionedAppend(data, offset, options, info, dbg) : s;
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    if (auto f = fs_->OnOperation(FaultOp::kSync, kind_)) return Injected(*f, FaultOp::kSync, kind_);
    return target()->Sync(options, dbg);
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    if (auto f = fs_->OnOperation(FaultOp::kSync, kind_)) return Injected(*f, FaultOp::kSync, kind_);
    return target()->Fsync(options, dbg);
  }

 private:
  // OK when the append may go ahead; otherwise the injected error, after
  // `write` has put the torn prefix in place for a torn write.
  template <typename Write>
  IOStatus Check(const Slice& data, Write write) {
    std::optional<FaultType> f = fs_->OnOperation(FaultOp::kAppend, kind_);
    if (!f) return IOStatus::OK();
    if (*f == FaultType::kTornWrite || *f == FaultType::kTornNoSpace) {
      (void)write(Slice(data.data(), data.size() / 2));
    }
    return Injected(*f, FaultOp::kAppend, kind_);
  }

  FaultFileSystem* fs_;
  FileKind kind_;
};

class FaultSequentialFile : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  FaultSequentialFile(std::unique_ptr<rocksdb::FSSequentialFile> file, FaultFileSystem* fs,
                      FileKind kind)
      : FSSequentialFileOwnerWrapper(std::move(file)), fs_(fs), kind_(kind) {}

  IOStatus Read(size_t n, const IOOptions& options, Slice* result, char* scratch,
                IODebugContext* dbg) override {
    if (auto f = fs_->OnOperation(FaultOp::kRead, kind_)) {
      *result = Slice();
      return Injected(*f, FaultOp::kRead, kind_);
    }
    return target()->Read(n, options, result, scratch, dbg);
  }
  IOStatus PositionedRead(uint64_t offset, size_t n, const IOOptions& options, Slice* result,
                          char* scratch, IODebugContext* dbg) override {
    if (auto f = fs_->OnOperation(FaultOp::kRead, kind_)) {
      *result = Slice();
      return Injected(*f, FaultOp::kRead, kind_);
    }
    return target()->PositionedRead(offset, n, options, result, scratch, dbg);
  }

 private:
  FaultFileSystem* fs_;
  FileKind kind_;
};

class FaultRandomAccessFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile> file, FaultFileSystem* fs,
                        FileKind kind)
      : FSRandomAccessFileOwnerWrapper(std::move(file)), fs_(fs), kind_(kind) {}

  IOStatus Read(uint64_t offset, size_t n, const IOOptions& options, Slice* result,
                char* scratch, IODebugContext* dbg) const override {
    if (auto f = fs_->OnOperation(FaultOp::kRead, kind_)) {
      *result = Slice();
      return Injected(*f, FaultOp::kRead, kind_);
    }
    return target()->Read(offset, n, options, result, scratch, dbg);
  }
  // One operation for the whole request: every part fails together.
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const IOOptions& options,
                     IODebugContext* dbg) override {
    if (auto f = fs_->OnOperation(FaultOp::kRead, kind_)) {
      const IOStatus s = Injected(*f, FaultOp::kRead, kind_);
      for (size_t i = 0; i < num_reqs; ++i) {
        reqs[i].result = Slice();
        reqs[i].status = s;
      }
      return s;
    }
    return target()->MultiRead(reqs, num_reqs, options, dbg);
  }
  // Asynchronous reads (ReadOptions::async_io, which quiver does not set)
  // are refused so that none bypasses the faults.
  IOStatus ReadAsync(rocksdb::FSReadRequest&, const IOOptions&,
                     std::function<void(const rocksdb::FSReadRequest&, void*)>, void*, void**,
                     rocksdb::IOHandleDeleter*, IODebugContext*) override {
    return IOStatus::NotSupported("FaultFileSystem: no asynchronous reads");
  }

 private:
  FaultFileSystem* fs_;
  FileKind kind_;
};

size_t KindIndex(FileKind kind) { return static_cast<size_t>(std::countr_zero(uint32_t(kind))); }

}  // namespace

FileKind KindOf(std::string_view path) {
  const size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (name.ends_with(".log")) return kWalFile;
  if (name.ends_with(".sst")) return kTableFile;
  if (name.starts_with("MANIFEST-")) return kManifestFile;
  return kOtherFile;
}

std::string_view FileKindName(FileKind kind) {
  switch (kind) {
    case kWalFile: return "wal";
    case kTableFile: return "table";
    case kManifestFile: return "manifest";
    default: return "other";
  }
}

std::string_view FaultOpName(FaultOp op) {
  switch (op) {
    case FaultOp::kAppend: return "append";
    case FaultOp::kSync: return "sync";
    case FaultOp::kRead: return "read";
  }
  return "?";
}

std::string_view FaultTypeName(FaultType type) {
  switch (type) {
    case FaultType::kIOError: return "io-error";
    case FaultType::kNoSpace: return "disk-full";
    case FaultType::kTornWrite: return "torn-write";
    case FaultType::kTornNoSpace: return "torn-disk-full";
  }
  return "?";
}

std::string Fault::ToString() const {
  std::string kinds_str;
  for (uint32_t k = 1; k <= kOtherFile; k <<= 1) {
    if ((kinds & k) == 0) continue;
    if (!kinds_str.empty()) kinds_str += "|";
    kinds_str += FileKindName(static_cast<FileKind>(k));
  }
  return std::string(FaultTypeName(type)) + " on " + std::string(FaultOpName(op)) + " of " +
         kinds_str + " after " + std::to_string(after) + " x" +
         (times == kForever ? std::string("forever") : std::to_string(times));
}

FaultFileSystem::Counters& FaultFileSystem::Counters::operator+=(const Counters& other) {
  for (size_t op = 0; op < kNumFaultOps; ++op) {
    for (size_t k = 0; k < kNumFileKinds; ++k) ops[op][k] += other.ops[op][k];
    for (size_t t = 0; t < kNumFaultTypes; ++t) injected[op][t] += other.injected[op][t];
  }
  for (size_t k = 0; k < kNumFileKinds; ++k) injected_in[k] += other.injected_in[k];
  return *this;
}

uint64_t FaultFileSystem::Counters::Ops(FaultOp op, uint32_t kinds) const {
  uint64_t n = 0;
  for (size_t k = 0; k < kNumFileKinds; ++k) {
    if (kinds & (1u << k)) n += ops[static_cast<size_t>(op)][k];
  }
  return n;
}

uint64_t FaultFileSystem::Counters::Injected(FaultOp op) const {
  uint64_t n = 0;
  for (uint64_t c : injected[static_cast<size_t>(op)]) n += c;
  return n;
}

uint64_t FaultFileSystem::Counters::Injected(FaultType type) const {
  uint64_t n = 0;
  for (const auto& per_op : injected) n += per_op[static_cast<size_t>(type)];
  return n;
}

uint64_t FaultFileSystem::Counters::TotalInjected() const {
  uint64_t n = 0;
  for (const auto& per_op : injected) {
    for (uint64_t c : per_op) n += c;
  }
  return n;
}

std::string FaultFileSystem::Counters::ToString() const {
  std::string out;
  for (size_t op = 0; op < kNumFaultOps; ++op) {
    out += (op == 0 ? "" : " | ") + std::string(FaultOpName(static_cast<FaultOp>(op)));
    for (size_t k = 0; k < kNumFileKinds; ++k) {
      out += " " + std::string(FileKindName(static_cast<FileKind>(1u << k))) + " " +
             std::to_string(ops[op][k]);
    }
  }
  return out + " | " + InjectedToString();
}

std::string FaultFileSystem::Counters::InjectedToString() const {
  std::string out = "injected " + std::to_string(TotalInjected()) + ":";
  for (size_t op = 0; op < kNumFaultOps; ++op) {
    for (size_t t = 0; t < kNumFaultTypes; ++t) {
      if (injected[op][t] == 0) continue;
      out += " " + std::string(FaultTypeName(static_cast<FaultType>(t))) + " on " +
             std::string(FaultOpName(static_cast<FaultOp>(op))) + " " +
             std::to_string(injected[op][t]) + ",";
    }
  }
  out += " in";
  for (size_t k = 0; k < kNumFileKinds; ++k) {
    out += " " + std::string(FileKindName(static_cast<FileKind>(1u << k))) + " " +
           std::to_string(injected_in[k]);
  }
  return out;
}

FaultFileSystem::FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

void FaultFileSystem::Arm(const Fault& fault) {
  std::lock_guard lock(mu_);
  if (fault.times > 0) armed_.push_back(fault);
}

void FaultFileSystem::Clear() {
  std::lock_guard lock(mu_);
  armed_.clear();
}

bool FaultFileSystem::Armed() const {
  std::lock_guard lock(mu_);
  return !armed_.empty();
}

FaultFileSystem::Counters FaultFileSystem::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void FaultFileSystem::ResetCounters() {
  std::lock_guard lock(mu_);
  counters_ = Counters();
}

std::optional<FaultType> FaultFileSystem::OnOperation(FaultOp op, FileKind kind) {
  std::lock_guard lock(mu_);
  ++counters_.ops[static_cast<size_t>(op)][KindIndex(kind)];
  std::optional<FaultType> fire;
  for (auto it = armed_.begin(); it != armed_.end();) {
    if (it->op != op || (it->kinds & kind) == 0) {
      ++it;
      continue;
    }
    if (it->after > 0) {
      --it->after;  // every armed fault counts down, even when another fires
      ++it;
      continue;
    }
    if (!fire) {
      // A torn sync or read makes no sense: those fail untorn.
      fire = it->type;
      if (op != FaultOp::kAppend && *fire == FaultType::kTornWrite) fire = FaultType::kIOError;
      if (op != FaultOp::kAppend && *fire == FaultType::kTornNoSpace) fire = FaultType::kNoSpace;
      ++counters_.injected[static_cast<size_t>(op)][static_cast<size_t>(*fire)];
      ++counters_.injected_in[KindIndex(kind)];
      if (it->times != Fault::kForever && --it->times == 0) {
        it = armed_.erase(it);
        continue;
      }
    }
    ++it;
  }
  return fire;
}

rocksdb::IOStatus FaultFileSystem::NewSequentialFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSSequentialFile>* result, IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSSequentialFile> file;
  IOStatus s = target()->NewSequentialFile(fname, opts, &file, dbg);
  if (s.ok()) result->reset(new FaultSequentialFile(std::move(file), this, KindOf(fname)));
  return s;
}

rocksdb::IOStatus FaultFileSystem::NewRandomAccessFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSRandomAccessFile>* result, IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSRandomAccessFile> file;
  IOStatus s = target()->NewRandomAccessFile(fname, opts, &file, dbg);
  if (s.ok()) result->reset(new FaultRandomAccessFile(std::move(file), this, KindOf(fname)));
  return s;
}

rocksdb::IOStatus FaultFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->NewWritableFile(fname, opts, &file, dbg);
  if (s.ok()) result->reset(new FaultWritableFile(std::move(file), this, KindOf(fname)));
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReopenWritableFile(fname, opts, &file, dbg);
  if (s.ok()) result->reset(new FaultWritableFile(std::move(file), this, KindOf(fname)));
  return s;
}

rocksdb::IOStatus FaultFileSystem::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSWritableFile>* result, IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> file;
  IOStatus s = target()->ReuseWritableFile(fname, old_fname, opts, &file, dbg);
  if (s.ok()) result->reset(new FaultWritableFile(std::move(file), this, KindOf(fname)));
  return s;
}

}  // namespace quiver::test
