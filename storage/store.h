// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Store: the DB's bytes in RocksDB. Three column families:
//   meta    "db" -> DbMeta: magic, format version, dimension, metric
//   vectors big-endian id -> VectorRecord (the source of truth)
//   index   big-endian epoch -> IndexRecord (trained centroids)
// Everything else quiver holds in memory is derived from these and rebuilt
// on Open. No RocksDB type appears in this header.
//
// Thread safety: all methods may be called concurrently (RocksDB's own
// guarantees); the engine orders writes.

#ifndef QUIVER_STORAGE_STORE_H_
#define QUIVER_STORAGE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "quiver/status.h"
#include "storage/records.h"

namespace rocksdb {
class DB;
class Env;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace quiver::storage {

class Store {
 public:
  struct OpenOptions {
    bool create_if_missing = true;
    bool error_if_exists = false;
    bool read_only = false;
    // Non-empty: open as a RocksDB secondary instance (read-only, follows
    // the writer through TryCatchUpWithPrimary), keeping its own info log
    // in this directory.
    std::string secondary_path;
  };

  // Writes gathered for one atomic Commit().
  class Batch {
   public:
    explicit Batch(const Store* store);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    void PutVector(uint64_t id, std::span<const float> vec, std::string_view payload);
    void DeleteVector(uint64_t id);
    void PutIndex(const IndexRecord& rec);
    // Removes index records of epochs [0, below).
    void DeleteIndexBelow(uint64_t below);
    size_t Count() const;

   private:
    friend class Store;
    const Store* store_;
    std::unique_ptr<rocksdb::WriteBatch> rep_;
  };

  // Opens (or creates) the RocksDB database at `path`. When it is created,
  // *created is set and the caller must WriteMeta() before anything else.
  // Errors: InvalidArgument for a path that is a file, a directory that
  // holds something other than a quiver DB, or error_if_exists; Busy when
  // another process holds the lock; Corruption/IOError from RocksDB.
  static Status Open(const OpenOptions& options, const std::string& path,
                     std::unique_ptr<Store>* store, bool* created);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // NotFound when the meta record is missing (a DB whose creation crashed
  // before its metadata was written).
  Status ReadMeta(DbMeta* meta);
  Status WriteMeta(const DbMeta& meta);

  // Applies `batch` atomically; returns once it is in the WAL (fsync'ed when
  // `sync`). NotSupported on a read-only store.
  Status Commit(Batch* batch, bool sync);

  // The encoded record of `id` into *value; NotFound when absent.
  Status GetVector(uint64_t id, bool verify_checksums, std::string* value);

  // Calls fn(id, record bytes) for every vector in id order; stops at the
  // first non-OK Status fn returns, and returns it.
  Status ForEachVector(const std::function<Status(uint64_t, std::string_view)>& fn);

  // Number of vector records (RocksDB's estimate; exact after a scan).
  uint64_t EstimateVectorCount();

  // The index record of the highest epoch; NotFound when none exists.
  Status LatestIndex(IndexRecord* rec);

  // Calls fn(epoch key, record bytes) for every index record, oldest first.
  Status ForEachIndex(const std::function<Status(uint64_t, std::string_view)>& fn);

  // Reads every block of every table file and checks its checksum.
  Status VerifyChecksums();

  // Secondary instances: applies the writer's changes made since the open
  // or the last catch-up. NotSupported on other stores.
  Status TryCatchUpWithPrimary();

  // Bytes of the DB's files (tables, logs, manifest) on disk.
  uint64_t DiskBytes() const;

  // Syncs the WAL and closes RocksDB, releasing the lock. When the last
  // write failed the WAL is not synced (RocksDB's log writer has seen the
  // error and refuses to) and Close returns IOError once RocksDB is closed:
  // writes acknowledged without sync are in the WAL file, not fsync'ed.
  Status Close();

  const std::string& path() const { return path_; }
  // Writes return NotSupported (read-only and secondary stores).
  bool read_only() const { return read_only_; }
  bool secondary() const { return secondary_; }

 private:
  Store() = default;

  std::string path_;
  bool read_only_ = false;
  bool secondary_ = false;
  // The last write (Commit, WriteMeta) returned an error. Writes are
  // serialised by the engine, and after a failed one RocksDB refuses the
  // rest (no automatic recovery, see store.cc): in effect it stays set.
  std::atomic<bool> last_write_failed_{false};
  // The Env over the test file system (storage/test_file_system.h) when one
  // was set at Open; null otherwise. Declared before db_: it outlives it.
  std::shared_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* vectors_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* index_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;
};

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_STORE_H_
