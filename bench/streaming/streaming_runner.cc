// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// streaming_runner: runs a big-ann-benchmarks NeurIPS'23 streaming runbook
// (runbook.h) against a quiver DB through the public API only, and records
// per step: live count, insert/delete/replace throughput, and at every search
// step recall@k against exact ground truth over the live ids (ground_truth.h,
// brute force independent of quiver), queries per second of SearchBatch, and
// the DB's Stats (epoch, partitions, trainings, splits, merges, ...).
//
// Variants (--variant), all with the same --nlist and --nprobe:
//   maintained  Options::background_maintenance = true; the first training
//               happens when the first insert batch is in
//               (ivf_train_threshold = its size), partitions of about
//               --target-partition-size vectors (default: the runbook's peak
//               live count / nlist, so that about nlist partitions exist at
//               the peak); the maintainer splits, merges and re-clusters.
//   addonly     background_maintenance = false; trained once, by
//               Reindex({.partitions = nlist}) right after the first insert
//               step (ivf_train_threshold set out of reach so that no
//               automatic training comes first); then only appended to.
//               What FAISS IndexIVFFlat does.
//   rebuild     addonly, plus Reindex({.partitions = nlist}) before every
//               search step: the quality ceiling at this nlist. The rebuild
//               time is recorded apart from ingest and search.
//
// With --latency-queries N (> 0), after the runbook: single-query Search
// latency (one thread, one query at a time) p50/p99 while idle, then while a
// global re-clustering (DB::Reindex in another thread, same partition count)
// runs.
//
// Usage: streaming_runner --runbook YAML --data FVECS --queries FVECS
//          [--dataset NAME] [--variant maintained|addonly|rebuild]
//          [--nlist 64] [--nprobe 4] [--k 10] [--target-partition-size 0]
//          [--max-partition-size 0] [--min-partition-size 0]
//          [--db DIR] [--out PREFIX] [--gt-cache DIR] [--batch 1000]
//          [--search-repeats 1] [--latency-queries 0] [--threads 2]
//          [--device cpu|auto]
// Writes PREFIX.csv (one row per step) and PREFIX.json (config, rows,
// summary, latency). Default PREFIX: bench/results/streaming_<dataset>_<variant>.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/streaming/ground_truth.h"
#include "bench/streaming/runbook.h"
#include "quiver/db.h"
#include "quiver/options.h"
#include "quiver/write_batch.h"
#include "tools/datasets.h"

namespace {

using quiver::bench::kNoId;
using quiver::bench::StepOp;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "streaming_runner: %s\n", what.c_str());
  std::exit(1);
}

void Check(const quiver::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

struct Args {
  std::string runbook, dataset, data, queries;
  std::string variant = "maintained";
  uint32_t nlist = 64;
  uint32_t nprobe = 4;
  uint32_t k = 10;
  uint32_t target_partition_size = 0;
  uint32_t max_partition_size = 0;
  uint32_t min_partition_size = 0;
  std::string db = "/tmp/quiver_streaming_db";
  std::string out;
  std::string gt_cache = "/tmp/quiver_streaming_gt";
  size_t batch = 1000;
  int search_repeats = 1;
  size_t latency_queries = 0;
  int threads = 0;
  quiver::Device device = quiver::Device::kCpu;  // of every k-means
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view key = argv[i];
    if (key == "--help" || key == "-h") {
      std::printf(
          "streaming_runner --runbook YAML --data FVECS --queries FVECS [--dataset NAME]\n"
          "  [--variant maintained|addonly|rebuild] [--nlist N] [--nprobe N] [--k N]\n"
          "  [--target-partition-size N] [--max-partition-size N] [--min-partition-size N]\n"
          "  [--db DIR] [--out PREFIX] [--gt-cache DIR]\n"
          "  [--batch N] [--search-repeats N] [--latency-queries N] [--threads N]\n"
          "  [--device cpu|auto]  (auto: k-means and the vector mirror on a GPU when present)\n");
      std::exit(0);
    }
    if (i + 1 >= argc) Die("missing value after " + std::string(key));
    const std::string v = argv[++i];
    auto num = [&](auto* out) {
      char* end = nullptr;
      const long long x = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || x < 0) Die("bad value for " + std::string(key));
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(x);
    };
    if (key == "--runbook") a.runbook = v;
    else if (key == "--dataset") a.dataset = v;
    else if (key == "--data") a.data = v;
    else if (key == "--queries") a.queries = v;
    else if (key == "--variant") a.variant = v;
    else if (key == "--nlist") num(&a.nlist);
    else if (key == "--nprobe") num(&a.nprobe);
    else if (key == "--k") num(&a.k);
    else if (key == "--target-partition-size") num(&a.target_partition_size);
    else if (key == "--max-partition-size") num(&a.max_partition_size);
    else if (key == "--min-partition-size") num(&a.min_partition_size);
    else if (key == "--db") a.db = v;
    else if (key == "--out") a.out = v;
    else if (key == "--gt-cache") a.gt_cache = v;
    else if (key == "--batch") num(&a.batch);
    else if (key == "--search-repeats") num(&a.search_repeats);
    else if (key == "--latency-queries") num(&a.latency_queries);
    else if (key == "--threads") num(&a.threads);
    else if (key == "--device") {
      if (v != "cpu" && v != "auto") Die("--device takes cpu or auto");
      a.device = v == "cpu" ? quiver::Device::kCpu : quiver::Device::kAuto;
    }
    else Die("unknown flag " + std::string(key));
  }
  if (a.runbook.empty() || a.data.empty() || a.queries.empty()) {
    Die("--runbook, --data and --queries are required (--help)");
  }
  if (a.variant != "maintained" && a.variant != "addonly" && a.variant != "rebuild") {
    Die("--variant is maintained, addonly or rebuild");
  }
  if (a.nlist == 0 || a.nprobe == 0 || a.k == 0 || a.batch == 0 || a.search_repeats < 1) {
    Die("--nlist, --nprobe, --k, --batch and --search-repeats must be >= 1");
  }
  if (a.threads <= 0) a.threads = std::max(1u, std::thread::hardware_concurrency());
  return a;
}

// One row of the output: a runbook step and the DB's state after it.
struct StepRow {
  int step = 0;
  std::string op;
  uint64_t count = 0;        // vectors inserted / deleted / replaced, queries searched
  uint64_t live = 0;         // live ids after the step (the runbook's view)
  double seconds = 0.0;      // wall time of the step's operation
  double ops_per_s = 0.0;    // count / seconds
  double recall = std::nan("");
  double rebuild_seconds = 0.0;
  quiver::Stats stats;
};

std::string Num(double v) {
  if (std::isnan(v)) return "";
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

std::string JsonNum(double v) { return std::isnan(v) ? "null" : Num(v); }

constexpr char kCsvHeader[] =
    "runbook,variant,step,operation,count,live,seconds,ops_per_s,recall_at_k,qps,"
    "rebuild_seconds,epoch,partitions,trainings,training_seconds,splits,merges,compactions,"
    "reassigned,maintenance_seconds,imbalance,tombstones,drift,scanned_per_query\n";

std::string CsvRow(const std::string& runbook, const std::string& variant, const StepRow& r) {
  const auto& s = r.stats;
  std::ostringstream o;
  const bool search = r.op == "search";
  o << runbook << ',' << variant << ',' << r.step << ',' << r.op << ',' << r.count << ','
    << r.live << ',' << Num(r.seconds) << ',' << (search ? "" : Num(r.ops_per_s)) << ','
    << Num(r.recall) << ',' << (search ? Num(r.ops_per_s) : "") << ','
    << Num(r.rebuild_seconds) << ',' << s.epoch << ',' << s.num_partitions << ','
    << s.trainings << ',' << Num(s.training_seconds) << ',' << s.splits << ',' << s.merges
    << ',' << s.compactions << ',' << s.reassigned << ',' << Num(s.maintenance_seconds) << ','
    << Num(s.imbalance) << ',' << s.tombstones << ',' << Num(s.drift)
    << ",\n";  // scanned_per_query: not exposed by the API
  return o.str();
}

std::string JsonRow(const StepRow& r) {
  const auto& s = r.stats;
  std::ostringstream o;
  o << "{\"step\": " << r.step << ", \"operation\": \"" << r.op << "\", \"count\": " << r.count
    << ", \"live\": " << r.live << ", \"seconds\": " << JsonNum(r.seconds)
    << ", \"ops_per_s\": " << JsonNum(r.ops_per_s) << ", \"recall\": " << JsonNum(r.recall)
    << ", \"rebuild_seconds\": " << JsonNum(r.rebuild_seconds) << ", \"epoch\": " << s.epoch
    << ", \"partitions\": " << s.num_partitions << ", \"trainings\": " << s.trainings
    << ", \"training_seconds\": " << JsonNum(s.training_seconds) << ", \"splits\": " << s.splits
    << ", \"merges\": " << s.merges << ", \"compactions\": " << s.compactions
    << ", \"reassigned\": " << s.reassigned
    << ", \"maintenance_seconds\": " << JsonNum(s.maintenance_seconds)
    << ", \"imbalance\": " << JsonNum(s.imbalance) << ", \"tombstones\": " << s.tombstones
    << ", \"drift\": " << JsonNum(s.drift) << "}";
  return o.str();
}

struct Latency {
  size_t n = 0;
  double p50_us = 0, p99_us = 0, max_us = 0;
};

Latency Summarize(std::vector<double> us) {
  Latency l;
  l.n = us.size();
  if (us.empty()) return l;
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) {
    return us[std::min(us.size() - 1, static_cast<size_t>(p * (us.size() - 1) + 0.5))];
  };
  l.p50_us = pct(0.50);
  l.p99_us = pct(0.99);
  l.max_us = us.back();
  return l;
}

std::string JsonLatency(const Latency& l) {
  std::ostringstream o;
  o << "{\"queries\": " << l.n << ", \"p50_us\": " << JsonNum(l.p50_us)
    << ", \"p99_us\": " << JsonNum(l.p99_us) << ", \"max_us\": " << JsonNum(l.max_us) << "}";
  return o.str();
}

// One Search; returns its latency in microseconds.
double TimedSearch(quiver::DB* db, const quiver::SearchOptions& so, const float* q, size_t d) {
  std::vector<quiver::Neighbor> hits;
  const auto t0 = Clock::now();
  Check(db->Search(so, std::span<const float>(q, d), &hits), "Search");
  return Seconds(t0, Clock::now()) * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  quiver::bench::Runbook rb;
  Check(quiver::bench::LoadRunbook(args.runbook, args.dataset, &rb), "runbook");
  quiver::tools::Matrix data, queries;
  Check(quiver::tools::ReadFvecs(args.data, &data), "data " + args.data);
  Check(quiver::tools::ReadFvecs(args.queries, &queries), "queries " + args.queries);
  if (data.n < rb.max_pts) {
    Die("the data file holds " + std::to_string(data.n) + " rows, the runbook's max_pts is " +
        std::to_string(rb.max_pts));
  }
  if (queries.d != data.d) Die("queries and data differ in dimension");
  const size_t d = data.d, nq = queries.n, k = args.k;

  // The runbook's view of the live set: id -> row of `data`, or -1.
  std::vector<int64_t> row_of(rb.max_pts, -1);
  uint64_t first_insert = 0, live = 0, peak = 0;
  for (const auto& st : rb.steps) {  // dry run: first batch and peak live count
    if (st.op == StepOp::kInsert) {
      if (first_insert == 0) first_insert = st.end - st.start;
      for (uint64_t i = st.start; i < st.end; ++i) {
        if (row_of[i] < 0) ++live;
        row_of[i] = static_cast<int64_t>(i);
      }
    } else if (st.op == StepOp::kDelete) {
      for (uint64_t i = st.start; i < st.end; ++i) {
        if (row_of[i] >= 0) --live;
        row_of[i] = -1;
      }
    } else if (st.op == StepOp::kReplace) {
      for (uint64_t i = 0; i < st.tags_end - st.tags_start; ++i) {
        if (row_of[st.tags_start + i] < 0) ++live;
        row_of[st.tags_start + i] = static_cast<int64_t>(st.ids_start + i);
      }
    }
    peak = std::max(peak, live);
  }
  if (first_insert == 0) Die("the runbook inserts nothing");
  std::fill(row_of.begin(), row_of.end(), -1);
  live = 0;

  const bool maintained = args.variant == "maintained";
  const uint32_t target =
      args.target_partition_size != 0
          ? args.target_partition_size
          : static_cast<uint32_t>(std::max<uint64_t>(1, (peak + args.nlist / 2) / args.nlist));

  quiver::Options opt;
  opt.dim = static_cast<uint32_t>(d);
  opt.metric = quiver::Metric::kL2;
  opt.create_if_missing = true;
  opt.error_if_exists = true;
  opt.device = args.device;
  opt.default_nprobe = args.nprobe;
  opt.background_maintenance = maintained;
  opt.target_partition_size = target;
  opt.max_partition_size = args.max_partition_size;  // 0: the engine's default
  opt.min_partition_size = args.min_partition_size;
  opt.ivf_train_threshold = maintained ? static_cast<uint32_t>(first_insert)
                                       : std::numeric_limits<uint32_t>::max();
  std::error_code ec;
  std::filesystem::remove_all(args.db, ec);
  std::unique_ptr<quiver::DB> db;
  Check(quiver::DB::Open(opt, args.db, &db), "Open " + args.db);

  // Ground truth: cached per runbook, computed on first use.
  const uint64_t gt_key =
      quiver::bench::GroundTruthKey(args.runbook, args.data, args.queries, nq, k);
  std::filesystem::create_directories(args.gt_cache, ec);
  const std::string gt_path = args.gt_cache + "/gt_" + rb.dataset + ".bin";
  quiver::bench::GroundTruthCache gt;
  const bool gt_cached = quiver::bench::LoadGroundTruth(gt_path, gt_key, &gt).ok();
  if (!gt_cached) {
    gt = {};
    gt.key = gt_key;
    gt.nq = nq;
    gt.k = k;
  }
  double gt_seconds = 0.0;
  size_t search_index = 0;

  const std::string prefix =
      !args.out.empty() ? args.out : "bench/results/streaming_" + rb.dataset + "_" + args.variant;
  std::filesystem::create_directories(std::filesystem::path(prefix).parent_path(), ec);

  quiver::SearchOptions so;
  so.k = args.k;
  so.nprobe = args.nprobe;
  quiver::ReindexOptions ro;
  ro.partitions = args.nlist;
  ro.device = args.device;

  std::vector<StepRow> rows;
  double ingest_seconds = 0.0, search_seconds = 0.0, rebuild_seconds_total = 0.0;
  double setup_train_seconds = 0.0;
  uint64_t ingested_ops = 0;
  bool trained = false;
  const auto run_start = Clock::now();
  for (const auto& st : rb.steps) {
    StepRow row;
    row.step = st.number;
    row.op = std::string(quiver::bench::StepOpName(st.op));
    if (st.op == StepOp::kInsert || st.op == StepOp::kDelete || st.op == StepOp::kReplace) {
      // Ids and rows of this step: insert rows [start, end) as ids
      // start..end-1; delete ids; replace ids tags_* with rows ids_*.
      const uint64_t n = st.op == StepOp::kReplace ? st.tags_end - st.tags_start
                                                   : st.end - st.start;
      const uint64_t id0 = st.op == StepOp::kReplace ? st.tags_start : st.start;
      const uint64_t row0 = st.op == StepOp::kReplace ? st.ids_start : st.start;
      quiver::WriteBatch batch;
      const auto t0 = Clock::now();
      for (uint64_t i = 0; i < n; ++i) {
        if (st.op == StepOp::kDelete) {
          batch.Delete(id0 + i);
        } else {
          batch.Put(id0 + i, std::span<const float>(data.row(row0 + i), d));
        }
        if (batch.Count() == args.batch || i + 1 == n) {
          Check(db->Write(quiver::WriteOptions(), &batch), "Write at step " + std::to_string(st.number));
          batch.Clear();
        }
      }
      row.seconds = Seconds(t0, Clock::now());
      for (uint64_t i = 0; i < n; ++i) {
        if (row_of[id0 + i] >= 0) --live;
        row_of[id0 + i] = st.op == StepOp::kDelete ? -1 : static_cast<int64_t>(row0 + i);
        if (row_of[id0 + i] >= 0) ++live;
      }
      row.count = n;
      row.ops_per_s = row.seconds > 0 ? n / row.seconds : 0.0;
      ingest_seconds += row.seconds;
      ingested_ops += n;
      if (!maintained && !trained && st.op == StepOp::kInsert) {
        // Train once, on the first batch; add-only from here on.
        const auto t1 = Clock::now();
        Check(db->Reindex(ro), "first training");
        setup_train_seconds = Seconds(t1, Clock::now());
        trained = true;
      }
    } else {  // search
      if (args.variant == "rebuild") {
        const auto t1 = Clock::now();
        Check(db->Reindex(ro), "rebuild at step " + std::to_string(st.number));
        row.rebuild_seconds = Seconds(t1, Clock::now());
        rebuild_seconds_total += row.rebuild_seconds;
      }
      std::vector<std::vector<quiver::Neighbor>> results;
      double best = std::numeric_limits<double>::infinity();
      for (int r = 0; r < args.search_repeats; ++r) {
        std::vector<std::vector<quiver::Neighbor>> res;
        const auto t1 = Clock::now();
        Check(db->SearchBatch(so, std::span<const float>(queries.data), nq, &res),
              "SearchBatch at step " + std::to_string(st.number));
        best = std::min(best, Seconds(t1, Clock::now()));
        if (r == 0) results = std::move(res);
      }
      row.seconds = best;
      row.count = nq;
      row.ops_per_s = nq / best;
      search_seconds += best;
      // Ground truth of this step.
      if (!gt_cached) {
        std::vector<quiver::bench::LiveVector> lv;
        lv.reserve(live);
        for (uint64_t id = 0; id < row_of.size(); ++id) {
          if (row_of[id] >= 0) lv.push_back({id, static_cast<uint64_t>(row_of[id])});
        }
        std::vector<uint64_t> ans;
        const auto t2 = Clock::now();
        quiver::bench::ExactKnnL2(data.data.data(), d, lv, queries.data.data(), nq, k,
                                  args.threads, &ans);
        gt_seconds += Seconds(t2, Clock::now());
        gt.step_numbers.push_back(st.number);
        gt.answers.push_back(std::move(ans));
      }
      if (search_index >= gt.answers.size() || gt.step_numbers[search_index] != st.number) {
        Die("ground-truth cache does not match the runbook; delete " + gt_path);
      }
      const auto& truth = gt.answers[search_index++];
      double sum = 0.0;
      std::vector<uint64_t> got(k);
      for (size_t q = 0; q < nq; ++q) {
        std::fill(got.begin(), got.end(), kNoId);
        for (size_t j = 0; j < results[q].size() && j < k; ++j) got[j] = results[q][j].id;
        sum += quiver::bench::RecallAtK(std::span<const uint64_t>(truth.data() + q * k, k), got);
      }
      row.recall = sum / nq;
    }
    row.live = live;
    row.stats = db->GetStats();
    if (row.op == "search") {
      std::fprintf(stderr,
                   "[%s %s] step %d: live %llu recall@%u %.4f qps %.0f partitions %u epoch %llu "
                   "splits %llu merges %llu\n",
                   rb.dataset.c_str(), args.variant.c_str(), st.number,
                   static_cast<unsigned long long>(live), args.k, row.recall, row.ops_per_s,
                   row.stats.num_partitions, static_cast<unsigned long long>(row.stats.epoch),
                   static_cast<unsigned long long>(row.stats.splits),
                   static_cast<unsigned long long>(row.stats.merges));
    }
    rows.push_back(std::move(row));
  }
  const double run_seconds = Seconds(run_start, Clock::now());
  // The DB as the runbook left it (the latency phase below re-clusters).
  const quiver::Stats fin = db->GetStats();
  if (!gt_cached) Check(quiver::bench::SaveGroundTruth(gt_path, gt), "save ground truth");

  // Latency: idle, then during a global re-clustering.
  Latency idle, idle_before, idle_after, during;
  double quiesce_seconds = 0.0;
  double latency_reindex_seconds = 0.0;
  int latency_reindexes = 0;
  uint32_t latency_partitions = 0;
  if (args.latency_queries > 0) {
    // Idle means no background maintenance either.
    const auto wait_start = Clock::now();
    Check(db->WaitForMaintenance(), "waiting for maintenance");
    quiesce_seconds = Seconds(wait_start, Clock::now());
    auto measure_idle = [&](size_t offset) {
      std::vector<double> us;
      for (size_t i = 0; i < args.latency_queries / 2; ++i) {
        us.push_back(TimedSearch(db.get(), so, queries.row((offset + i) % nq), d));
      }
      return us;
    };
    for (size_t i = 0; i < std::min<size_t>(nq, 50); ++i) TimedSearch(db.get(), so, queries.row(i), d);
    std::vector<double> idle_us = measure_idle(0);
    std::vector<double> us;
    std::atomic<bool> reindexing{false}, stop{false};
    quiver::ReindexOptions lro = ro;
    lro.partitions = latency_partitions = std::max<uint32_t>(1, db->GetStats().num_partitions);
    // As the maintainer runs a global re-clustering: on half the cores, so
    // that searches keep the others.
    lro.max_threads = std::max(1u, std::thread::hardware_concurrency() / 2);
    std::thread bg([&] {
      // Re-cluster until the searcher has its samples (at least once).
      for (int r = 0; r < 10 && (r == 0 || !stop.load()); ++r) {
        reindexing.store(true);
        const auto t0 = Clock::now();
        quiver::Status s = db->Reindex(lro);
        latency_reindex_seconds += Seconds(t0, Clock::now());
        reindexing.store(false);
        Check(s, "Reindex during the latency measurement");
        ++latency_reindexes;
      }
      stop.store(true);
    });
    while (!reindexing.load() && !stop.load()) std::this_thread::yield();
    size_t i = 0;
    while (!stop.load()) {
      const bool before = reindexing.load();
      const double t = TimedSearch(db.get(), so, queries.row(i++ % nq), d);
      if (before && reindexing.load()) us.push_back(t);
      if (us.size() >= args.latency_queries) stop.store(true);
    }
    bg.join();
    during = Summarize(us);
    // Idle again after the re-clustering: the two idle halves bracket it.
    std::vector<double> after = measure_idle(args.latency_queries / 2);
    idle_after = Summarize(after);
    idle_before = Summarize(idle_us);
    idle_us.insert(idle_us.end(), after.begin(), after.end());
    idle = Summarize(idle_us);
    std::fprintf(stderr,
                 "[%s %s] single-query latency: idle p50 %.0f us p99 %.0f us (before %.0f, "
                 "after %.0f); during Reindex (%d, %.2f s) p50 %.0f us p99 %.0f us (%zu "
                 "queries)\n",
                 rb.dataset.c_str(), args.variant.c_str(), idle.p50_us, idle.p99_us,
                 idle_before.p99_us, idle_after.p99_us, latency_reindexes,
                 latency_reindex_seconds, during.p50_us, during.p99_us, during.n);
  }

  // Summary over search steps.
  double min_recall = 1.0, sum_recall = 0.0;
  int n_search = 0;
  for (const auto& r : rows) {
    if (r.op != "search") continue;
    min_recall = std::min(min_recall, r.recall);
    sum_recall += r.recall;
    ++n_search;
  }
  Check(db->Close(), "Close");

  {
    std::ofstream csv(prefix + ".csv");
    csv << kCsvHeader;
    for (const auto& r : rows) csv << CsvRow(rb.dataset, args.variant, r);
  }
  {
    std::ofstream js(prefix + ".json");
    js << "{\n  \"system\": \"quiver\",\n  \"runbook\": \"" << rb.dataset
       << "\",\n  \"runbook_file\": \"" << args.runbook << "\",\n  \"variant\": \""
       << args.variant << "\",\n  \"config\": {\"nlist\": " << args.nlist
       << ", \"nprobe\": " << args.nprobe << ", \"k\": " << args.k
       << ", \"target_partition_size\": " << target
       << ", \"max_partition_size\": " << opt.max_partition_size
       << ", \"min_partition_size\": " << opt.min_partition_size
       << ", \"recluster_drift\": " << opt.recluster_drift
       << ", \"recluster_imbalance\": " << opt.recluster_imbalance
       << ", \"recluster_written_fraction\": " << opt.recluster_written_fraction
       << ", \"background_maintenance\": " << (maintained ? "true" : "false")
       << ", \"ivf_train_threshold\": " << opt.ivf_train_threshold
       << ", \"first_batch\": " << first_insert << ", \"peak_live\": " << peak
       << ", \"queries\": " << nq << ", \"dim\": " << d << ", \"write_batch\": " << args.batch
       << ", \"search_repeats\": " << args.search_repeats << ", \"threads\": " << args.threads
       << "},\n  \"summary\": {\"search_steps\": " << n_search
       << ", \"min_recall\": " << JsonNum(n_search ? min_recall : std::nan(""))
       << ", \"mean_recall\": " << JsonNum(n_search ? sum_recall / n_search : std::nan(""))
       << ", \"ingest_seconds\": " << JsonNum(ingest_seconds)
       << ", \"ingested_ops\": " << ingested_ops
       << ", \"search_seconds\": " << JsonNum(search_seconds)
       << ", \"rebuild_seconds\": " << JsonNum(rebuild_seconds_total)
       << ", \"first_training_seconds\": " << JsonNum(setup_train_seconds)
       << ", \"run_seconds\": " << JsonNum(run_seconds)
       << ", \"ground_truth_seconds\": " << JsonNum(gt_seconds)
       << ", \"ground_truth_cached\": " << (gt_cached ? "true" : "false")
       << ", \"final_partitions\": " << fin.num_partitions << ", \"final_epoch\": " << fin.epoch
       << ", \"trainings\": " << fin.trainings
       << ", \"training_seconds\": " << JsonNum(fin.training_seconds)
       << ", \"splits\": " << fin.splits << ", \"merges\": " << fin.merges
       << ", \"compactions\": " << fin.compactions << ", \"reassigned\": " << fin.reassigned
       << ", \"maintenance_seconds\": " << JsonNum(fin.maintenance_seconds) << "},\n";
    js << "  \"latency\": ";
    if (args.latency_queries > 0) {
      js << "{\"nprobe\": " << args.nprobe << ", \"quiesce_seconds\": " << JsonNum(quiesce_seconds)
         << ", \"idle\": " << JsonLatency(idle)
         << ", \"idle_before\": " << JsonLatency(idle_before)
         << ", \"idle_after\": " << JsonLatency(idle_after)
         << ", \"during_reindex\": " << JsonLatency(during)
         << ", \"reindexes\": " << latency_reindexes
         << ", \"reindex_seconds\": " << JsonNum(latency_reindex_seconds)
         << ", \"reindex_partitions\": " << latency_partitions << "},\n";
    } else {
      js << "null,\n";
    }
    js << "  \"steps\": [\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      js << "    " << JsonRow(rows[i]) << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    js << "  ]\n}\n";
  }
  std::fprintf(stderr,
               "[%s %s] %d search steps, recall min %.4f mean %.4f; ingest %.2f s, search "
               "%.2f s, rebuild %.2f s, ground truth %.2f s%s -> %s.{csv,json}\n",
               rb.dataset.c_str(), args.variant.c_str(), n_search, min_recall,
               n_search ? sum_recall / n_search : 0.0, ingest_seconds, search_seconds,
               rebuild_seconds_total, gt_seconds, gt_cached ? " (cached)" : "", prefix.c_str());
  return 0;
}
