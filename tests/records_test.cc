// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// FlatBuffers records: round trips, and hostile bytes are Corruption.

#include "storage/records.h"

#include <gtest/gtest.h>

#include "quiver/options.h"
#include "storage/keys.h"

namespace quiver::storage {
namespace {

TEST(KeysTest, BigEndianKeysSortNumerically) {
  EXPECT_LT(EncodeU64Key(1), EncodeU64Key(256));
  EXPECT_LT(EncodeU64Key(255), EncodeU64Key(256));
  EXPECT_EQ(DecodeU64Key(EncodeU64Key(0x0123456789abcdefULL)), 0x0123456789abcdefULL);
  EXPECT_FALSE(DecodeU64Key("short").has_value());
}

TEST(RecordsTest, VectorRecordRoundTrip) {
  const std::vector<float> v = {0.5f, -1.0f, 3.0f};
  const std::string bytes = EncodeVectorRecord(99, v, "payload");
  VectorRecordView view;
  ASSERT_TRUE(DecodeVectorRecord(bytes, &view).ok());
  EXPECT_EQ(view.id, 99u);
  EXPECT_EQ(view.dim, 3u);
  EXPECT_EQ(view.Vector(), v);
  EXPECT_EQ(view.payload, "payload");

  const std::string no_payload = EncodeVectorRecord(1, v, "");
  ASSERT_TRUE(DecodeVectorRecord(no_payload, &view).ok());
  EXPECT_TRUE(view.payload.empty());
}

TEST(RecordsTest, MisalignedBytesDecode) {
  // RocksDB hands values at any address; decoding must not read scalars
  // misaligned (UBSan checks this in CI's sanitizer runs).
  const std::vector<float> v = {1.0f, 2.0f, 3.0f};
  const std::string bytes = EncodeVectorRecord(0x0102030405060708ULL, v, "p");
  for (size_t shift = 1; shift < 8; ++shift) {
    std::string padded(shift, '\0');
    padded += bytes;
    VectorRecordView view;
    ASSERT_TRUE(DecodeVectorRecord(std::string_view(padded).substr(shift), &view).ok());
    EXPECT_EQ(view.id, 0x0102030405060708ULL);
    EXPECT_EQ(view.Vector(), v);
    EXPECT_EQ(view.payload, "p");
  }
}

TEST(RecordsTest, EveryTruncationOfAVectorRecordIsCorruption) {
  const std::string bytes = EncodeVectorRecord(7, std::vector<float>(16, 1.0f), "abc");
  for (size_t len = 0; len < bytes.size(); ++len) {
    VectorRecordView view;
    Status s = DecodeVectorRecord(std::string_view(bytes.data(), len), &view);
    EXPECT_TRUE(s.IsCorruption()) << "length " << len << ": " << s.ToString();
  }
}

TEST(RecordsTest, RandomBytesNeverDecode) {
  std::string junk(64, '\0');
  for (int seed = 0; seed < 200; ++seed) {
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((seed * 131 + i * 71) & 0xff);
    VectorRecordView view;
    Status s = DecodeVectorRecord(junk, &view);
    // Junk that happens to verify must still be self-consistent.
    if (s.ok()) {
      EXPECT_GT(view.dim, 0u);
    } else {
      EXPECT_TRUE(s.IsCorruption());
    }
  }
}

TEST(RecordsTest, DbMetaRoundTripAndForeignMagic) {
  DbMeta m;
  m.dim = 784;
  m.metric = Metric::kCosine;
  m.created_by = "test";
  m.target_partition_size = 64;
  DbMeta out;
  ASSERT_TRUE(DecodeDbMeta(EncodeDbMeta(m), &out).ok());
  EXPECT_EQ(out.dim, 784u);
  EXPECT_EQ(out.metric, Metric::kCosine);
  EXPECT_EQ(out.format_version, kFormatVersion);
  EXPECT_EQ(out.created_by, "test");
  EXPECT_EQ(out.target_partition_size, 64u);
  EXPECT_TRUE(DecodeDbMeta("definitely not flatbuffers", &out).IsCorruption());
}

TEST(RecordsTest, IndexRecordRoundTripAndInconsistentSizes) {
  IndexRecord r;
  r.epoch = 3;
  r.dim = 2;
  r.metric = Metric::kL2;
  r.num_centroids = 2;
  r.centroids = {1, 2, 3, 4};
  r.trained_on = 10;
  IndexRecord out;
  ASSERT_TRUE(DecodeIndexRecord(EncodeIndexRecord(r), &out).ok());
  EXPECT_EQ(out.epoch, 3u);
  EXPECT_EQ(out.centroids, r.centroids);
  EXPECT_EQ(out.trained_on, 10u);
  r.num_centroids = 3;  // claims 3 x 2 floats, holds 4
  Status s = DecodeIndexRecord(EncodeIndexRecord(r), &out);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

TEST(OptionsTest, DocumentedDefaults) {
  Options o;
  EXPECT_EQ(o.dim, 0u);
  EXPECT_EQ(o.metric, Metric::kL2);
  EXPECT_TRUE(o.create_if_missing);
  EXPECT_FALSE(o.error_if_exists);
  EXPECT_FALSE(o.read_only);
  EXPECT_EQ(o.device, Device::kAuto);
  EXPECT_EQ(o.target_partition_size, 0u);  // the stored value, 256 for a new DB
  EXPECT_EQ(o.ivf_train_threshold, 8192u);
  EXPECT_EQ(o.default_nprobe, 16u);
  EXPECT_FALSE(WriteOptions().sync);
  EXPECT_EQ(SearchOptions().k, 10u);
  EXPECT_EQ(SearchOptions().nprobe, 0u);
}

}  // namespace
}  // namespace quiver::storage
