// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "storage/handover.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <rocksdb/file_checksum.h>

namespace quiver::storage::handover {
namespace {

namespace fs = std::filesystem;

// Request file header: magic, version, payload length, CRC32C of the payload.
constexpr char kMagic[8] = {'Q', 'V', 'H', 'A', 'N', 'D', 'O', 'V'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8;
// A request is one IndexRecord: bounded by the largest centroid table the
// DB accepts (65,536 partitions x 65,536 dims would be 16 GiB; far more
// than any real one). Checked before allocating.
constexpr uint64_t kMaxPayload = uint64_t{4} << 30;

std::string Name(uint64_t id, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64 "%s", id, ext);
  return buf;
}

uint32_t Crc32c(std::string_view bytes) {
  auto gen = rocksdb::GetFileChecksumGenCrc32cFactory()->CreateFileChecksumGenerator(
      rocksdb::FileChecksumGenContext());
  gen->Update(bytes.data(), bytes.size());
  gen->Finalize();
  const std::string sum = gen->GetChecksum();
  uint32_t crc = 0;
  std::memcpy(&crc, sum.data(), std::min(sum.size(), sizeof(crc)));
  return crc;
}

Status Errno(const std::string& what) {
  return Status::IOError(what + ": " + std::strerror(errno));
}

Status SyncDir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return Errno("opening " + dir.string());
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::OK() : Errno("syncing " + dir.string());
}

// Writes `bytes` to dir/name through dir/name.tmp, fsync and rename.
Status WriteDurably(const fs::path& dir, const std::string& name, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("creating " + dir.string() + ": " + ec.message());
  const fs::path tmp = dir / (name + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Errno("creating " + tmp.string());
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("writing " + tmp.string());
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("syncing " + tmp.string());
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), (dir / name).c_str()) != 0) return Errno("renaming " + tmp.string());
  return SyncDir(dir);
}

Status ReadFile(const fs::path& path, std::string* bytes, uint64_t max_bytes) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) {
    return ec == std::errc::no_such_file_or_directory
               ? Status::NotFound(path.string())
               : Status::IOError(path.string() + ": " + ec.message());
  }
  if (size > max_bytes) {
    return Status::Corruption(path.string() + ": " + std::to_string(size) +
                              " bytes is too large for a hand-over file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(path.string() + ": cannot open");
  bytes->resize(size);
  if (!in.read(bytes->data(), static_cast<std::streamsize>(size))) {
    return Status::IOError(path.string() + ": read failed");
  }
  return Status::OK();
}

template <typename T>
void Append(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

}  // namespace

std::string Dir(const std::string& db_path) { return (fs::path(db_path) / "handover").string(); }

uint64_t NewId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

Status Publish(const std::string& db_path, const IndexRecord& rec) {
  if (rec.handover_id == 0) return Status::InvalidArgument("a hand-over needs a non-zero id");
  const std::string payload = EncodeIndexRecord(rec);
  std::string file(kMagic, sizeof(kMagic));
  Append(&file, kVersion);
  Append(&file, Crc32c(payload));
  Append(&file, static_cast<uint64_t>(payload.size()));
  file += payload;
  return WriteDurably(Dir(db_path), Name(rec.handover_id, ".request"), file);
}

Status ListRequests(const std::string& db_path, std::vector<uint64_t>* ids) {
  ids->clear();
  std::error_code ec;
  const fs::path dir = Dir(db_path);
  if (!fs::exists(dir, ec)) return Status::OK();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".request" || name.size() != 16 + 8) continue;
    uint64_t id = 0;
    if (std::sscanf(name.c_str(), "%16" SCNx64, &id) == 1 && id != 0) ids->push_back(id);
  }
  if (ec) return Status::IOError("listing " + dir.string() + ": " + ec.message());
  std::sort(ids->begin(), ids->end());
  return Status::OK();
}

Status ReadRequest(const std::string& db_path, uint64_t id, IndexRecord* rec) {
  const fs::path path = fs::path(Dir(db_path)) / Name(id, ".request");
  std::string file;
  Status s = ReadFile(path, &file, kHeaderBytes + kMaxPayload);
  if (!s.ok()) return s;
  if (file.size() < kHeaderBytes || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return Status::Corruption(path.string() + " is not a quiver hand-over file");
  }
  uint32_t version = 0, crc32 = 0;
  uint64_t length = 0;
  std::memcpy(&version, file.data() + 8, 4);
  std::memcpy(&crc32, file.data() + 12, 4);
  std::memcpy(&length, file.data() + 16, 8);
  if (version != kVersion) {
    return Status::Corruption(path.string() + ": hand-over version " + std::to_string(version) +
                              " is not supported");
  }
  if (length != file.size() - kHeaderBytes) {
    return Status::Corruption(path.string() + ": truncated (" +
                              std::to_string(file.size() - kHeaderBytes) + " of " +
                              std::to_string(length) + " payload bytes)");
  }
  const std::string_view payload(file.data() + kHeaderBytes, length);
  if (Crc32c(payload) != crc32) return Status::Corruption(path.string() + ": checksum mismatch");
  s = DecodeIndexRecord(payload, rec);
  if (!s.ok()) return Status::Corruption(path.string() + ": " + std::string(s.message()));
  if (rec->handover_id != id) {
    return Status::Corruption(path.string() + ": holds the request of another id");
  }
  return Status::OK();
}

Status Answer(const std::string& db_path, uint64_t id, const Status& outcome, uint64_t epoch) {
  const fs::path dir = Dir(db_path);
  Status s = outcome.ok()
                 ? WriteDurably(dir, Name(id, ".applied"), std::to_string(epoch) + "\n")
                 : WriteDurably(dir, Name(id, ".rejected"), std::string(outcome.message()) + "\n");
  if (!s.ok()) return s;
  std::error_code ec;
  fs::remove(dir / Name(id, ".request"), ec);
  if (ec) return Status::IOError("removing a hand-over request: " + ec.message());
  return SyncDir(dir);
}

Status ReadAnswer(const std::string& db_path, uint64_t id, bool* answered, uint64_t* epoch) {
  *answered = false;
  const fs::path dir = Dir(db_path);
  std::string text;
  Status s = ReadFile(dir / Name(id, ".applied"), &text, 64);
  if (s.ok()) {
    *answered = true;
    char* end = nullptr;
    *epoch = std::strtoull(text.c_str(), &end, 10);
    if (end == text.c_str()) {
      return Status::Corruption("the answer to hand-over " + Name(id, "") + " is unreadable");
    }
    return Status::OK();
  }
  if (!s.IsNotFound()) return s;
  s = ReadFile(dir / Name(id, ".rejected"), &text, 1 << 16);
  if (s.ok()) {
    *answered = true;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return Status::Aborted("the DB rejected the new centroids: " + text);
  }
  return s.IsNotFound() ? Status::OK() : s;
}

void Forget(const std::string& db_path, uint64_t id) {
  const fs::path dir = Dir(db_path);
  std::error_code ec;
  for (const char* ext : {".applied", ".rejected", ".applied.tmp", ".rejected.tmp",
                          ".request.tmp"}) {
    fs::remove(dir / Name(id, ext), ec);
  }
}

}  // namespace quiver::storage::handover
