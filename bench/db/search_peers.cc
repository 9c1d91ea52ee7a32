// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// search_peers: recall@10 against queries per second over nprobe, quiver
// next to FAISS IndexIVFFlat, in one run on the same data (Fashion-MNIST:
// the 60,000 train images are the base, the 10,000 test images the queries,
// L2, 784-d).
//
// Three indexes, all with the same number of lists (--nlist, default 256):
//   quiver               a quiver DB (public API only): vectors imported with
//                        Write() batches, then Reindex() into nlist partitions
//   faiss-ivfflat        IndexIVFFlat trained by FAISS's own k-means
//                        (same nlist and Lloyd iterations)
//   faiss-ivfflat-qc     IndexIVFFlat whose quantizer holds the centroids of
//                        quiver::KMeans run with the options DB::Reindex uses
//                        (so the same centroids as the quiver DB): the same
//                        partitions, only the search code differs
// Ground truth: exact k = 10 by FAISS IndexFlatL2 (BLAS).
//
// Every nprobe runs the three indexes back to back (the machine may be
// shared; interleaving exposes them to the same load), each a batch search
// of all queries on all cores (quiver SearchBatch on oneTBB, FAISS search on
// OpenMP), best of --repeats runs. Then single-query latency (one thread of
// the caller, one query at a time) at the smallest nprobe where quiver
// reaches recall 0.95.
//
// Usage: search_peers [--data DIR] [--out PREFIX] [--db DIR] [--nlist N]
//                     [--iterations N] [--repeats N] [--latency-queries N]
//                     [--max-nprobe N]
// Writes PREFIX.csv and PREFIX.json (default bench/results/search_fashion_mnist
// relative to the working directory).

#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>

#include "quiver/db.h"
#include "quiver/kmeans.h"
#include "quiver/options.h"
#include "quiver/write_batch.h"
#include "tools/datasets.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const std::string& what, const quiver::Status& s) {
  std::fprintf(stderr, "search_peers: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

constexpr size_t kK = 10;

// OpenBLAS's pthread build keeps its worker threads spinning after a call;
// on a 2-core machine they compete with FAISS's OpenMP scan threads. The
// search phase needs BLAS only for the coarse quantizer (10K x nlist, a few
// GFLOP), so it runs with one BLAS thread. Looked up at run time: a no-op
// with another BLAS. Returns false when the BLAS has no such call.
bool SetBlasThreads(int n) {
  using Fn = void (*)(int);
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (fn == nullptr) return false;
  fn(n);
  return true;
}

struct Args {
  std::string data = quiver::tools::kFashionMnistDir;
  std::string out = "bench/results/search_fashion_mnist";
  std::string db = "/tmp/quiver_search_peers_db";
  size_t nlist = 256;
  int iterations = 20;
  int repeats = 3;
  size_t latency_queries = 5000;
  size_t max_nprobe = 128;
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "search_peers: %s needs a value\n", f.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (f == "--data") a.data = next();
    else if (f == "--out") a.out = next();
    else if (f == "--db") a.db = next();
    else if (f == "--nlist") a.nlist = std::stoul(next());
    else if (f == "--iterations") a.iterations = std::stoi(next());
    else if (f == "--repeats") a.repeats = std::stoi(next());
    else if (f == "--latency-queries") a.latency_queries = std::stoul(next());
    else if (f == "--max-nprobe") a.max_nprobe = std::stoul(next());
    else {
      std::fprintf(stderr, "search_peers: unknown flag %s\n", f.c_str());
      std::exit(2);
    }
  }
  return a;
}

// Mean over queries of |result ∩ truth| / k; labels are nq x k (-1 = none).
double RecallAtK(const std::vector<int64_t>& labels, const std::vector<int64_t>& truth,
                 size_t nq) {
  double sum = 0.0;
  for (size_t q = 0; q < nq; ++q) {
    size_t hit = 0;
    for (size_t i = 0; i < kK; ++i) {
      const int64_t l = labels[q * kK + i];
      if (l < 0) continue;
      for (size_t j = 0; j < kK; ++j) {
        if (truth[q * kK + j] == l) {
          ++hit;
          break;
        }
      }
    }
    sum += static_cast<double>(hit) / kK;
  }
  return sum / nq;
}

// One searchable index under test.
struct System {
  std::string name;
  // Batch search of nq queries at `nprobe`, labels out (nq x k).
  std::function<void(size_t nprobe, const float* q, size_t nq, int64_t* labels)> batch;
  // One query at `nprobe`.
  std::function<void(size_t nprobe, const float* q, int64_t* labels)> single;
};

struct Row {
  std::string system;
  size_t nprobe;
  double recall;
  double qps;
  double seconds;  // best batch time
};

// log-QPS interpolated at `recall` on a system's (recall, qps) curve;
// NaN when the curve never reaches it.
double QpsAtRecall(const std::vector<Row>& rows, const std::string& sys, double recall) {
  std::vector<const Row*> r;
  for (const auto& x : rows) if (x.system == sys) r.push_back(&x);
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i]->recall >= recall) {
      if (i == 0) return r[i]->qps;
      const Row* a = r[i - 1];
      const Row* b = r[i];
      const double t = (recall - a->recall) / (b->recall - a->recall);
      return std::exp(std::log(a->qps) + t * (std::log(b->qps) - std::log(a->qps)));
    }
  }
  return std::nan("");
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  }
  return "unknown";
}

std::string Json(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

struct Latency {
  std::string system;
  size_t nprobe = 0;
  size_t queries = 0;
  double p50_ms = 0, p99_ms = 0, mean_ms = 0;
  double recall = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const std::vector<size_t> nprobes = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128};

  quiver::tools::Matrix train, test;
  quiver::Status s = quiver::tools::LoadFashionMnist(args.data, &train, &test);
  if (!s.ok()) Die("loading Fashion-MNIST from " + args.data, s);
  const size_t n = train.n, d = train.d, nq = test.n;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("data: %zu base x %zu queries, d = %zu; omp threads %d, hw threads %u\n", n, nq,
              d, omp_get_max_threads(), std::thread::hardware_concurrency());

  // ---- ground truth -------------------------------------------------------
  std::vector<int64_t> truth(nq * kK);
  double gt_seconds = 0;
  {
    faiss::IndexFlatL2 flat(d);
    flat.add(n, train.data.data());
    std::vector<float> dist(nq * kK);
    auto t0 = Clock::now();
    flat.search(nq, test.data.data(), kK, dist.data(), truth.data());
    gt_seconds = Seconds(t0, Clock::now());
    std::printf("ground truth (IndexFlatL2, exact): %.2f s\n", gt_seconds);
    std::fflush(stdout);
  }

  // ---- quiver -------------------------------------------------------------
  std::filesystem::remove_all(args.db);
  quiver::Options opt;
  opt.dim = static_cast<uint32_t>(d);
  opt.metric = quiver::Metric::kL2;
  opt.device = quiver::Device::kCpu;
  // Stay flat during the import; Reindex() below trains exactly nlist lists.
  opt.ivf_train_threshold = UINT32_MAX;
  opt.kmeans_iterations = args.iterations;
  std::unique_ptr<quiver::DB> db;
  s = quiver::DB::Open(opt, args.db, &db);
  if (!s.ok()) Die("opening " + args.db, s);
  auto t0 = Clock::now();
  {
    quiver::WriteBatch batch;
    for (size_t i = 0; i < n; ++i) {
      batch.Put(i, std::span<const float>(train.row(i), d));
      if (batch.Count() == 1000 || i + 1 == n) {
        s = db->Write(quiver::WriteOptions(), &batch);
        if (!s.ok()) Die("import", s);
        batch.Clear();
      }
    }
  }
  const double quiver_import_s = Seconds(t0, Clock::now());
  t0 = Clock::now();
  s = db->Reindex(quiver::ReindexOptions{.partitions = static_cast<uint32_t>(args.nlist),
                                         .iterations = args.iterations,
                                         .device = quiver::Device::kCpu});
  if (!s.ok()) Die("reindex", s);
  const double quiver_reindex_s = Seconds(t0, Clock::now());
  const quiver::Stats qst = db->GetStats();
  std::printf("quiver: import %.2f s, reindex (%u partitions, %d iterations) %.2f s, "
              "partition sizes %llu..%llu, imbalance %.2f\n",
              quiver_import_s, qst.num_partitions, args.iterations, quiver_reindex_s,
              static_cast<unsigned long long>(qst.min_partition_size),
              static_cast<unsigned long long>(qst.max_partition_size), qst.imbalance);

  // ---- FAISS, own k-means -------------------------------------------------
  faiss::IndexFlatL2 faiss_quantizer(d);
  faiss::IndexIVFFlat faiss_ivf(&faiss_quantizer, d, args.nlist, faiss::METRIC_L2);
  faiss_ivf.cp.niter = args.iterations;
  t0 = Clock::now();
  faiss_ivf.train(n, train.data.data());
  const double faiss_train_s = Seconds(t0, Clock::now());
  t0 = Clock::now();
  faiss_ivf.add(n, train.data.data());
  const double faiss_add_s = Seconds(t0, Clock::now());
  std::printf("faiss-ivfflat: train (k-means, %d iterations) %.2f s, add %.2f s\n",
              args.iterations, faiss_train_s, faiss_add_s);

  // ---- FAISS with quiver's centroids --------------------------------------
  // quiver::KMeans with the options DB::Reindex passes on the first training
  // (seed 1234 + epoch 0, tolerance 1e-4, k-means++, same iterations, the
  // vectors in id order as the flat index holds them).
  quiver::KMeansOptions ko;
  ko.max_iterations = args.iterations;
  ko.tolerance = 1e-4;
  ko.seed = 1234;
  ko.metric = quiver::Metric::kL2;
  ko.device = quiver::Device::kCpu;
  quiver::KMeansResult km;
  t0 = Clock::now();
  s = quiver::KMeans(ko, train.data.data(), n, d, args.nlist, &km);
  if (!s.ok()) Die("quiver::KMeans", s);
  const double qkmeans_s = Seconds(t0, Clock::now());
  faiss::IndexFlatL2 qc_quantizer(d);
  qc_quantizer.add(args.nlist, km.centroids.data());
  faiss::IndexIVFFlat qc_ivf(&qc_quantizer, d, args.nlist, faiss::METRIC_L2);
  qc_ivf.is_trained = true;
  qc_ivf.add(n, train.data.data());
  // Same centroids: the list sizes match quiver's partitions in order, up
  // to the few points that lie on a boundary (FAISS assigns with
  // ||x||^2 + ||c||^2 - 2<x,c> in BLAS, quiver with its own kernel).
  size_t moved = 0;
  bool same_count = qst.partition_sizes.size() == args.nlist;
  for (size_t l = 0; same_count && l < args.nlist; ++l) {
    const int64_t a = static_cast<int64_t>(qc_ivf.invlists->list_size(l));
    const int64_t b = static_cast<int64_t>(qst.partition_sizes[l]);
    moved += static_cast<size_t>(a > b ? a - b : b - a);
  }
  moved /= 2;
  const bool same_lists = same_count && moved * 1000 <= n;  // <= 0.1% of points differ
  std::printf("quiver::KMeans %.2f s (%d iterations); FAISS list sizes vs quiver partitions: "
              "%s, ~%zu points placed differently\n",
              qkmeans_s, km.iterations, same_lists ? "match" : "DO NOT match", moved);

  // ---- systems -------------------------------------------------------------
  std::vector<System> systems;
  systems.push_back(System{
      "quiver",
      [&](size_t nprobe, const float* q, size_t m, int64_t* labels) {
        std::vector<std::vector<quiver::Neighbor>> res;
        quiver::Status st = db->SearchBatch(
            quiver::SearchOptions{.k = kK, .nprobe = static_cast<uint32_t>(nprobe)},
            std::span<const float>(q, m * d), m, &res);
        if (!st.ok()) Die("SearchBatch", st);
        for (size_t i = 0; i < m; ++i) {
          for (size_t j = 0; j < kK; ++j) {
            labels[i * kK + j] = j < res[i].size() ? static_cast<int64_t>(res[i][j].id) : -1;
          }
        }
      },
      [&](size_t nprobe, const float* q, int64_t* labels) {
        std::vector<quiver::Neighbor> res;
        quiver::Status st = db->Search(
            quiver::SearchOptions{.k = kK, .nprobe = static_cast<uint32_t>(nprobe)},
            std::span<const float>(q, d), &res);
        if (!st.ok()) Die("Search", st);
        for (size_t j = 0; j < kK; ++j) {
          labels[j] = j < res.size() ? static_cast<int64_t>(res[j].id) : -1;
        }
      }});
  auto faiss_system = [&](const std::string& name, faiss::IndexIVFFlat* index) {
    return System{
        name,
        [index](size_t nprobe, const float* q, size_t m, int64_t* labels) {
          index->nprobe = nprobe;
          std::vector<float> dist(m * kK);
          index->search(m, q, kK, dist.data(), labels);
        },
        [index](size_t nprobe, const float* q, int64_t* labels) {
          index->nprobe = nprobe;
          float dist[kK];
          index->search(1, q, kK, dist, labels);
        }};
  };
  systems.push_back(faiss_system("faiss-ivfflat", &faiss_ivf));
  systems.push_back(faiss_system("faiss-ivfflat-qc", &qc_ivf));

  // ---- sweep ------------------------------------------------------------------
  std::vector<Row> rows;
  std::vector<int64_t> labels(nq * kK);
  // The effect of the BLAS threads on FAISS, shown once at nprobe 1.
  double faiss_np1_blas_default_s = 0, faiss_np1_blas_one_s = 0;
  {
    auto a = Clock::now();
    systems[1].batch(1, test.data.data(), nq, labels.data());
    faiss_np1_blas_default_s = Seconds(a, Clock::now());
  }
  const bool blas_set = SetBlasThreads(1);
  {
    auto a = Clock::now();
    systems[1].batch(1, test.data.data(), nq, labels.data());
    faiss_np1_blas_one_s = Seconds(a, Clock::now());
  }
  std::printf("faiss-ivfflat nprobe 1 batch: %.3f s with default BLAS threads, %.3f s with "
              "one BLAS thread (%s)\n",
              faiss_np1_blas_default_s, faiss_np1_blas_one_s,
              blas_set ? "openblas_set_num_threads(1)" : "no OpenBLAS: unchanged");
  for (auto& sys : systems) sys.batch(nprobes[0], test.data.data(), nq, labels.data());  // warm-up
  for (size_t nprobe : nprobes) {
    if (nprobe > args.nlist || nprobe > args.max_nprobe) break;
    for (auto& sys : systems) {
      double best = 1e30;
      double recall = 0;
      for (int r = 0; r < std::max(1, args.repeats); ++r) {
        auto a = Clock::now();
        sys.batch(nprobe, test.data.data(), nq, labels.data());
        const double t = Seconds(a, Clock::now());
        best = std::min(best, t);
        if (r == 0) recall = RecallAtK(labels, truth, nq);
        // Slow points (> 10 s) are measured once.
        if (t > 10.0) break;
      }
      rows.push_back(Row{sys.name, nprobe, recall, nq / best, best});
      std::printf("%-18s nprobe %4zu  recall@10 %.4f  QPS %10.1f  (%.3f s)\n",
                  sys.name.c_str(), nprobe, recall, nq / best, best);
      std::fflush(stdout);
    }
  }

  // ---- single-query latency at quiver's recall-0.95 nprobe ---------------------
  size_t lat_nprobe = 0;
  for (const auto& r : rows) {
    if (r.system == "quiver" && r.recall >= 0.95) {
      lat_nprobe = r.nprobe;
      break;
    }
  }
  std::vector<Latency> latencies;
  if (lat_nprobe != 0) {
    const size_t m = std::min(args.latency_queries, nq);
    for (auto& sys : systems) {
      std::vector<double> ms(m);
      std::vector<int64_t> lab(m * kK);
      for (size_t i = 0; i < std::min<size_t>(100, m); ++i) {
        sys.single(lat_nprobe, test.row(i), lab.data());  // warm-up
      }
      for (size_t i = 0; i < m; ++i) {
        auto a = Clock::now();
        sys.single(lat_nprobe, test.row(i), &lab[i * kK]);
        ms[i] = Seconds(a, Clock::now()) * 1e3;
      }
      std::vector<int64_t> sub_truth(truth.begin(), truth.begin() + m * kK);
      Latency l;
      l.system = sys.name;
      l.nprobe = lat_nprobe;
      l.queries = m;
      l.recall = RecallAtK(lab, sub_truth, m);
      double sum = 0;
      for (double x : ms) sum += x;
      l.mean_ms = sum / m;
      std::sort(ms.begin(), ms.end());
      l.p50_ms = ms[m / 2];
      l.p99_ms = ms[std::min(m - 1, static_cast<size_t>(std::ceil(0.99 * m)) - 1)];
      latencies.push_back(l);
      std::printf("latency %-18s nprobe %zu: p50 %.3f ms  p99 %.3f ms  mean %.3f ms "
                  "(recall %.4f, %zu queries)\n",
                  sys.name.c_str(), lat_nprobe, l.p50_ms, l.p99_ms, l.mean_ms, l.recall, m);
    }
  }

  const double q95 = QpsAtRecall(rows, "quiver", 0.95);
  const double f95 = QpsAtRecall(rows, "faiss-ivfflat", 0.95);
  const double fqc95 = QpsAtRecall(rows, "faiss-ivfflat-qc", 0.95);
  std::printf("QPS at recall 0.95 (log-interpolated): quiver %.1f, faiss-ivfflat %.1f, "
              "faiss-ivfflat-qc %.1f -> target (quiver >= faiss-ivfflat) %s\n",
              q95, f95, fqc95, q95 >= f95 ? "MET" : "NOT MET");

  // ---- outputs ---------------------------------------------------------------------
  std::filesystem::create_directories(std::filesystem::path(args.out).parent_path());
  {
    std::ofstream csv(args.out + ".csv");
    csv << "system,nprobe,recall_at_10,qps,batch_seconds,queries\n";
    for (const auto& r : rows) {
      csv << r.system << ',' << r.nprobe << ',' << Json(r.recall) << ',' << Json(r.qps) << ','
          << Json(r.seconds) << ',' << nq << '\n';
    }
  }
  {
    std::ofstream js(args.out + ".json");
    js << "{\n  \"benchmark\": \"search_peers\",\n  \"dataset\": \"fashion-mnist\",\n"
       << "  \"base\": " << n << ", \"queries\": " << nq << ", \"dim\": " << d
       << ", \"k\": " << kK << ", \"metric\": \"L2\",\n"
       << "  \"machine\": {\"cpu\": \"" << CpuModel() << "\", \"hw_threads\": "
       << std::thread::hardware_concurrency() << ", \"omp_threads\": " << omp_get_max_threads()
       << "},\n"
       << "  \"nlist\": " << args.nlist << ", \"kmeans_iterations\": " << args.iterations
       << ", \"repeats\": " << args.repeats << ", \"max_nprobe\": " << args.max_nprobe
       << ",\n  \"faiss_nprobe1_batch_seconds\": {\"blas_threads_default\": "
       << Json(faiss_np1_blas_default_s) << ", \"blas_threads_1\": " << Json(faiss_np1_blas_one_s)
       << ", \"search_phase_blas_threads\": " << (blas_set ? "1" : "null") << "},\n"
       << "  \"ground_truth_seconds\": " << Json(gt_seconds) << ",\n"
       << "  \"build\": {\"quiver_import_seconds\": " << Json(quiver_import_s)
       << ", \"quiver_reindex_seconds\": " << Json(quiver_reindex_s)
       << ", \"quiver_partition_imbalance\": " << Json(qst.imbalance)
       << ", \"faiss_train_seconds\": " << Json(faiss_train_s)
       << ", \"faiss_add_seconds\": " << Json(faiss_add_s)
       << ", \"quiver_kmeans_seconds\": " << Json(qkmeans_s)
       << ", \"faiss_qc_lists_match_quiver_partitions\": " << (same_lists ? "true" : "false")
       << ", \"faiss_qc_points_placed_differently\": " << moved
       << "},\n  \"results\": [\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      js << "    {\"system\": \"" << r.system << "\", \"nprobe\": " << r.nprobe
         << ", \"recall_at_10\": " << Json(r.recall) << ", \"qps\": " << Json(r.qps)
         << ", \"batch_seconds\": " << Json(r.seconds) << "}"
         << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    js << "  ],\n  \"latency\": [\n";
    for (size_t i = 0; i < latencies.size(); ++i) {
      const auto& l = latencies[i];
      js << "    {\"system\": \"" << l.system << "\", \"nprobe\": " << l.nprobe
         << ", \"queries\": " << l.queries << ", \"p50_ms\": " << Json(l.p50_ms)
         << ", \"p99_ms\": " << Json(l.p99_ms) << ", \"mean_ms\": " << Json(l.mean_ms)
         << ", \"recall_at_10\": " << Json(l.recall) << "}"
         << (i + 1 < latencies.size() ? ",\n" : "\n");
    }
    js << "  ],\n  \"qps_at_recall_0_95\": {\"quiver\": " << Json(q95)
       << ", \"faiss-ivfflat\": " << Json(f95) << ", \"faiss-ivfflat-qc\": " << Json(fqc95)
       << "},\n  \"target_met\": " << (q95 >= f95 ? "true" : "false") << "\n}\n";
  }
  std::printf("wrote %s.csv and %s.json\n", args.out.c_str(), args.out.c_str());
  (void)db->Close();
  std::filesystem::remove_all(args.db);
  return 0;
}
