// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A seam for fault-injection tests (tests/fault/): a process-wide
// rocksdb::FileSystem through which every Store opened afterwards does its
// file I/O. Internal: nothing under include/quiver names RocksDB, and
// applications have no reason to call this.
//
// Contract: a Store takes the file system set at the time of its Open and
// keeps it (inside a rocksdb::Env it owns) until it is closed, so resetting
// the hook never pulls files out from under an open DB. nullptr (the
// default) means RocksDB's own POSIX file system.

#ifndef QUIVER_STORAGE_TEST_FILE_SYSTEM_H_
#define QUIVER_STORAGE_TEST_FILE_SYSTEM_H_

#include <memory>

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace quiver::storage {

// Sets (or, with nullptr, clears) the file system of later Store::Open calls.
// Thread-safe.
void SetFileSystemForTesting(std::shared_ptr<rocksdb::FileSystem> fs);

// The file system set above; nullptr when none.
std::shared_ptr<rocksdb::FileSystem> FileSystemForTesting();

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_TEST_FILE_SYSTEM_H_
