// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Damaged files: every file of a DB (tables, write-ahead log, MANIFEST,
// CURRENT, OPTIONS) is flipped, truncated and zeroed in turn, in a copy of
// the DB. Whatever the damage, Open / Get / Search / Check return a Status
// and never crash, and nothing returns a value that was not written: every
// vector Get returns is the one put under its id, every id a search returns
// was put. Damage RocksDB's checksums see is Corruption naming the file.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "crash/crash_vectors.h"
#include "quiver/db.h"
#include "test_util.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kVectors = 3000;

enum class Damage { kFlipMiddle, kFlipHeader, kFlipTail, kTruncateHalf, kZeroBlock, kEmpty };

const char* DamageName(Damage d) {
  switch (d) {
    case Damage::kFlipMiddle: return "flip a byte in the middle";
    case Damage::kFlipHeader: return "flip a byte at offset 8";
    case Damage::kFlipTail: return "flip a byte 16 bytes from the end";
    case Damage::kTruncateHalf: return "truncate to half";
    case Damage::kZeroBlock: return "zero 512 bytes in the middle";
    case Damage::kEmpty: return "truncate to 0 bytes";
  }
  return "";
}

void DamageFile(const fs::path& file, Damage d) {
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (bytes.empty()) return;
  const size_t mid = bytes.size() / 2;
  switch (d) {
    case Damage::kFlipMiddle: bytes[mid] ^= 0x5a; break;
    case Damage::kFlipHeader: bytes[std::min<size_t>(8, bytes.size() - 1)] ^= 0x01; break;
    case Damage::kFlipTail: bytes[bytes.size() > 16 ? bytes.size() - 16 : 0] ^= 0x10; break;
    case Damage::kTruncateHalf: bytes.resize(mid); break;
    case Damage::kZeroBlock:
      for (size_t i = mid; i < std::min(bytes.size(), mid + 512); ++i) bytes[i] = 0;
      break;
    case Damage::kEmpty: bytes.clear(); break;
  }
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

// Builds the pristine DB: some vectors in table files (flushed by a
// reopen), the newest ones only in the write-ahead log, a trained index.
void BuildDb(const std::string& path) {
  Options o;
  o.dim = test::kCrashDim;
  o.device = Device::kCpu;
  o.ivf_train_threshold = 500;
  o.target_partition_size = 64;
  o.background_maintenance = false;
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(o, path, &db).ok());
    for (uint64_t id = round * kVectors / 2; id < (round + 1) * kVectors / 2; ++id) {
      ASSERT_TRUE(db->Put(WriteOptions(), id, test::CrashVector(id)).ok());
    }
    // Reopening replays the log into a table file.
  }
}

TEST(CorruptionTest, DamagedFilesNeverCrashNorReturnUnwrittenData) {
  test::TempDir dir;
  const fs::path pristine = dir.Sub("pristine");
  BuildDb(pristine.string());
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(pristine)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name != "LOCK" && name != "LOG" && name.rfind("LOG.old", 0) != 0) {
      files.push_back(e.path().filename());
    }
  }
  ASSERT_GE(files.size(), 5u);  // CURRENT, MANIFEST, OPTIONS, a table, a log

  std::map<std::string, int> outcomes;
  for (const fs::path& name : files) {
    for (Damage d : {Damage::kFlipMiddle, Damage::kFlipHeader, Damage::kFlipTail,
                     Damage::kTruncateHalf, Damage::kZeroBlock, Damage::kEmpty}) {
      const std::string what = name.string() + ", " + DamageName(d);
      const fs::path copy = dir.Sub("copy");
      fs::remove_all(copy);
      fs::copy(pristine, copy);
      DamageFile(copy / name, d);

      Options o;
      o.create_if_missing = false;
      o.device = Device::kCpu;
      o.background_maintenance = false;
      std::unique_ptr<DB> db;
      Status s = DB::Open(o, copy.string(), &db);
      if (!s.ok()) {
        EXPECT_TRUE(s.IsCorruption() || s.IsIOError() || s.IsInvalidArgument() || s.IsNotFound())
            << what << ": " << s.ToString();
        ++outcomes["open refused: " + std::string(s.ToString().substr(0, s.ToString().find(':')))];
        continue;
      }
      // Opened: whatever it returns must be what was written.
      size_t found = 0;
      for (uint64_t id = 0; id < kVectors; ++id) {
        std::vector<float> v;
        Status g = db->Get(ReadOptions(), id, &v);
        if (g.ok()) {
          ASSERT_EQ(v, test::CrashVector(id)) << what << ": id " << id << " returned garbage";
          ++found;
        }
      }
      std::vector<Neighbor> hits;
      if (db->Search(SearchOptions{.k = 5}, test::CrashVector(7), &hits).ok()) {
        for (const Neighbor& n : hits) EXPECT_LT(n.id, kVectors) << what;
      }
      CheckReport report;
      Status c = db->Check(&report);
      EXPECT_TRUE(c.ok() || c.IsCorruption() || c.IsIOError()) << what << ": " << c.ToString();
      if (found != kVectors) std::printf("corruption test: %s: %zu of %llu vectors left\n", what.c_str(), found, (unsigned long long)kVectors);
      ++outcomes[std::string(found == kVectors ? "opened, all vectors intact" : "opened, vectors lost") +
                 (c.ok() ? ", check ok" : ", check reports corruption")];
    }
  }
  for (const auto& [outcome, count] : outcomes) {
    std::printf("corruption test: %3d x %s\n", count, outcome.c_str());
  }
}

}  // namespace
}  // namespace quiver
