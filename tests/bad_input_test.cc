// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Every bad input gets a clear Status and loses nothing.

#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "quiver/db.h"
#include "quiver/write_batch.h"
#include "storage/keys.h"
#include "test_util.h"

namespace quiver {
namespace {

Options Opts(uint32_t dim, Metric m = Metric::kL2) {
  Options o;
  o.dim = dim;
  o.metric = m;
  o.device = Device::kCpu;
  return o;
}

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(DB::Open(Opts(4), dir_.path(), &db_).ok());
    ASSERT_TRUE(db_->Put(WriteOptions(), 1, good_).ok());
  }
  void ExpectNothingLost() {
    std::vector<float> v;
    ASSERT_TRUE(db_->Get(ReadOptions(), 1, &v).ok());
    EXPECT_EQ(v, good_);
    EXPECT_EQ(db_->GetStats().num_vectors, 1u);
  }
  test::TempDir dir_;
  std::unique_ptr<DB> db_;
  std::vector<float> good_ = {1, 2, 3, 4};
};

TEST_F(BadInputTest, WrongDimension) {
  Status s = db_->Put(WriteOptions(), 2, std::vector<float>{1, 2, 3});
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("dimension 3"), std::string::npos) << s.ToString();
  std::vector<Neighbor> hits;
  EXPECT_TRUE(db_->Search(SearchOptions(), std::vector<float>{1, 2, 3, 4, 5}, &hits)
                  .IsInvalidArgument());
  std::vector<std::vector<Neighbor>> batch;
  EXPECT_TRUE(db_->SearchBatch(SearchOptions(), std::vector<float>(7), 2, &batch)
                  .IsInvalidArgument());
  ExpectNothingLost();
}

TEST_F(BadInputTest, NanAndInfComponents) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Status s = db_->Put(WriteOptions(), 1, std::vector<float>{1, nan, 3, 4});
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("NaN"), std::string::npos) << s.ToString();
  s = db_->Put(WriteOptions(), 2, std::vector<float>{1, 2, -inf, 4});
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("infinite"), std::string::npos) << s.ToString();
  std::vector<Neighbor> hits;
  EXPECT_TRUE(db_->Search(SearchOptions(), std::vector<float>{nan, 0, 0, 0}, &hits)
                  .IsInvalidArgument());
  ExpectNothingLost();  // the upsert of id 1 with a NaN did not replace it
}

TEST_F(BadInputTest, KAndNprobeOutOfRange) {
  std::vector<Neighbor> hits;
  EXPECT_TRUE(db_->Search(SearchOptions{.k = 0}, good_, &hits).IsInvalidArgument());
  EXPECT_TRUE(db_->Search(SearchOptions{.k = 1u << 20}, good_, &hits).IsInvalidArgument());
  EXPECT_TRUE(db_->Search(SearchOptions{.k = 1, .nprobe = 1u << 20}, good_, &hits)
                  .IsInvalidArgument());
  // nprobe above the partition count but within bounds scans everything.
  EXPECT_TRUE(db_->Search(SearchOptions{.k = 1, .nprobe = 1000}, good_, &hits).ok());
  ASSERT_EQ(hits.size(), 1u);
}

TEST_F(BadInputTest, UnknownId) {
  std::vector<float> v;
  Status s = db_->Get(ReadOptions(), 777, &v);
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_NE(s.ToString().find("777"), std::string::npos);
  EXPECT_TRUE(db_->Delete(WriteOptions(), 777).IsNotFound());
  ExpectNothingLost();
}

TEST_F(BadInputTest, ZeroVectorUnderCosine) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(Opts(3, Metric::kCosine), dir.path(), &db).ok());
  EXPECT_TRUE(db->Put(WriteOptions(), 1, std::vector<float>{0, 0, 0}).IsInvalidArgument());
}

TEST(OpenTest, CreatingNeedsADimension) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  EXPECT_TRUE(DB::Open(Opts(0), dir.Sub("db"), &db).IsInvalidArgument());
  EXPECT_EQ(db, nullptr);
}

// A negative or twice-listed GPU is a bad option on any machine (ids
// beyond the visible GPUs are checked where GPUs exist: tests/gpu).
TEST(OpenTest, BadDeviceList) {
  test::TempDir dir;
  std::unique_ptr<DB> db;
  Options o = Opts(4);
  o.devices = {-1};
  Status s = DB::Open(o, dir.Sub("db"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  o.devices = {1, 1};
  s = DB::Open(o, dir.Sub("db"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_EQ(db, nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("db")));  // nothing created
}

TEST(OpenTest, MissingDbWithoutCreateIfMissing) {
  test::TempDir dir;
  Options o = Opts(4);
  o.create_if_missing = false;
  std::unique_ptr<DB> db;
  EXPECT_TRUE(DB::Open(o, dir.Sub("db"), &db).IsNotFound());
}

TEST(OpenTest, PathThatIsAFile) {
  test::TempDir dir;
  std::ofstream(dir.Sub("file")) << "not a db";
  std::unique_ptr<DB> db;
  Status s = DB::Open(Opts(4), dir.Sub("file"), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.ToString().find("is a file"), std::string::npos);
}

TEST(OpenTest, DirectoryOfAnotherProgram) {
  test::TempDir dir;
  std::ofstream(dir.Sub("notes.txt")) << "someone else's files";
  std::unique_ptr<DB> db;
  Status s = DB::Open(Opts(4), dir.path(), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  std::ifstream in(dir.Sub("notes.txt"));
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "someone else's files");  // untouched
}

TEST(OpenTest, RocksDbOfAnotherProgram) {
  test::TempDir dir;
  {
    rocksdb::Options ro;
    ro.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(ro, dir.path(), &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "k", "v").ok());
    delete raw;
  }
  std::unique_ptr<DB> db;
  Status s = DB::Open(Opts(4), dir.path(), &db);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.ToString().find("another program"), std::string::npos) << s.ToString();
}

TEST(OpenTest, OtherDimensionOrMetric) {
  test::TempDir dir;
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(Opts(4, Metric::kCosine), dir.path(), &db).ok());
    ASSERT_TRUE(db->Put(WriteOptions(), 1, std::vector<float>{1, 0, 0, 0}).ok());
  }
  std::unique_ptr<DB> db;
  Status s = DB::Open(Opts(8, Metric::kCosine), dir.path(), &db);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("dimension 4"), std::string::npos) << s.ToString();
  s = DB::Open(Opts(4, Metric::kL2), dir.path(), &db);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.ToString().find("metric cosine"), std::string::npos) << s.ToString();
  Options any = Opts(0);
  any.accept_stored_metric = true;
  ASSERT_TRUE(DB::Open(any, dir.path(), &db).ok());
  std::vector<float> v;
  EXPECT_TRUE(db->Get(ReadOptions(), 1, &v).ok());  // nothing lost
}

TEST(OpenTest, SecondWriterIsBusy) {
  test::TempDir dir;
  std::unique_ptr<DB> first, second;
  ASSERT_TRUE(DB::Open(Opts(4), dir.path(), &first).ok());
  Status s = DB::Open(Opts(4), dir.path(), &second);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  EXPECT_NE(s.ToString().find("LOCK"), std::string::npos) << s.ToString();
}

// Reads (when `read` is set) or overwrites the stored record of `id` in the
// vectors column family, behind quiver's back.
void RawRecord(const std::string& path, uint64_t id, std::string* bytes, bool read) {
  rocksdb::DBOptions dbo;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {"meta", {}}, {"vectors", {}}, {"index", {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(dbo, path, cfs, &handles, &raw).ok());
  const std::string key = storage::EncodeU64Key(id);
  if (read) {
    ASSERT_TRUE(raw->Get(rocksdb::ReadOptions(), handles[2], key, bytes).ok());
  } else {
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[2], key, *bytes).ok());
  }
  for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
  delete raw;
}

TEST(CorruptionTest, TruncatedRecordIsReportedNotServed) {
  test::TempDir dir;
  std::string good_bytes;
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(Opts(4), dir.path(), &db).ok());
    ASSERT_TRUE(db->Put(WriteOptions(), 5, std::vector<float>{1, 2, 3, 4}).ok());
    ASSERT_TRUE(db->Put(WriteOptions(), 6, std::vector<float>{5, 6, 7, 8}).ok());
  }
  std::string truncated("\x10\x00\x00\x00\x0c\x00", 6);
  RawRecord(dir.path(), 6, &truncated, /*read=*/false);
  std::unique_ptr<DB> db;
  Status s = DB::Open(Opts(4), dir.path(), &db);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.ToString().find("vector 6"), std::string::npos) << s.ToString();
}

TEST(CorruptionTest, RecordOfWrongDimensionIsCorruption) {
  test::TempDir dir;
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(Opts(2), dir.path(), &db).ok());
    ASSERT_TRUE(db->Put(WriteOptions(), 5, std::vector<float>{1, 2}).ok());
  }
  // A well-formed record, but of dimension 3 in a DB of dimension 2.
  test::TempDir other;
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(Opts(3), other.path(), &db).ok());
    ASSERT_TRUE(db->Put(WriteOptions(), 5, std::vector<float>{1, 2, 3}).ok());
  }
  std::string foreign;
  RawRecord(other.path(), 5, &foreign, /*read=*/true);
  RawRecord(dir.path(), 5, &foreign, /*read=*/false);
  std::unique_ptr<DB> db;
  EXPECT_TRUE(DB::Open(Opts(2), dir.path(), &db).IsCorruption());
}

}  // namespace
}  // namespace quiver
