// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Online re-clustering through a secondary instance and the centroid
// hand-over (storage/handover.h), DB::Check, and `quiver reindex` / `check`
// against a DB another process keeps writing to.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <rocksdb/db.h>

#include "crash/writer_process.h"
#include "quiver/db.h"
#include "storage/handover.h"
#include "storage/keys.h"
#include "test_util.h"
#include "tool_runner.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;
namespace handover = storage::handover;

constexpr uint32_t kDim = 8;

std::vector<float> RandomVectors(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * kDim);
  for (size_t i = 0; i < n; ++i) {
    const float center = static_cast<float>(i % 7) * 5.0f;  // seven clusters
    for (uint32_t d = 0; d < kDim; ++d) v[i * kDim + d] = center + g(rng);
  }
  return v;
}

Options SmallDbOptions(bool maintenance) {
  Options o;
  o.dim = kDim;
  o.device = Device::kCpu;
  o.ivf_train_threshold = 200;
  o.target_partition_size = 50;
  o.kmeans_iterations = 4;
  o.background_maintenance = maintenance;
  return o;
}

void Fill(DB* db, size_t n, uint64_t first_id) {
  const std::vector<float> v = RandomVectors(n, static_cast<uint32_t>(first_id + 1));
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(db->Put(WriteOptions(), first_id + i,
                        std::span<const float>(&v[i * kDim], kDim))
                    .ok());
  }
}

storage::IndexRecord SomeCentroids(uint32_t k, uint64_t id) {
  storage::IndexRecord rec;
  rec.epoch = 1;
  rec.dim = kDim;
  rec.metric = Metric::kL2;
  rec.num_centroids = k;
  rec.centroids = RandomVectors(k, 99);
  rec.trained_on = 1000;
  rec.handover_id = id;
  return rec;
}

TEST(HandoverTest, RequestRoundTripsAndDamageIsCorruption) {
  test::TempDir dir;
  const storage::IndexRecord rec = SomeCentroids(5, 0xabcdef);
  ASSERT_TRUE(handover::Publish(dir.path(), rec).ok());
  std::vector<uint64_t> ids;
  ASSERT_TRUE(handover::ListRequests(dir.path(), &ids).ok());
  ASSERT_EQ(ids, std::vector<uint64_t>{0xabcdef});
  storage::IndexRecord back;
  ASSERT_TRUE(handover::ReadRequest(dir.path(), 0xabcdef, &back).ok());
  EXPECT_EQ(back.centroids, rec.centroids);
  EXPECT_EQ(back.handover_id, rec.handover_id);

  // A flipped byte, a truncation, a foreign file: Corruption, no crash.
  const fs::path file = fs::path(handover::Dir(dir.path())) / "0000000000abcdef.request";
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto rewrite = [&](const std::string& b) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << b;
  };
  std::string flipped = bytes;
  flipped[flipped.size() - 20] ^= 0x40;
  rewrite(flipped);
  EXPECT_TRUE(handover::ReadRequest(dir.path(), 0xabcdef, &back).IsCorruption());
  rewrite(bytes.substr(0, bytes.size() / 2));
  EXPECT_TRUE(handover::ReadRequest(dir.path(), 0xabcdef, &back).IsCorruption());
  rewrite("not a hand-over at all");
  EXPECT_TRUE(handover::ReadRequest(dir.path(), 0xabcdef, &back).IsCorruption());

  // Answers.
  bool answered = true;
  uint64_t epoch = 0;
  ASSERT_TRUE(handover::ReadAnswer(dir.path(), 0xabcdef, &answered, &epoch).ok());
  EXPECT_FALSE(answered);
  ASSERT_TRUE(handover::Answer(dir.path(), 0xabcdef, Status::OK(), 7).ok());
  ASSERT_TRUE(handover::ReadAnswer(dir.path(), 0xabcdef, &answered, &epoch).ok());
  EXPECT_TRUE(answered);
  EXPECT_EQ(epoch, 7u);
  ASSERT_TRUE(handover::ListRequests(dir.path(), &ids).ok());
  EXPECT_TRUE(ids.empty());  // answering removes the request
  handover::Forget(dir.path(), 0xabcdef);
  ASSERT_TRUE(handover::ReadAnswer(dir.path(), 0xabcdef, &answered, &epoch).ok());
  EXPECT_FALSE(answered);
}

TEST(OnlineReindexTest, SecondaryHandsCentroidsToTheWriter) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  std::unique_ptr<DB> writer;
  ASSERT_TRUE(DB::Open(SmallDbOptions(true), path, &writer).ok());
  Fill(writer.get(), 1500, 0);
  ASSERT_TRUE(writer->WaitForMaintenance().ok());
  const uint64_t epoch_before = writer->GetStats().epoch;
  ASSERT_GT(epoch_before, 0u);

  std::unique_ptr<DB> secondary;
  ASSERT_TRUE(DB::OpenAsSecondary(Options(), path, dir.Sub("secondary"), &secondary).ok());
  std::vector<float> v(kDim, 1.0f);
  EXPECT_TRUE(secondary->Put(WriteOptions(), 1, v).IsNotSupported());
  EXPECT_TRUE(writer->TryCatchUpWithPrimary().IsNotSupported());

  // The writer keeps writing while the secondary re-clusters.
  std::atomic<bool> stop{false};
  std::thread more([&] {
    const std::vector<float> extra = RandomVectors(400, 7);
    for (size_t i = 0; i < 400 && !stop.load(); ++i) {
      ASSERT_TRUE(writer->Put(WriteOptions(), 10000 + i,
                              std::span<const float>(&extra[i * kDim], kDim))
                      .ok());
    }
  });
  std::vector<std::string> phases;
  Status s = secondary->Reindex(
      ReindexOptions{.partitions = 17, .iterations = 5, .handover_timeout_seconds = 60},
      [&](const ReindexProgress& p) {
        if (phases.empty() || phases.back() != p.phase) phases.emplace_back(p.phase);
        return true;
      });
  stop.store(true);
  more.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(phases.front(), "gather");
  EXPECT_EQ(phases.back(), "persist");

  // The writer committed an epoch with the handed-over 17 centroids (local
  // maintenance may split or merge afterwards), and the secondary caught up.
  const Stats st = writer->GetStats();
  EXPECT_GT(st.epoch, epoch_before);
  EXPECT_GE(secondary->GetStats().epoch, epoch_before + 1);
  CheckReport report;
  s = writer->Check(&report);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(report.vectors, st.num_vectors);
  std::vector<uint64_t> pending;
  ASSERT_TRUE(handover::ListRequests(path, &pending).ok());
  EXPECT_TRUE(pending.empty());
  EXPECT_TRUE(fs::is_empty(handover::Dir(path)));  // the answer was cleaned up
}

// A writer without maintenance never polls for hand-overs; once it closes,
// the waiting secondary opens the DB itself and applies its request.
TEST(OnlineReindexTest, SecondaryAppliesItsRequestOnceTheWriterCloses) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  std::unique_ptr<DB> writer;
  ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &writer).ok());
  Fill(writer.get(), 800, 0);
  const uint64_t epoch_before = writer->GetStats().epoch;

  std::unique_ptr<DB> secondary;
  ASSERT_TRUE(DB::OpenAsSecondary(Options(), path, dir.Sub("secondary"), &secondary).ok());
  std::atomic<bool> waiting{false};
  Status s;
  std::thread reindex([&] {
    s = secondary->Reindex(ReindexOptions{.partitions = 6, .iterations = 3,
                                          .handover_timeout_seconds = 60},
                           [&](const ReindexProgress& p) {
                             if (p.phase == "handover") waiting.store(true);
                             return true;
                           });
  });
  while (!waiting.load()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  std::vector<uint64_t> pending;
  ASSERT_TRUE(handover::ListRequests(path, &pending).ok());
  EXPECT_EQ(pending.size(), 1u);  // the writer does not poll
  EXPECT_EQ(writer->GetStats().epoch, epoch_before);
  ASSERT_TRUE(writer->Close().ok());
  reindex.join();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(secondary->GetStats().epoch, epoch_before + 1);
  EXPECT_EQ(secondary->GetStats().num_partitions, 6u);
}

TEST(OnlineReindexTest, PendingRequestIsAppliedAtOpenOnceAndBadOnesAreRejected) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &db).ok());
    Fill(db.get(), 600, 0);
  }
  // A request left by a requester whose writer crashed before applying it.
  ASSERT_TRUE(handover::Publish(path, SomeCentroids(9, 42)).ok());
  // And one that does not fit the DB (another dimension).
  storage::IndexRecord wrong = SomeCentroids(3, 43);
  wrong.dim = 4;
  wrong.centroids.resize(12);
  ASSERT_TRUE(handover::Publish(path, wrong).ok());

  uint64_t epoch = 0;
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &db).ok());
    const Stats st = db->GetStats();
    EXPECT_EQ(st.num_partitions, 9u);
    epoch = st.epoch;
    CheckReport report;
    EXPECT_TRUE(db->Check(&report).ok());
  }
  bool answered = false;
  uint64_t applied_at = 0;
  ASSERT_TRUE(handover::ReadAnswer(path, 42, &answered, &applied_at).ok());
  EXPECT_TRUE(answered);
  EXPECT_EQ(applied_at, epoch);
  Status s = handover::ReadAnswer(path, 43, &answered, &applied_at);
  EXPECT_TRUE(answered);
  EXPECT_TRUE(s.IsAborted()) << s.ToString();
  EXPECT_NE(s.ToString().find("4-d"), std::string::npos) << s.ToString();

  // The writer crashed after committing request 44 but before answering:
  // the request is answered at the next open, not applied a second time.
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &db).ok());
  }
  ASSERT_TRUE(handover::Publish(path, SomeCentroids(11, 44)).ok());
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &db).ok());
    epoch = db->GetStats().epoch;
  }
  ASSERT_TRUE(handover::Publish(path, SomeCentroids(11, 44)).ok());  // as if never removed
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &db).ok());
    EXPECT_EQ(db->GetStats().epoch, epoch);  // not applied twice
  }
  ASSERT_TRUE(handover::ReadAnswer(path, 44, &answered, &applied_at).ok());
  EXPECT_TRUE(answered);
  EXPECT_EQ(applied_at, epoch);
}

TEST(CheckTest, ReportsADamagedCentroidRecord) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  {
    std::unique_ptr<DB> db;
    ASSERT_TRUE(DB::Open(SmallDbOptions(false), path, &db).ok());
    Fill(db.get(), 400, 0);
    CheckReport report;
    ASSERT_TRUE(db->Check(&report).ok());
    EXPECT_EQ(report.vectors, 400u);
    EXPECT_EQ(report.index_records, 1u);
    EXPECT_TRUE(report.problems.empty());
  }
  // Damage an old epoch's record behind quiver's back: Open reads only the
  // newest, so the DB opens; Check names the damaged record.
  {
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"meta", {}}, {"vectors", {}}, {"index", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, cfs, &handles, &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), handles[3], storage::EncodeU64Key(0),
                         "junk that is no FlatBuffer")
                    .ok());
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  std::unique_ptr<DB> db;
  Options o = SmallDbOptions(false);
  o.read_only = true;
  ASSERT_TRUE(DB::Open(o, path, &db).ok());
  CheckReport report;
  Status s = db->Check(&report);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].find("centroid record of epoch 0"), std::string::npos)
      << report.problems[0];
  EXPECT_EQ(test::RunTool({"check", path}), 1);
}

// `quiver reindex` while another process keeps inserting: the tool goes
// online, the writer commits the new epoch, and nothing it acknowledged is
// lost.
TEST(OnlineReindexTest, ToolReindexesWhileAnotherProcessInserts) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  test::CrashModel model;
  {
    // A first run trains the index.
    test::WriterProcess first(path, test::WriterArgs{.seed = 1, .ops = 1500}, &model);
    ASSERT_TRUE(first.started());
    ASSERT_EQ(first.Wait(), 0);
  }
  uint64_t epoch_before = 0;
  {
    std::unique_ptr<DB> db;
    Options o;
    o.read_only = true;
    ASSERT_TRUE(DB::Open(o, path, &db).ok());
    epoch_before = db->GetStats().epoch;
  }

  test::WriterProcess writer(path, test::WriterArgs{.seed = 2}, &model);
  ASSERT_TRUE(writer.started());
  while (writer.acks() < 200 && writer.ReadAck()) {
  }
  ASSERT_EQ(writer.acks(), 200u) << "the writer stopped early";
  // The writer holds the DB: the tool re-clusters online.
  std::atomic<int> rc{-1};
  std::thread tool([&] {
    rc = test::RunTool({"reindex", path, "--partitions", "24", "--iterations", "4", "--device",
                        "cpu", "--wait", "120"});
  });
  while (rc.load() == -1 && writer.ReadAck()) {
  }
  tool.join();
  const size_t at_end = writer.acks();
  while (writer.acks() < at_end + 200 && writer.ReadAck()) {
  }
  writer.Kill();
  ASSERT_EQ(rc.load(), 0);

  Options o;
  o.create_if_missing = false;
  o.device = Device::kCpu;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, path, &db).ok());
  EXPECT_GT(db->GetStats().epoch, epoch_before);
  ASSERT_TRUE(writer.errors().empty()) << writer.errors().front();
  test::VerifyAcknowledged(db.get(), writer.in_doubt(), &model, SearchOptions{.k = 1},
                           "after online reindex");
  CheckReport report;
  Status s = db->Check(&report);
  EXPECT_TRUE(s.ok()) << s.ToString();
  db.reset();
  EXPECT_EQ(test::RunTool({"check", path}), 0);
}

}  // namespace
}  // namespace quiver
