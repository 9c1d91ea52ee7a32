// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// CPU k-means side by side, in one run, on the same data and from the same
// initial centroids: quiver (oneTBB + AVX2), FAISS (Debian's libfaiss,
// OpenMP + OpenBLAS) and scikit-learn (Debian's python3-sklearn, through
// bench/kernels/kmeans_sklearn.py). Every run does the same number of exact
// Lloyd iterations from quiver's k-means++ seeding; the objective of every
// implementation's final centroids is recomputed here the same way (sum of
// squared distances of every point to its nearest final centroid, in
// double), so "equal objective" is checked, not assumed.
//
//   kmeans_peers [--iters 10] [--out bench/results] [--only fashion|sift]
//                [--sklearn bench/kernels/kmeans_sklearn.py] [--quick]
//                [--faiss-label faiss]   (names the FAISS build in the output)
//
// Writes <out>/kmeans_cpu_peers.csv and <out>/kmeans_cpu_peers.json.

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <tbb/global_control.h>
#include <tbb/info.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/distance.h"
#include "kernels/cpu/kmeans_cpu.h"
#include "quiver/kmeans.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Dataset {
  std::string name;
  size_t n = 0, d = 0;
  std::vector<float> x;
};

// IDX3 (ubyte) images through `gzip -dc`, scaled to [0, 1].
bool LoadIdxGz(const std::string& path, Dataset* ds) {
  FILE* p = popen(("gzip -dc '" + path + "'").c_str(), "r");
  if (p == nullptr) return false;
  unsigned char hdr[16];
  if (fread(hdr, 1, 16, p) != 16 || hdr[2] != 0x08 || hdr[3] != 3) {
    pclose(p);
    return false;
  }
  auto be = [&](int o) {
    return (size_t(hdr[o]) << 24) | (size_t(hdr[o + 1]) << 16) |
           (size_t(hdr[o + 2]) << 8) | size_t(hdr[o + 3]);
  };
  ds->n = be(4);
  ds->d = be(8) * be(12);
  std::vector<unsigned char> raw(ds->n * ds->d);
  const size_t got = fread(raw.data(), 1, raw.size(), p);
  pclose(p);
  if (got != raw.size()) return false;
  ds->x.resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) ds->x[i] = float(raw[i]) / 255.0f;
  return true;
}

bool LoadFvecs(const std::string& path, Dataset* ds) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  int32_t dim = 0;
  ds->x.clear();
  ds->n = 0;
  while (fread(&dim, 4, 1, f) == 1) {
    ds->d = size_t(dim);
    const size_t old = ds->x.size();
    ds->x.resize(old + ds->d);
    if (fread(ds->x.data() + old, 4, ds->d, f) != ds->d) break;
    ++ds->n;
  }
  fclose(f);
  return ds->n > 0;
}

// Sum over points of the squared distance to the nearest centroid (double).
double Objective(const Dataset& ds, const std::vector<float>& centroids,
                 size_t k) {
  std::vector<uint32_t> labels(ds.n);
  std::vector<float> dist(ds.n);
  if (!quiver::KMeansPredict(quiver::Metric::kL2, centroids.data(), k,
                             ds.x.data(), ds.n, ds.d, labels.data(),
                             dist.data())
           .ok()) {
    return NAN;
  }
  double s = 0;
  for (size_t i = 0; i < ds.n; ++i) {
    s += quiver::kernels::L2Sqr(&ds.x[i * ds.d], &centroids[labels[i] * ds.d],
                                ds.d);
  }
  return s;
}

struct Run {
  std::string impl;
  double total_s = 0;      // the whole call (setup + iterations + extras)
  double ms_per_iter = 0;  // mean wall time of one Lloyd iteration
  std::vector<double> objective;  // per iteration, as the library reports it
  double final_objective = 0;     // recomputed here from final centroids
  std::vector<float> centroids;
  std::string note;
};

Run RunQuiver(const Dataset& ds, size_t k, const std::vector<float>& init,
              int iters, bool plain) {
  Run r;
  r.impl = plain ? "quiver-plain" : "quiver";
  quiver::kernels::DisableBoundsForTesting(plain);
  quiver::KMeansOptions opt;
  opt.device = quiver::Device::kCpu;
  opt.init = quiver::KMeansInit::kGiven;
  opt.initial_centroids = init.data();
  opt.max_iterations = iters;
  opt.tolerance = 0;
  std::vector<Clock::time_point> stamps;
  opt.progress = [&](const quiver::KMeansIterationInfo&) {
    stamps.push_back(Clock::now());
    return true;
  };
  quiver::KMeansResult res;
  const auto t0 = Clock::now();
  quiver::Status s = quiver::KMeans(opt, ds.x.data(), ds.n, ds.d, k, &res);
  const auto t1 = Clock::now();
  quiver::kernels::DisableBoundsForTesting(false);
  if (!s.ok()) {
    r.note = s.ToString();
    return r;
  }
  r.total_s = Seconds(t0, t1);
  r.ms_per_iter = 1e3 * Seconds(t0, stamps.back()) / double(stamps.size());
  r.objective = res.objective;
  r.centroids = std::move(res.centroids);
  r.note =
      plain ? "every point against every centroid each iteration (bounds off)"
            : "exact group bounds skip provably unchanged comparisons";
  r.note += "; total includes the final assignment to the returned centroids";
  return r;
}

// The name of the FAISS build in the output (--faiss-label).
std::string g_faiss_label = "faiss";

Run RunFaiss(const Dataset& ds, size_t k, const std::vector<float>& init,
             int iters) {
  Run r;
  r.impl = g_faiss_label;
  faiss::ClusteringParameters cp;
  cp.niter = iters;
  cp.nredo = 1;
  cp.seed = 1234;
  cp.verbose = false;
  cp.spherical = false;
  cp.min_points_per_centroid = 1;
  cp.max_points_per_centroid = int(ds.n / k + 1) * 2;  // never subsample
  faiss::Clustering clus(int(ds.d), int(k), cp);
  clus.centroids = init;  // k x d: used as the starting centroids
  faiss::IndexFlatL2 index(int64_t(ds.d));
  const auto t0 = Clock::now();
  clus.train(faiss::Index::idx_t(ds.n), ds.x.data(), index);
  const auto t1 = Clock::now();
  r.total_s = Seconds(t0, t1);
  // iteration_stats[i].time is cumulative since the start of train().
  const auto& st = clus.iteration_stats;
  r.ms_per_iter = st.empty() ? 0 : 1e3 * st.back().time / double(st.size());
  for (const auto& s : st) r.objective.push_back(s.obj);
  r.centroids = clus.centroids;
  return r;
}

bool WriteFile(const std::string& path, const void* p, size_t bytes) {
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = fwrite(p, 1, bytes, f) == bytes;
  return fclose(f) == 0 && ok;
}

Run RunSklearn(const std::string& script, const Dataset& ds, size_t k,
               const std::vector<float>& init, int iters) {
  Run r;
  r.impl = "sklearn";
  const std::string base =
      "/tmp/quiver_kmeans_peers_" + std::to_string(getpid());
  if (!WriteFile(base + ".data", ds.x.data(), ds.x.size() * 4) ||
      !WriteFile(base + ".init", init.data(), init.size() * 4)) {
    r.note = "could not write temp files";
    return r;
  }
  // Debian's python3 (numpy / scipy / sklearn see OpenBLAS there); both
  // cores for OpenMP and BLAS; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset
  // for this command only (they select a slower kernel).
  const std::string cmd =
      "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=2 "
      "/usr/bin/python3 '" +
      script + "' --data " + base + ".data --init " + base + ".init --n " +
      std::to_string(ds.n) + " --d " + std::to_string(ds.d) + " --k " +
      std::to_string(k) + " --iters " + std::to_string(iters) + " --out " +
      base + ".centroids";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  if (p != nullptr) {
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, got);
    pclose(p);
  }
  // The script prints one line: fit_s iterations inertia blas
  std::istringstream in(out);
  double fit_s = 0, inertia = 0;
  int n_iter = 0;
  std::string blas;
  if (!(in >> fit_s >> n_iter >> inertia >> blas) || n_iter <= 0) {
    r.note = "sklearn failed: " + out;
  } else {
    r.total_s = fit_s;
    r.ms_per_iter = 1e3 * fit_s / n_iter;
    r.note =
        "ms/iter = fit() time / n_iter_ (includes its final E-step); BLAS " +
        blas;
    r.centroids.resize(k * ds.d);
    FILE* f = fopen((base + ".centroids").c_str(), "rb");
    if (f == nullptr || fread(r.centroids.data(), 4, r.centroids.size(), f) !=
                            r.centroids.size()) {
      r.note = "sklearn: no centroids";
      r.centroids.clear();
    }
    if (f != nullptr) fclose(f);
  }
  std::remove((base + ".data").c_str());
  std::remove((base + ".init").c_str());
  std::remove((base + ".centroids").c_str());
  return r;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

std::string JsonArray(const std::vector<double>& v) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < v.size(); ++i)
    o << (i ? ", " : "") << JsonNumber(v[i]);
  o << "]";
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 10;
  std::string out_dir = "bench/results";
  std::string only;
  std::string script = "bench/kernels/kmeans_sklearn.py";
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() {
      return i + 1 < argc ? std::string(argv[++i]) : std::string();
    };
    if (a == "--iters") {
      iters = std::atoi(next().c_str());
    } else if (a == "--out") {
      out_dir = next();
    } else if (a == "--only") {
      only = next();
    } else if (a == "--sklearn") {
      script = next();
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--faiss-label") {
      g_faiss_label = next();
    } else {
      std::fprintf(stderr,
                   "usage: kmeans_peers [--iters N] [--out DIR] "
                   "[--only fashion|sift] [--sklearn PATH] [--quick] "
                   "[--faiss-label NAME]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  const char* data_dir_env = std::getenv("QUIVER_DATA_DIR");
  const std::string data_dir =
      data_dir_env ? data_dir_env : "/work/shared/data";

  struct Config {
    Dataset* ds;
    size_t k;
  };
  Dataset fashion, sift;
  fashion.name = "fashion-mnist-60k";
  sift.name = "sift5k";
  std::vector<Config> configs;
  if (only.empty() || only == "sift") {
    if (LoadFvecs(data_dir + "/sift5k/sift5k_base.fvecs", &sift)) {
      configs.push_back({&sift, 64});
      configs.push_back({&sift, 256});
    } else {
      std::fprintf(stderr, "no SIFT 5K under %s\n", data_dir.c_str());
    }
  }
  if (only.empty() || only == "fashion") {
    if (LoadIdxGz(
            "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
            &fashion)) {
      configs.push_back({&fashion, 256});
      if (!quick) configs.push_back({&fashion, 1024});
    } else {
      std::fprintf(stderr, "no Fashion-MNIST\n");
    }
  }

  const int threads = tbb::info::default_concurrency();
  std::ofstream csv(out_dir + "/kmeans_cpu_peers.csv");
  csv << "dataset,n,d,k,impl,iterations,ms_per_iter,total_s,objective_last_"
         "iter,"
         "final_objective,final_objective_rel_to_quiver\n";
  std::ostringstream json;
  json << "{\n  \"machine\": \"" << threads
       << " threads (oneTBB default concurrency), AVX2+FMA: "
       << (quiver::kernels::simd::HasAvx2Fma() ? "yes" : "no")
       << "\",\n  \"iterations\": " << iters << ",\n  \"runs\": [\n";
  bool first_json = true;
  for (const Config& cfg : configs) {
    const Dataset& ds = *cfg.ds;
    const size_t k = cfg.k;
    std::fprintf(stderr, "== %s n=%zu d=%zu k=%zu\n", ds.name.c_str(), ds.n,
                 ds.d, k);
    quiver::KMeansOptions init_opt;
    init_opt.init = quiver::KMeansInit::kKMeansPlusPlus;
    init_opt.seed = 1234;
    std::vector<float> init(k * ds.d);
    const auto ti0 = Clock::now();
    if (!quiver::kernels::InitCentroids(init_opt, ds.x.data(), ds.n, ds.d, k,
                                        init.data())
             .ok()) {
      std::fprintf(stderr, "init failed\n");
      return 1;
    }
    std::fprintf(stderr, "   k-means++ init (quiver, shared by all): %.2f s\n",
                 Seconds(ti0, Clock::now()));
    // Best of `reps` runs, the implementations interleaved (quiver, quiver
    // without bounds, FAISS, sklearn, then again) so that load from other
    // processes hits all of them alike; a pause between runs lets spinning
    // OpenMP / OpenBLAS threads go to sleep.
    const int reps = ds.n * ds.d * k < size_t(2e9) ? 3 : 2;
    std::vector<Run> runs(4);
    for (int r = 0; r < reps; ++r) {
      for (int impl = 0; impl < 4; ++impl) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        Run cur = impl == 0   ? RunQuiver(ds, k, init, iters, false)
                  : impl == 1 ? RunQuiver(ds, k, init, iters, true)
                  : impl == 2 ? RunFaiss(ds, k, init, iters)
                              : RunSklearn(script, ds, k, init, iters);
        std::fprintf(stderr, "   rep %d %-12s %9.1f ms/iter\n", r,
                     cur.impl.c_str(), cur.ms_per_iter);
        if (r == 0 ||
            (cur.ms_per_iter > 0 && cur.ms_per_iter < runs[impl].ms_per_iter)) {
          runs[impl] = std::move(cur);
        }
      }
    }
    std::string loadavg;
    {
      std::ifstream la("/proc/loadavg");
      std::getline(la, loadavg);
    }
    double quiver_obj = 0;
    for (Run& r : runs) {
      r.final_objective =
          r.centroids.empty() ? NAN : Objective(ds, r.centroids, k);
      if (r.impl == "quiver") quiver_obj = r.final_objective;
    }
    for (const Run& r : runs) {
      const double last = r.objective.empty() ? NAN : r.objective.back();
      std::fprintf(stderr,
                   "   %-12s %9.1f ms/iter  total %7.2f s  obj(last iter) %.6g "
                   " final obj %.8g  %s\n",
                   r.impl.c_str(), r.ms_per_iter, r.total_s, last,
                   r.final_objective, r.note.c_str());
      char line[512];
      std::snprintf(
          line, sizeof(line), "%s,%zu,%zu,%zu,%s,%d,%.2f,%.3f,%.8g,%.8g,%.8f\n",
          ds.name.c_str(), ds.n, ds.d, k, r.impl.c_str(), iters, r.ms_per_iter,
          r.total_s, last, r.final_objective, r.final_objective / quiver_obj);
      csv << line;
      json << (first_json ? "" : ",\n") << "    {\"dataset\": \"" << ds.name
           << "\", \"n\": " << ds.n << ", \"d\": " << ds.d << ", \"k\": " << k
           << ", \"impl\": \"" << r.impl
           << "\", \"ms_per_iter\": " << r.ms_per_iter
           << ", \"total_s\": " << r.total_s
           << ", \"objective_per_iter\": " << JsonArray(r.objective)
           << ", \"final_objective\": " << JsonNumber(r.final_objective)
           << ", \"reps\": " << reps << ", \"loadavg_after\": \"" << loadavg
           << "\", \"note\": \"" << r.note << "\"}";
      first_json = false;
    }
    csv.flush();
  }
  json << "\n  ]\n}\n";
  std::ofstream(out_dir + "/kmeans_cpu_peers.json") << json.str();
  return 0;
}
