// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "storage/store.h"

#include <filesystem>
#include <system_error>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "storage/keys.h"
#include "storage/test_file_system.h"

namespace quiver::storage {
namespace {

constexpr char kMetaCf[] = "meta";
constexpr char kVectorsCf[] = "vectors";
constexpr char kIndexCf[] = "index";
constexpr char kMetaKey[] = "db";

// RocksDB's Status -> ours, keeping RocksDB's message.
Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::OK();
  std::string msg = context + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || s.IsTimedOut()) return Status::Busy(msg);
  if (s.IsIOError()) {
    // The LOCK file is held: another process has the DB open for writing.
    if (s.ToString().find("lock") != std::string::npos ||
        s.ToString().find("LOCK") != std::string::npos) {
      return Status::Busy(context + ": the DB is locked by another writer (" +
                          s.ToString() + ")");
    }
    if (s.IsNoSpace()) return Status::IOError(msg + " (disk full)");
    return Status::IOError(msg);
  }
  return Status::IOError(msg);
}

// RocksDB recovers from some background errors by itself (NoSpace, once
// space is free) by flushing the memtables, which starts a new WAL. When
// they are all empty (right after an open, which flushes what it recovered)
// RocksDB 7.8 switches nothing, and after a failed WAL write the writes
// that follow go to the log writer that failed: each fails ("Writer has
// previous error"), or aborts the process in builds that keep RocksDB's
// assertions, such as Debian's (tests/fault/ found it). quiver turns
// automatic recovery off: after a failed write the DB refuses writes until
// it is reopened, whatever the error.
class NoAutomaticRecovery : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

// Whether the directory `path` holds only what RocksDB writes while creating
// a database, before its CURRENT file: the lock, info logs, IDENTITY, a first
// MANIFEST, OPTIONS and temporary files. Those are the leftovers of a
// creation that failed (a full disk); creating the DB again replaces them.
bool OnlyCreationLeftovers(const std::string& path) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (!(name == "LOCK" || name == "LOG" || name.starts_with("LOG.old.") ||
          name == "IDENTITY" || name.starts_with("MANIFEST-") || name.starts_with("OPTIONS-") ||
          name.ends_with(".dbtmp"))) {
      return false;
    }
  }
  return !ec;
}

// Whether the directory `path` holds no data: no table file and no WAL
// record (a creation that failed before its column families existed wrote
// none).
bool HoldsNoData(const std::string& path) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code fec;
    if (name.ends_with(".sst") || (name.ends_with(".log") && entry.file_size(fec) != 0)) {
      return false;
    }
  }
  return !ec;
}

rocksdb::ColumnFamilyOptions CfOptions(bool vectors) {
  rocksdb::ColumnFamilyOptions o;
  if (vectors) {
    // Float vectors do not compress; spend no CPU on it.
    o.compression = rocksdb::kNoCompression;
    o.write_buffer_size = 64 << 20;
  }
  return o;
}

// Calls fn(key, value) for every record of a column family keyed by
// big-endian uint64 (`what` names the records in errors), in key order;
// stops at the first non-OK Status fn returns, and returns it. A full scan:
// it does not fill the block cache.
Status ForEachKeyed(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& what,
                    const std::function<Status(uint64_t, std::string_view)>& fn) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto key = DecodeU64Key(std::string_view(it->key().data(), it->key().size()));
    if (!key) {
      return Status::Corruption(what + " key of " + std::to_string(it->key().size()) +
                                " bytes (expected 8)");
    }
    Status s = fn(*key, std::string_view(it->value().data(), it->value().size()));
    if (!s.ok()) return s;
  }
  return FromRocks(it->status(), "scanning " + what + " records");
}

}  // namespace

Store::Batch::Batch(const Store* store)
    : store_(store), rep_(std::make_unique<rocksdb::WriteBatch>()) {}
Store::Batch::~Batch() = default;

void Store::Batch::PutVector(uint64_t id, std::span<const float> vec,
                             std::string_view payload) {
  rep_->Put(store_->vectors_cf_, EncodeU64Key(id),
            EncodeVectorRecord(id, vec, payload));
}

void Store::Batch::DeleteVector(uint64_t id) {
  rep_->Delete(store_->vectors_cf_, EncodeU64Key(id));
}

void Store::Batch::PutIndex(const IndexRecord& rec) {
  rep_->Put(store_->index_cf_, EncodeU64Key(rec.epoch), EncodeIndexRecord(rec));
}

void Store::Batch::DeleteIndexBelow(uint64_t below) {
  if (below == 0) return;
  rep_->DeleteRange(store_->index_cf_, EncodeU64Key(0), EncodeU64Key(below));
}

size_t Store::Batch::Count() const { return rep_->Count(); }

Status Store::Open(const OpenOptions& options, const std::string& path,
                   std::unique_ptr<Store>* store, bool* created) {
  namespace fs = std::filesystem;
  store->reset();
  *created = false;
  if (path.empty()) return Status::InvalidArgument("empty DB path");

  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (exists && !fs::is_directory(path, ec)) {
    return Status::InvalidArgument(path + " is a file, not a DB directory");
  }
  const bool has_current = fs::exists(fs::path(path) / "CURRENT", ec);
  if (exists && !has_current && !fs::is_empty(path, ec) && !OnlyCreationLeftovers(path)) {
    return Status::InvalidArgument(path +
                                   " is a non-empty directory that holds no quiver DB");
  }
  const bool secondary = !options.secondary_path.empty();
  const bool read_only = options.read_only || secondary;
  if (!has_current) {
    if (!options.create_if_missing || read_only) {
      return Status::NotFound(path + " holds no DB (create_if_missing is off)");
    }
  } else if (options.error_if_exists) {
    return Status::InvalidArgument(path + " already holds a DB (error_if_exists)");
  }

  rocksdb::DBOptions dbo;
  dbo.create_if_missing = !has_current;
  dbo.paranoid_checks = true;
  // Recovery replays the write-ahead log and stops only at an incomplete
  // last record (a write cut short by a crash, never acknowledged); damage
  // anywhere before it fails the open with Corruption instead of silently
  // dropping every acknowledged write after it (RocksDB's default,
  // kPointInTimeRecovery, would).
  dbo.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  dbo.IncreaseParallelism(2);
  dbo.listeners.push_back(std::make_shared<NoAutomaticRecovery>());
  // Fault-injection tests route the I/O through their own file system.
  std::shared_ptr<rocksdb::Env> env;
  if (std::shared_ptr<rocksdb::FileSystem> fs = FileSystemForTesting()) {
    env = rocksdb::NewCompositeEnv(fs);
    dbo.env = env.get();
  }

  // A creation that failed after RocksDB's CURRENT file but before all our
  // column families existed (a full disk) is finished now, when it left no
  // data and no column family of another program.
  bool unfinished = false;
  if (has_current) {
    std::vector<std::string> families;
    rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(dbo, path, &families);
    if (!ls.ok()) return FromRocks(ls, "listing column families of " + path);
    bool has_meta = false, has_vectors = false, has_index = false, foreign = false;
    for (const auto& f : families) {
      has_meta |= f == kMetaCf;
      has_vectors |= f == kVectorsCf;
      has_index |= f == kIndexCf;
      foreign |= f != kMetaCf && f != kVectorsCf && f != kIndexCf &&
                 f != rocksdb::kDefaultColumnFamilyName;
    }
    if (!(has_meta && has_vectors && has_index)) {
      if (foreign || !HoldsNoData(path)) {
        return Status::InvalidArgument(
            path + " is a RocksDB database of another program, not a quiver DB");
      }
      if (!options.create_if_missing || read_only) {
        return Status::NotFound(path + " holds a DB whose creation did not finish");
      }
      unfinished = true;
    }
  }
  dbo.create_missing_column_families = !has_current || unfinished;

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, CfOptions(false)},
      {kMetaCf, CfOptions(false)},
      {kVectorsCf, CfOptions(true)},
      {kIndexCf, CfOptions(false)},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status rs;
  if (secondary) {
    // A secondary keeps every table file open so that the writer's
    // compactions cannot delete a file under it.
    dbo.max_open_files = -1;
    rs = rocksdb::DB::OpenAsSecondary(dbo, path, options.secondary_path, cfs, &handles, &raw);
  } else if (options.read_only) {
    rs = rocksdb::DB::OpenForReadOnly(dbo, path, cfs, &handles, &raw);
  } else {
    rs = rocksdb::DB::Open(dbo, path, cfs, &handles, &raw);
  }
  if (!rs.ok()) return FromRocks(rs, "opening " + path);

  std::unique_ptr<Store> st(new Store());
  st->path_ = path;
  st->read_only_ = read_only;
  st->secondary_ = secondary;
  st->env_ = std::move(env);
  st->db_.reset(raw);
  st->default_cf_ = handles[0];
  st->meta_cf_ = handles[1];
  st->vectors_cf_ = handles[2];
  st->index_cf_ = handles[3];
  *created = !has_current || unfinished;
  *store = std::move(st);
  return Status::OK();
}

Store::~Store() { (void)Close(); }

Status Store::Close() {
  if (!db_) return Status::OK();
  rocksdb::Status s;
  if (last_write_failed_.load()) {
    // RocksDB's WAL writer may have seen the error (RocksDB then holds it as
    // a background error): syncing that writer fails, and RocksDB builds
    // that keep their assertions (Debian's) abort in the attempt.
    s = rocksdb::Status::IOError("the last write failed; the WAL was not synced");
  } else if (!read_only_) {
    s = db_->FlushWAL(/*sync=*/true);
  }
  for (auto* h : {default_cf_, meta_cf_, vectors_cf_, index_cf_}) {
    if (h != nullptr) (void)db_->DestroyColumnFamilyHandle(h);
  }
  default_cf_ = meta_cf_ = vectors_cf_ = index_cf_ = nullptr;
  rocksdb::Status cs = db_->Close();
  db_.reset();
  if (!s.ok()) return FromRocks(s, "syncing the WAL of " + path_);
  return FromRocks(cs, "closing " + path_);
}

Status Store::ReadMeta(DbMeta* meta) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_cf_, kMetaKey, &value);
  if (s.IsNotFound()) return Status::NotFound("DB metadata is missing");
  if (!s.ok()) return FromRocks(s, "reading DB metadata");
  return DecodeDbMeta(value, meta);
}

Status Store::WriteMeta(const DbMeta& meta) {
  if (read_only_) return Status::NotSupported("the DB is open read-only");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Put(wo, meta_cf_, kMetaKey, EncodeDbMeta(meta));
  last_write_failed_.store(!s.ok());
  return FromRocks(s, "writing DB metadata");
}

Status Store::Commit(Batch* batch, bool sync) {
  if (read_only_) return Status::NotSupported("the DB is open read-only");
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  rocksdb::Status s = db_->Write(wo, batch->rep_.get());
  last_write_failed_.store(!s.ok());
  return FromRocks(s, "writing to " + path_);
}

Status Store::GetVector(uint64_t id, bool verify_checksums, std::string* value) {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = verify_checksums;
  rocksdb::Status s = db_->Get(ro, vectors_cf_, EncodeU64Key(id), value);
  if (s.IsNotFound()) return Status::NotFound("no vector with id " + std::to_string(id));
  return FromRocks(s, "reading vector " + std::to_string(id));
}

Status Store::ForEachVector(
    const std::function<Status(uint64_t, std::string_view)>& fn) {
  return ForEachKeyed(db_.get(), vectors_cf_, "vector", fn);
}

uint64_t Store::EstimateVectorCount() {
  uint64_t n = 0;
  db_->GetIntProperty(vectors_cf_, "rocksdb.estimate-num-keys", &n);
  return n;
}

Status Store::LatestIndex(IndexRecord* rec) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), index_cf_));
  it->SeekToLast();
  if (!it->Valid()) {
    if (!it->status().ok()) return FromRocks(it->status(), "reading the index");
    return Status::NotFound("no trained index");
  }
  Status s = DecodeIndexRecord(std::string_view(it->value().data(), it->value().size()), rec);
  if (!s.ok()) return s;
  auto epoch = DecodeU64Key(std::string_view(it->key().data(), it->key().size()));
  if (!epoch || *epoch != rec->epoch) {
    return Status::Corruption("index record key does not match its epoch");
  }
  return Status::OK();
}

Status Store::ForEachIndex(const std::function<Status(uint64_t, std::string_view)>& fn) {
  return ForEachKeyed(db_.get(), index_cf_, "index", fn);
}

Status Store::VerifyChecksums() {
  return FromRocks(db_->VerifyChecksum(), "verifying the checksums of " + path_);
}

Status Store::TryCatchUpWithPrimary() {
  if (!secondary_) return Status::NotSupported("not a secondary instance");
  return FromRocks(db_->TryCatchUpWithPrimary(), "catching up with the writer of " + path_);
}

uint64_t Store::DiskBytes() const {
  namespace fs = std::filesystem;
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(path_, ec)) {
    std::error_code fec;
    if (e.is_regular_file(fec)) bytes += e.file_size(fec);
  }
  return bytes;
}

}  // namespace quiver::storage
