// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver demo`: the tour on an embedded default. Builds a DB from
// Fashion-MNIST (60,000 x 784), trains its IVF index, runs the 10,000 test
// queries and prints recall@10 against exact search, and QPS.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "quiver/db.h"
#include "quiver/write_batch.h"
#include "tools/cli_util.h"
#include "tools/datasets.h"
#include "tools/progress.h"

namespace quiver::tools {
namespace {

struct DemoArgs {
  std::string data_dir = kFashionMnistDir;
  std::string db_path;
  uint32_t k = 10;
  std::vector<uint32_t> nprobes = {4, 8, 16, 32};
  uint32_t partition_size = 256;
  std::string device = "auto";
  bool keep = false;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Searches `queries` in slices so that a progress bar can follow.
Status SearchWithProgress(DB* db, const SearchOptions& so, const Matrix& queries,
                          const char* label, std::vector<std::vector<Neighbor>>* out) {
  constexpr size_t kSlice = 250;
  out->clear();
  out->reserve(queries.n);
  ProgressBar bar(label, queries.n, "q");
  for (size_t begin = 0; begin < queries.n; begin += kSlice) {
    const size_t m = std::min(kSlice, queries.n - begin);
    std::vector<std::vector<Neighbor>> part;
    Status s = db->SearchBatch(so, std::span<const float>(queries.row(begin), m * queries.d), m,
                               &part);
    if (!s.ok()) return s;
    for (auto& r : part) out->push_back(std::move(r));
    bar.Update(begin + m);
  }
  bar.Finish();
  return Status::OK();
}

double Recall(const std::vector<std::vector<Neighbor>>& got,
              const std::vector<std::vector<Neighbor>>& truth, size_t k) {
  size_t hits = 0, total = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    for (size_t j = 0; j < std::min(k, truth[q].size()); ++j, ++total) {
      for (const auto& n : got[q]) {
        if (n.id == truth[q][j].id) {
          ++hits;
          break;
        }
      }
    }
  }
  return total ? double(hits) / total : 0.0;
}

int RunDemo(const DemoArgs& args) {
  namespace fs = std::filesystem;
  std::printf("quiver demo: Fashion-MNIST from %s\n", args.data_dir.c_str());
  Matrix train, test;
  auto t0 = std::chrono::steady_clock::now();
  Status s = LoadFashionMnist(args.data_dir, &train, &test);
  if (!s.ok()) {
    std::fprintf(stderr,
                 "quiver demo: %s\n(install Debian's dataset-fashion-mnist package, or pass "
                 "--data DIR)\n",
                 s.ToString().c_str());
    return kExitError;
  }
  std::printf("loaded %zu base and %zu query vectors of dimension %zu in %.1fs\n", train.n,
              test.n, train.d, Seconds(t0));

  const bool temporary = args.db_path.empty();
  const std::string path =
      temporary ? (fs::temp_directory_path() / ("quiver-demo-" + std::to_string(getpid()))).string()
                : args.db_path;
  if (temporary) fs::remove_all(path);

  Options opt;
  opt.dim = static_cast<uint32_t>(train.d);
  opt.metric = Metric::kL2;
  opt.device = DeviceNames().at(args.device);
  opt.target_partition_size = args.partition_size;
  opt.error_if_exists = true;
  std::unique_ptr<DB> db;
  s = DB::Open(opt, path, &db);
  if (!s.ok()) return Fail("demo", s);
  std::printf("DB at %s%s\n", path.c_str(), temporary ? " (temporary)" : "");

  // 1. Durable import, in batches.
  t0 = std::chrono::steady_clock::now();
  {
    ProgressBar bar("import", train.n, "vec");
    WriteBatch batch;
    for (size_t i = 0; i < train.n; ++i) {
      batch.Put(i, std::span<const float>(train.row(i), train.d));
      if (batch.Count() == 1000 || i + 1 == train.n) {
        s = db->Write(WriteOptions(), &batch);
        if (!s.ok()) return Fail("demo", s);
        batch.Clear();
        bar.Update(i + 1);
      }
    }
    bar.Finish();
  }
  const double import_s = Seconds(t0);

  // 2. Train the IVF index on everything.
  t0 = std::chrono::steady_clock::now();
  {
    s = ReindexWithProgress(db.get(), ReindexOptions());
    if (!s.ok()) return Fail("demo", s);
  }
  const double train_s = Seconds(t0);
  Stats st = db->GetStats();
  std::printf("index: epoch %llu, %u partitions (sizes %llu..%llu, imbalance %.2f)\n",
              (unsigned long long)st.epoch, st.num_partitions,
              (unsigned long long)st.min_partition_size, (unsigned long long)st.max_partition_size,
              st.imbalance);

  // 3. Exact ground truth, then the IVF search at several nprobe.
  std::vector<std::vector<Neighbor>> truth, got;
  t0 = std::chrono::steady_clock::now();
  s = SearchWithProgress(db.get(), SearchOptions{.k = args.k, .exact = true}, test, "exact",
                         &truth);
  if (!s.ok()) return Fail("demo", s);
  const double exact_qps = test.n / Seconds(t0);

  std::printf("\n%8s  %10s  %10s\n", "nprobe", "recall@10", "QPS");
  std::printf("%8s  %10.4f  %10.0f\n", "exact", 1.0, exact_qps);
  double best_recall = 0;
  for (uint32_t nprobe : args.nprobes) {
    t0 = std::chrono::steady_clock::now();
    s = db->SearchBatch(SearchOptions{.k = args.k, .nprobe = nprobe}, test.data, test.n, &got);
    if (!s.ok()) return Fail("demo", s);
    const double qps = test.n / Seconds(t0);
    const double recall = Recall(got, truth, args.k);
    best_recall = std::max(best_recall, recall);
    std::printf("%8u  %10.4f  %10.0f\n", nprobe, recall, qps);
  }
  std::printf("\nimport %.1fs (%.0f vectors/s, durable), training %.1fs, %u partitions\n",
              import_s, train.n / import_s, train_s, st.num_partitions);

  s = db->Close();
  db.reset();
  if (temporary && !args.keep) fs::remove_all(path);
  if (!s.ok()) return Fail("demo", s);
  return best_recall >= 0.9 ? kExitOk : kExitError;
}

}  // namespace

void AddDemoCommand(CLI::App& app, CommandRunner* run) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "Build a DB from Fashion-MNIST, train the IVF index, search the 10,000 test queries and\n"
      "print recall@10 against exact search and QPS.\n"
      "Example: quiver demo --nprobe 8 --nprobe 16");
  cmd->add_option("--data", args->data_dir, "Folder with the Fashion-MNIST IDX .gz files")
      ->capture_default_str();
  cmd->add_option("--db", args->db_path,
                  "Build the DB here and keep it (default: a temporary directory)");
  cmd->add_option("-k", args->k, "Neighbours per query")->capture_default_str()->check(
      CLI::Range(1, 1000));
  cmd->add_option("--nprobe", args->nprobes, "Partitions probed (repeat for several)")
      ->capture_default_str();
  cmd->add_option("--partition-size", args->partition_size, "Target vectors per partition")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--device", args->device, "Where k-means runs: auto, cpu or gpu")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  cmd->add_flag("--keep", args->keep, "Keep the temporary DB");
  cmd->callback([run, args] { *run = [args] { return RunDemo(*args); }; });
}

}  // namespace quiver::tools
