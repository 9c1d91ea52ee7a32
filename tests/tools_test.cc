// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The quiver tool's commands, run in-process through RunQuiverTool().

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quiver/db.h"
#include "test_util.h"
#include "tools/commands.h"

namespace quiver {
namespace {

int RunTool(std::vector<std::string> args) {
  args.insert(args.begin(), "quiver");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return tools::RunQuiverTool(static_cast<int>(argv.size()), argv.data());
}

TEST(ToolsTest, CreateImportSearchGetDeleteStatsReindexOnSift5k) {
  test::TempDir dir;
  const std::string db = dir.Sub("sift");
  const std::string fvecs = test::DataDir() + "/sift5k/sift5k_base.fvecs";
  ASSERT_EQ(RunTool({"create", db, "--dim", "128", "--metric", "l2", "--partition-size", "64"}), 0);
  EXPECT_NE(RunTool({"create", db, "--dim", "128"}), 0);  // exists already
  ASSERT_EQ(RunTool({"import", db, fvecs, "--format", "fvecs", "--batch", "700"}), 0);
  ASSERT_EQ(RunTool({"import", db, fvecs}), 0);  // a rerun is an upsert
  ASSERT_EQ(RunTool({"reindex", db, "--partitions", "40", "--iterations", "5", "--device", "cpu"}), 0);
  EXPECT_EQ(RunTool({"stats", db, "--json"}), 0);
  EXPECT_EQ(RunTool({"get", db, "17"}), 0);
  EXPECT_EQ(RunTool({"search", db, "--query-file", fvecs, "-k", "3", "--nprobe", "4", "--json"}), 0);
  EXPECT_EQ(RunTool({"delete", db, "17", "18"}), 0);
  EXPECT_NE(RunTool({"get", db, "17"}), 0);     // gone
  EXPECT_NE(RunTool({"delete", db, "17"}), 0);  // unknown id

  std::unique_ptr<DB> opened;
  Options o;
  o.create_if_missing = false;
  ASSERT_TRUE(DB::Open(o, db, &opened).ok());
  Stats st = opened->GetStats();
  EXPECT_EQ(st.num_vectors, 4998u);
  EXPECT_EQ(st.num_partitions, 40u);
  std::vector<float> v;
  EXPECT_TRUE(opened->Get(ReadOptions(), 4999, &v).ok());
}

TEST(ToolsTest, BadInputExitsNonZero) {
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  EXPECT_EQ(RunTool({"stats", db}), tools::kExitError);                  // no DB
  EXPECT_EQ(RunTool({"create", db}), tools::kExitUsage);                  // --dim missing
  EXPECT_EQ(RunTool({"create", db, "--dim", "3", "--metric", "hamming"}), tools::kExitUsage);
  ASSERT_EQ(RunTool({"create", db, "--dim", "3"}), 0);
  EXPECT_EQ(RunTool({"search", db, "--vector", "1,2"}), tools::kExitError);      // wrong dim
  EXPECT_EQ(RunTool({"search", db, "--vector", "1,x,3"}), tools::kExitError);   // not a number
  const std::string fvecs = test::DataDir() + "/sift5k/sift5k_base.fvecs";
  EXPECT_EQ(RunTool({"import", db, fvecs}), tools::kExitError);                 // 128-d into 3-d
  EXPECT_EQ(RunTool({"import", db, fvecs, "--format", "idx"}), tools::kExitError);  // not IDX
  EXPECT_EQ(RunTool({"nonsense"}), tools::kExitUsage);
  EXPECT_EQ(RunTool({"search", db, "--vector", "1,2,3"}), 0);  // empty DB: no hits, fine
}

}  // namespace
}  // namespace quiver
