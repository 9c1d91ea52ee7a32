// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "storage/test_file_system.h"

#include <mutex>

namespace quiver::storage {
namespace {

std::mutex& HookMutex() {
  static std::mutex mu;
  return mu;
}

std::shared_ptr<rocksdb::FileSystem>& Hook() {
  static std::shared_ptr<rocksdb::FileSystem> fs;
  return fs;
}

}  // namespace

void SetFileSystemForTesting(std::shared_ptr<rocksdb::FileSystem> fs) {
  std::lock_guard lock(HookMutex());
  Hook() = std::move(fs);
}

std::shared_ptr<rocksdb::FileSystem> FileSystemForTesting() {
  std::lock_guard lock(HookMutex());
  return Hook();
}

}  // namespace quiver::storage
