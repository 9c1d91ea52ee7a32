// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// One writer per DB across processes: while a writer process holds the DB,
// a second writer gets Busy naming the lock (so do the tool's write
// commands), and read-only and secondary instances open and read beside it.

#include <gtest/gtest.h>

#include "crash/writer_process.h"
#include "quiver/db.h"
#include "test_util.h"
#include "tool_runner.h"

namespace quiver {
namespace {

TEST(ExclusiveAccessTest, OneWriterReadersAndSecondariesBesideIt) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  test::CrashModel model;
  // The writer makes 300 writes, then holds the DB open, idle.
  test::WriterProcess writer(path, test::WriterArgs{.seed = 5, .ops = 300, .hold = true}, &model);
  ASSERT_TRUE(writer.started());
  while (writer.ReadAck()) {
  }
  ASSERT_EQ(writer.acks(), 300u);

  Options o;
  o.create_if_missing = false;
  std::unique_ptr<DB> db;
  Status s = DB::Open(o, path, &db);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  EXPECT_NE(s.ToString().find("lock"), std::string::npos) << s.ToString();
  EXPECT_EQ(db, nullptr);
  EXPECT_EQ(test::RunTool({"delete", path, "1"}), 1);
  EXPECT_EQ(test::RunTool({"import", path, test::DataDir() + "/sift5k/sift5k_base.fvecs"}), 1);

  // Read-only and secondary instances see every acknowledged write.
  o.read_only = true;
  s = DB::Open(o, path, &db);
  ASSERT_TRUE(s.ok()) << s.ToString();
  test::VerifyAcknowledged(db.get(), {}, &model, SearchOptions{.k = 1}, "read-only");
  EXPECT_TRUE(db->Put(WriteOptions(), 1, test::CrashVector(1, 1)).IsNotSupported());
  db.reset();
  std::unique_ptr<DB> secondary;
  s = DB::OpenAsSecondary(Options(), path, dir.Sub("secondary"), &secondary);
  ASSERT_TRUE(s.ok()) << s.ToString();
  test::VerifyAcknowledged(secondary.get(), {}, &model, SearchOptions{.k = 1}, "secondary");
  EXPECT_TRUE(secondary->Delete(WriteOptions(), 1).IsNotSupported());
  EXPECT_EQ(test::RunTool({"stats", path}), 0);
  EXPECT_EQ(test::RunTool({"check", path}), 0);
  writer.Kill();
}

}  // namespace
}  // namespace quiver
