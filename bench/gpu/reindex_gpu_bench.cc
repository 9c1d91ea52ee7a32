// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// What the GPU mirror saves a re-clustering: two DBs fed the same vectors,
// both re-clustered by DB::Reindex with the k-means on the GPU; one keeps
// its vectors mirrored in GPU memory (Options::device = kAuto: the k-means
// reads them in place), the other does not (Options::device = kCpu, the
// Reindex asking for the GPU: its k-means uploads the host snapshot).
// Prints one JSON object per timed Reindex.
//
//   reindex_gpu_bench [--n 1048576] [--dim 128] [--partitions 1024]
//                     [--iterations 10] [--repeats 3] [--dir /tmp/quiver_rb]
//                     [--device gpu|cpu]   (cpu: both k-means on the CPU, no mirror used)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "quiver/db.h"
#include "quiver/write_batch.h"

namespace {

struct Args {
  size_t n = 1 << 20;
  uint32_t dim = 128;
  uint32_t partitions = 1024;
  int iterations = 10;
  int repeats = 3;
  std::string dir = "/tmp/quiver_rb";
  quiver::Device device = quiver::Device::kGpu;  // of the k-means
};

void Die(const quiver::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "reindex_gpu_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--n") a.n = std::stoull(v);
    else if (k == "--dim") a.dim = static_cast<uint32_t>(std::stoul(v));
    else if (k == "--partitions") a.partitions = static_cast<uint32_t>(std::stoul(v));
    else if (k == "--iterations") a.iterations = std::stoi(v);
    else if (k == "--repeats") a.repeats = std::stoi(v);
    else if (k == "--dir") a.dir = v;
    else if (k == "--device") a.device = v == "cpu" ? quiver::Device::kCpu : quiver::Device::kGpu;
    else {
      std::fprintf(stderr, "reindex_gpu_bench: unknown flag %s (see the header)\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  std::filesystem::remove_all(a.dir);
  std::filesystem::create_directories(a.dir);
  quiver::Options o;
  o.dim = a.dim;
  o.create_if_missing = true;
  o.background_maintenance = false;
  o.ivf_train_threshold = 0xffffffffu;  // trained by Reindex only
  std::unique_ptr<quiver::DB> mirrored, plain;
  o.device = quiver::Device::kAuto;
  Die(quiver::DB::Open(o, a.dir + "/mirrored", &mirrored), "open");
  o.device = quiver::Device::kCpu;
  Die(quiver::DB::Open(o, a.dir + "/plain", &plain), "open");

  // Gaussian blobs around 4,096 centres.
  std::mt19937_64 rng(42);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> centres(4096 * size_t{a.dim});
  for (float& c : centres) c = 4.f * g(rng);
  std::vector<float> v(a.dim);
  quiver::WriteBatch batch;
  const auto ingest_start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < a.n; ++i) {
    const float* c = &centres[(rng() % 4096) * a.dim];
    for (uint32_t j = 0; j < a.dim; ++j) v[j] = c[j] + g(rng);
    batch.Put(i, v);
    if (batch.Count() == 10000 || i + 1 == a.n) {
      Die(mirrored->Write(quiver::WriteOptions(), &batch), "write");
      Die(plain->Write(quiver::WriteOptions(), &batch), "write");
      batch.Clear();
    }
  }
  std::fprintf(stderr, "reindex_gpu_bench: %zu vectors x %u in both DBs in %.1f s; mirrored %llu\n",
               a.n, a.dim,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - ingest_start).count(),
               (unsigned long long)mirrored->GetStats().gpu_mirror_vectors);

  quiver::ReindexOptions ro;
  ro.partitions = a.partitions;
  ro.iterations = a.iterations;
  ro.device = a.device;
  for (int r = 0; r < a.repeats; ++r) {
    for (auto* entry : {&mirrored, &plain}) {
      quiver::DB* db = entry->get();
      const bool is_mirrored = entry == &mirrored;
      const auto t0 = std::chrono::steady_clock::now();
      Die(db->Reindex(ro), "reindex");
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const quiver::Stats st = db->GetStats();
      std::printf(
          "{\"bench\": \"reindex_gpu\", \"mirror\": %s, \"repeat\": %d, \"n\": %zu, \"dim\": %u, "
          "\"partitions\": %u, \"iterations\": %d, \"reindex_ms\": %.2f, "
          "\"gpu_mirror_vectors\": %llu, \"epoch\": %llu}\n",
          is_mirrored ? "true" : "false", r, a.n, a.dim, st.num_partitions, a.iterations,
          secs * 1e3, (unsigned long long)st.gpu_mirror_vectors,
          (unsigned long long)st.epoch);
      std::fflush(stdout);
    }
  }
  mirrored.reset();
  plain.reset();
  std::filesystem::remove_all(a.dir);
  return 0;
}
