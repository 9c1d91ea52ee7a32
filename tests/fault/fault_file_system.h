// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// FaultFileSystem: a rocksdb::FileSystemWrapper that makes the DB's file
// operations fail on demand, for the fault-injection tests. Installed with
// storage::SetFileSystemForTesting, it wraps every file RocksDB opens; an
// armed Fault picks which operations fail (appends, syncs or reads), on
// which kinds of file (WAL, table, MANIFEST, other), after how many more
// matching operations (the countdown) and how many times in a row.
//
// The ways an operation fails:
//   kIOError   the operation does nothing and returns IOStatus::IOError;
//   kNoSpace   the same with IOStatus::NoSpace (disk full);
//   kTornWrite appends only: the first half of the data reaches the file,
//              then IOError, as a device that fails mid-write leaves it;
//   kTornNoSpace appends only: the first half, then NoSpace, as a disk that
//              fills up mid-write leaves it (POSIX write() is short, then
//              fails with ENOSPC).
// Everything not armed passes through untouched.
//
// Thread safety: all methods may be called concurrently (RocksDB's flush
// and compaction threads do I/O beside the writer).

#ifndef QUIVER_TESTS_FAULT_FAULT_FILE_SYSTEM_H_
#define QUIVER_TESTS_FAULT_FAULT_FILE_SYSTEM_H_

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/file_system.h>

namespace quiver::test {

// Kinds of file, as a bit mask, from the file's name.
enum FileKind : uint32_t {
  kWalFile = 1,       // NNNNNN.log
  kTableFile = 2,     // NNNNNN.sst
  kManifestFile = 4,  // MANIFEST-NNNNNN
  kOtherFile = 8,     // CURRENT, its .dbtmp, OPTIONS-*, IDENTITY, ...
  kAnyFile = 15,
};
inline constexpr size_t kNumFileKinds = 4;

// The kind of the file at `path` (a path or a bare name).
FileKind KindOf(std::string_view path);
// "wal", "table", "manifest", "other".
std::string_view FileKindName(FileKind kind);

// Which operations a Fault fails.
enum class FaultOp : uint8_t {
  kAppend,  // Append and PositionedAppend of writable files
  kSync,    // Sync and Fsync of writable files
  kRead,    // Read, PositionedRead and MultiRead of sequential and random-access files
};
inline constexpr size_t kNumFaultOps = 3;
std::string_view FaultOpName(FaultOp op);

enum class FaultType : uint8_t { kIOError, kNoSpace, kTornWrite, kTornNoSpace };
inline constexpr size_t kNumFaultTypes = 4;
std::string_view FaultTypeName(FaultType type);

struct Fault {
  static constexpr uint64_t kForever = std::numeric_limits<uint64_t>::max();

  FaultOp op = FaultOp::kAppend;
  FaultType type = FaultType::kIOError;  // torn ones only with kAppend
  uint32_t kinds = kAnyFile;             // FileKind mask
  uint64_t after = 0;  // matching operations that still succeed first
  uint64_t times = 1;  // matching operations that fail then (kForever: all)

  std::string ToString() const;
};

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  // What the file system saw and did since it was made (or ResetCounters).
  struct Counters {
    // Operations seen, per FaultOp and FileKind bit (index = log2 of it).
    std::array<std::array<uint64_t, kNumFileKinds>, kNumFaultOps> ops{};
    // Faults injected, per FaultOp and FaultType, and per FileKind bit.
    std::array<std::array<uint64_t, kNumFaultTypes>, kNumFaultOps> injected{};
    std::array<uint64_t, kNumFileKinds> injected_in{};

    Counters& operator+=(const Counters& other);
    uint64_t Ops(FaultOp op, uint32_t kinds = kAnyFile) const;
    uint64_t Injected(FaultOp op) const;
    uint64_t Injected(FaultType type) const;
    uint64_t TotalInjected() const;
    // "append wal 3 table 1 ... | injected ...", for logs.
    std::string ToString() const;
    // "injected 5: io-error on append 2, ... in wal 3 table 1 ...".
    std::string InjectedToString() const;
  };

  explicit FaultFileSystem(
      std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());

  const char* Name() const override { return "QuiverFaultFileSystem"; }

  // Adds `fault` beside those already armed; each matching operation counts
  // down every armed fault, and the first one due fails it. A fault that has
  // failed `times` operations disarms itself.
  void Arm(const Fault& fault);
  // Disarms every fault: from now on all operations pass through.
  void Clear();
  // Whether some armed fault may still fire.
  bool Armed() const;

  Counters counters() const;
  void ResetCounters();

  // Called by the wrapped files before each operation: the failure to
  // inject, if any. Counts the operation and the fault.
  std::optional<FaultType> OnOperation(FaultOp op, FileKind kind);

  rocksdb::IOStatus NewSequentialFile(const std::string& fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomAccessFile(const std::string& fname,
                                        const rocksdb::FileOptions& opts,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& opts,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& opts,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

 private:
  mutable std::mutex mu_;
  std::vector<Fault> armed_;  // guarded by mu_
  Counters counters_;         // guarded by mu_
};

}  // namespace quiver::test

#endif  // QUIVER_TESTS_FAULT_FAULT_FILE_SYSTEM_H_
