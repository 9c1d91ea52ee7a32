// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The quiver tool's commands, run in-process through RunQuiverTool().

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "quiver/db.h"
#include "test_util.h"
#include "tool_runner.h"
#include "tools/commands.h"
#include "vector_file_writers.h"

namespace quiver {
namespace {

using test::RunTool;

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
  o.background_maintenance = false;
  ASSERT_TRUE(DB::Open(o, db, &opened).ok());
  Stats st = opened->GetStats();
  EXPECT_EQ(st.num_vectors, 4998u);
  // The 40 partitions of the reindex, give or take a split or merge by the
  // maintenance of the writing commands that followed (delete).
  EXPECT_GE(st.num_partitions, 36u);
  EXPECT_LE(st.num_partitions, 44u);
  std::vector<float> v;
  EXPECT_TRUE(opened->Get(ReadOptions(), 4999, &v).ok());
}

// Runs the tool and keeps what it printed.
struct ToolRun {
  int code = -1;
  std::string out, err;
};

ToolRun RunToolCaptured(std::vector<std::string> args) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  ToolRun r;
  r.code = RunTool(std::move(args));
  r.out = testing::internal::GetCapturedStdout();
  r.err = testing::internal::GetCapturedStderr();
  return r;
}

TEST(ToolsTest, CheckBenchAndStatsOnSift5k) {
  test::TempDir dir;
  const std::string db = dir.Sub("sift");
  const std::string fvecs = test::DataDir() + "/sift5k/sift5k_base.fvecs";
  ASSERT_EQ(RunTool({"create", db, "--dim", "128", "--partition-size", "64"}), 0);
  ASSERT_EQ(RunTool({"import", db, fvecs}), 0);
  ASSERT_EQ(RunTool({"reindex", db, "--partitions", "32", "--iterations", "5", "--device", "cpu"}), 0);

  ToolRun check = RunToolCaptured({"check", db, "--json"});
  ASSERT_EQ(check.code, 0) << check.err;
  nlohmann::json c = nlohmann::json::parse(check.out);
  EXPECT_TRUE(c["ok"].get<bool>());
  EXPECT_EQ(c["vectors"].get<uint64_t>(), 5000u);
  EXPECT_EQ(c["partitions"].get<uint32_t>(), 32u);

  ToolRun stats = RunToolCaptured({"stats", db, "--json"});
  ASSERT_EQ(stats.code, 0) << stats.err;
  nlohmann::json s = nlohmann::json::parse(stats.out);
  EXPECT_EQ(s["epoch"].get<uint64_t>(), 1u);
  EXPECT_GT(s["storage_bytes"].get<uint64_t>(), 5000u * 128 * 4);
  uint64_t histogram_total = 0;
  for (const auto& bin : s["partition_histogram"]) histogram_total += bin["partitions"].get<uint64_t>();
  EXPECT_EQ(histogram_total, 32u);

  // The base vectors as queries: exact ground truth computed by the tool;
  // scanning every partition gives recall 1, fewer less, never more.
  ToolRun bench = RunToolCaptured(
      {"bench", db, "--queries", fvecs, "-k", "5", "--nprobe", "1,4,32", "--repeat", "1", "--json"});
  ASSERT_EQ(bench.code, 0) << bench.err;
  nlohmann::json b = nlohmann::json::parse(bench.out);
  ASSERT_EQ(b["results"].size(), 3u);
  EXPECT_EQ(b["queries"].get<uint64_t>(), 5000u);
  const double r1 = b["results"][0]["recall"], r4 = b["results"][1]["recall"],
               r32 = b["results"][2]["recall"];
  EXPECT_LE(r1, r4);
  EXPECT_LE(r4, r32);
  EXPECT_DOUBLE_EQ(r32, 1.0);
  EXPECT_GT(b["results"][0]["qps"].get<double>(), 0.0);

  // A ground-truth file that does not cover the queries is refused.
  EXPECT_EQ(RunTool({"bench", db, "--queries", fvecs, "--ground-truth", fvecs}), tools::kExitError);
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


bool Contains(const std::string& text, const std::string& words) {
  return text.find(words) != std::string::npos;
}

// The vector stored under `id`, or {} when there is none.
std::vector<float> Stored(const std::string& db_path, uint64_t id) {
  std::unique_ptr<DB> db;
  Options o;
  o.create_if_missing = false;
  o.read_only = true;
  std::vector<float> v;
  if (!DB::Open(o, db_path, &db).ok() || !db->Get(ReadOptions(), id, &v).ok()) return {};
  return v;
}

std::vector<float> Row(const std::vector<float>& values, size_t d, size_t i) {
  return std::vector<float>(values.begin() + i * d, values.begin() + (i + 1) * d);
}

// n x d distinct values, exact in float and in short decimal text.
std::vector<float> Grid(size_t n, size_t d, float offset = 0) {
  std::vector<float> v(n * d);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f - 3.0f + offset;
  return v;
}

std::string CsvText(const std::vector<float>& v, size_t d, uint64_t first_id, bool with_ids) {
  std::string text = "# written by tools_test\n";
  for (size_t i = 0; i < v.size() / d; ++i) {
    if (with_ids) text += std::to_string(first_id + i) + ",";
    for (size_t j = 0; j < d; ++j) text += std::to_string(v[i * d + j]) + (j + 1 < d ? "," : "\n");
  }
  return text;
}

TEST(ToolsTest, ImportsNpyHdf5AndCsv) {
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  ASSERT_EQ(RunTool({"create", db, "--dim", "4"}), 0);
  const std::vector<float> a = Grid(6, 4), b = Grid(5, 4, 100), c = Grid(3, 4, 200);
  test::WriteNpy(dir.Sub("a.npy"), "<f4", 6, 4, a);
  {
    test::Hdf5Writer w(dir.Sub("b.hdf5"));
    ASSERT_TRUE(w.AddFloats("train", 5, 4, b));
    ASSERT_TRUE(w.AddFloats("test", 1, 4, Grid(1, 4)));
  }
  test::WriteBytes(dir.Sub("c.csv"), "id,x0,x1,x2,x3\n" + CsvText(c, 4, 1000, true));

  ToolRun r = RunToolCaptured({"import", db, dir.Sub("a.npy"), "--batch", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "imported 6 vectors (ids 0..5): 6 new")) << r.out;
  r = RunToolCaptured({"import", db, dir.Sub("b.hdf5"), "--start-id", "100"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "imported 5 vectors (ids 100..104): 5 new")) << r.out;
  r = RunToolCaptured({"import", db, dir.Sub("c.csv"), "--ids", "column"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "imported 3 vectors: 3 new")) << r.out;

  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(Stored(db, i), Row(a, 4, i)) << i;
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(Stored(db, 100 + i), Row(b, 4, i)) << i;
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(Stored(db, 1000 + i), Row(c, 4, i)) << i;

  // Ids from a file: as many as rows, checked before anything is written.
  test::WriteBytes(dir.Sub("ids.txt"), "7000\n7001\n7002\n");
  r = RunToolCaptured({"import", db, dir.Sub("c.csv"), "--ids", dir.Sub("ids.txt"),
                       "--format", "csv"});
  EXPECT_EQ(r.code, tools::kExitError);  // the csv's first column makes it 5 values per row
  test::WriteBytes(dir.Sub("plain.csv"), CsvText(c, 4, 0, false));
  r = RunToolCaptured({"import", db, dir.Sub("plain.csv"), "--ids", dir.Sub("ids.txt")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Stored(db, 7002), Row(c, 4, 2));
  test::WriteBytes(dir.Sub("short.txt"), "8000\n8001\n");
  r = RunToolCaptured({"import", db, dir.Sub("a.npy"), "--ids", dir.Sub("short.txt")});
  EXPECT_EQ(r.code, tools::kExitError);
  EXPECT_TRUE(Contains(r.err, "holds 2 ids, " + dir.Sub("a.npy") + " holds 6 vectors")) << r.err;
  EXPECT_TRUE(Stored(db, 8000).empty());

  // The dimension is checked against the DB before any row is read.
  test::WriteNpy(dir.Sub("wide.npy"), "<f4", 2, 5, Grid(2, 5));
  r = RunToolCaptured({"import", db, dir.Sub("wide.npy")});
  EXPECT_EQ(r.code, tools::kExitError);
  EXPECT_TRUE(Contains(r.err, "holds 5-d vectors, the DB at " + db + " holds 4-d")) << r.err;
  EXPECT_EQ(RunTool({"import", db, dir.Sub("a.npy"), "--ids", "column"}), tools::kExitError);

  // search reads queries in any format.
  r = RunToolCaptured({"search", db, "--query-file", dir.Sub("b.hdf5"), "--dataset", "test",
                       "-k", "1", "--exact", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "{\"query\": 0, \"neighbors\": [{\"id\": 0, \"distance\": 0}]}"))
      << r.out;
  EXPECT_EQ(RunTool({"search", db, "--query-file", dir.Sub("a.npy"), "-k", "2"}), 0);
}

TEST(ToolsTest, ImportResumesAfterAnInterruptedRun) {
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  ASSERT_EQ(RunTool({"create", db, "--dim", "8"}), 0);
  const size_t n = 50, d = 8;
  const std::vector<float> full = Grid(n, d);
  test::WriteTexmex(dir.Sub("full.fvecs"), d, full);
  // The first run got 20 rows, of a different version of the file, so
  // that the test can tell whether the second run replaced them.
  std::vector<float> head = Grid(20, d, 0.25f);
  test::WriteTexmex(dir.Sub("head.fvecs"), d, head);
  ToolRun r = RunToolCaptured({"import", db, dir.Sub("head.fvecs"), "--batch", "7"});
  ASSERT_EQ(r.code, 0) << r.err;

  r = RunToolCaptured({"import", db, dir.Sub("full.fvecs"), "--existing", "skip", "--batch", "9"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "imported 30 vectors (ids 0..49): 30 new, 20 already present were "
                              "skipped"))
      << r.out;
  EXPECT_EQ(Stored(db, 5), Row(head, d, 5));   // left as it was
  EXPECT_EQ(Stored(db, 49), Row(full, d, 49));

  r = RunToolCaptured({"import", db, dir.Sub("full.fvecs")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "imported 50 vectors (ids 0..49): 0 new, 50 already present were "
                              "replaced"))
      << r.out;
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(Stored(db, i), Row(full, d, i)) << i;
}

TEST(ToolsTest, ImportReportsBadRowsAndSkipsThemOnRequest) {
  test::TempDir dir;
  const std::string db = dir.Sub("db");
  ASSERT_EQ(RunTool({"create", db, "--dim", "3"}), 0);
  const std::string csv = dir.Sub("bad.csv");
  test::WriteBytes(csv,
                   "x,y,z\n"       // line 1: header
                   "1,2,3\n"       // line 2: id 0
                   "4,5,6\n"       // line 3: id 1
                   "7,8\n"         // line 4: id 2, bad
                   "10,11,12\n"    // line 5: id 3
                   "13,nan,15\n"   // line 6: id 4, bad (NaN)
                   "16,17,18\n");  // line 7: id 5
  ToolRun r = RunToolCaptured({"import", db, csv, "--batch", "10"});
  EXPECT_EQ(r.code, tools::kExitError);
  EXPECT_TRUE(Contains(r.err, "quiver import: " + csv + " line 4: has 2 values, expected 3"))
      << r.err;
  EXPECT_FALSE(Contains(r.err, "line 6")) << r.err;  // stopped at the first
  EXPECT_TRUE(Contains(r.err, "the 2 vectors before it are imported")) << r.err;
  EXPECT_EQ(Stored(db, 1), (std::vector<float>{4, 5, 6}));
  EXPECT_TRUE(Stored(db, 3).empty());  // after the bad row: not written

  r = RunToolCaptured({"import", db, csv, "--skip-bad", "--batch", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.err, csv + " line 4: has 2 values, expected 3")) << r.err;
  EXPECT_TRUE(Contains(r.err, csv + " line 6: value 2 is NaN")) << r.err;
  EXPECT_TRUE(Contains(r.out, "imported 4 vectors (ids 0..5): 2 new, 2 already present were "
                              "replaced; 2 bad rows were skipped"))
      << r.out;
  EXPECT_EQ(Stored(db, 5), (std::vector<float>{16, 17, 18}));
  EXPECT_TRUE(Stored(db, 2).empty());
  EXPECT_TRUE(Stored(db, 4).empty());
}

}  // namespace
}  // namespace quiver
