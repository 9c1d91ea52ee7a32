// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// ingest_bench: durable ingest throughput (vectors acknowledged per second)
// of quiver next to raw RocksDB writing the same bytes, on Fashion-MNIST's
// 60,000 train vectors (784-d float32).
//
// Cases, each in a fresh directory, best of --repeats runs:
//   quiver   Write() of 1000-vector WriteBatches, sync false / true
//            Put() one vector at a time, sync false / true
//            (Options::ivf_train_threshold = UINT32_MAX: the index stays flat,
//            so this is the storage + in-memory append cost alone)
//   quiver   the same batched import with the default ivf_train_threshold
//            (8192): the first k-means training runs inside the Write that
//            crosses it; its time is reported separately
//   rocksdb  rocksdb::WriteBatch / Put of the same shape: key = 8-byte
//            big-endian id, value = a 36-byte header + the 3136 vector
//            bytes (about the size of quiver's FlatBuffer record), in a
//            column family with the options quiver gives its vectors
//            (no compression, 64 MiB write buffer, IncreaseParallelism(2))
// Timed: the writes only (Open and Close excluded). sync = true cases with
// single puts write --sync-puts vectors (default 2000) since each fsyncs.
//
// Usage: ingest_bench [--data DIR] [--out PREFIX] [--dir DIR] [--repeats N]
//                     [--sync-puts N]
// Writes PREFIX.csv and PREFIX.json (default bench/results/ingest_fashion_mnist).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "quiver/db.h"
#include "quiver/options.h"
#include "quiver/write_batch.h"
#include "tools/datasets.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const std::string& what, const std::string& why) {
  std::fprintf(stderr, "ingest_bench: %s: %s\n", what.c_str(), why.c_str());
  std::exit(1);
}

constexpr size_t kHeaderBytes = 36;

struct Args {
  std::string data = quiver::tools::kFashionMnistDir;
  std::string out = "bench/results/ingest_fashion_mnist";
  std::string dir = "/tmp/quiver_ingest_bench";
  int repeats = 2;
  size_t sync_puts = 2000;
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(f, "needs a value");
      return argv[++i];
    };
    if (f == "--data") a.data = next();
    else if (f == "--out") a.out = next();
    else if (f == "--dir") a.dir = next();
    else if (f == "--repeats") a.repeats = std::stoi(next());
    else if (f == "--sync-puts") a.sync_puts = std::stoul(next());
    else Die(f, "unknown flag");
  }
  return a;
}

struct Case {
  std::string system;   // quiver | rocksdb
  std::string mode;     // batch | put
  bool sync = false;
  size_t vectors = 0;
  size_t batch = 1;     // vectors per write
  bool train = false;   // quiver: default ivf_train_threshold
};

struct Result {
  Case c;
  double seconds = 0;          // best run, writes only
  double vectors_per_s = 0;
  double mb_per_s = 0;         // vector payload (4 * d bytes per vector)
  // quiver only
  uint64_t trainings = 0;
  double training_seconds = 0;
  uint32_t partitions = 0;
  uint64_t epoch = 0;
};

std::string EncodeKey(uint64_t v) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return key;
}

std::string EncodeValue(uint64_t id, const float* vec, size_t d) {
  std::string v(kHeaderBytes + d * sizeof(float), '\0');
  const uint16_t version = 1;
  const uint32_t dim = static_cast<uint32_t>(d);
  std::memcpy(&v[0], &version, sizeof(version));
  std::memcpy(&v[8], &id, sizeof(id));
  std::memcpy(&v[16], &dim, sizeof(dim));
  std::memcpy(&v[kHeaderBytes], vec, d * sizeof(float));
  return v;
}

Result RunQuiver(const Case& c, const quiver::tools::Matrix& m, const std::string& path) {
  std::filesystem::remove_all(path);
  quiver::Options opt;
  opt.dim = static_cast<uint32_t>(m.d);
  opt.device = quiver::Device::kCpu;
  if (!c.train) opt.ivf_train_threshold = UINT32_MAX;
  std::unique_ptr<quiver::DB> db;
  quiver::Status s = quiver::DB::Open(opt, path, &db);
  if (!s.ok()) Die("opening " + path, s.ToString());
  quiver::WriteOptions wo;
  wo.sync = c.sync;
  const auto t0 = Clock::now();
  if (c.mode == "batch") {
    quiver::WriteBatch batch;
    for (size_t i = 0; i < c.vectors; ++i) {
      batch.Put(i, std::span<const float>(m.row(i), m.d));
      if (batch.Count() == c.batch || i + 1 == c.vectors) {
        s = db->Write(wo, &batch);
        if (!s.ok()) Die("quiver Write", s.ToString());
        batch.Clear();
      }
    }
  } else {
    for (size_t i = 0; i < c.vectors; ++i) {
      s = db->Put(wo, i, std::span<const float>(m.row(i), m.d));
      if (!s.ok()) Die("quiver Put", s.ToString());
    }
  }
  Result r;
  r.c = c;
  r.seconds = Seconds(t0, Clock::now());
  const quiver::Stats st = db->GetStats();
  if (st.num_vectors != c.vectors) Die("quiver", "vector count mismatch after ingest");
  r.trainings = st.trainings;
  r.training_seconds = st.training_seconds;
  r.partitions = st.num_partitions;
  r.epoch = st.epoch;
  s = db->Close();
  if (!s.ok()) Die("quiver Close", s.ToString());
  db.reset();
  std::filesystem::remove_all(path);
  return r;
}

Result RunRocks(const Case& c, const quiver::tools::Matrix& m, const std::string& path) {
  std::filesystem::remove_all(path);
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.paranoid_checks = true;
  dbo.IncreaseParallelism(2);
  rocksdb::ColumnFamilyOptions vec_cf;
  vec_cf.compression = rocksdb::kNoCompression;
  vec_cf.write_buffer_size = 64 << 20;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"vectors", vec_cf}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(dbo, path, cfs, &handles, &raw);
  if (!s.ok()) Die("rocksdb open " + path, s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* cf = handles[1];
  rocksdb::WriteOptions wo;
  wo.sync = c.sync;
  const auto t0 = Clock::now();
  if (c.mode == "batch") {
    rocksdb::WriteBatch batch;
    for (size_t i = 0; i < c.vectors; ++i) {
      // Encoding is inside the timed loop, as quiver encodes its records.
      batch.Put(cf, EncodeKey(i), EncodeValue(i, m.row(i), m.d));
      if (static_cast<size_t>(batch.Count()) == c.batch || i + 1 == c.vectors) {
        s = db->Write(wo, &batch);
        if (!s.ok()) Die("rocksdb Write", s.ToString());
        batch.Clear();
      }
    }
  } else {
    for (size_t i = 0; i < c.vectors; ++i) {
      s = db->Put(wo, cf, EncodeKey(i), EncodeValue(i, m.row(i), m.d));
      if (!s.ok()) Die("rocksdb Put", s.ToString());
    }
  }
  Result r;
  r.c = c;
  r.seconds = Seconds(t0, Clock::now());
  (void)db->FlushWAL(true);
  for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  (void)db->Close();
  db.reset();
  std::filesystem::remove_all(path);
  return r;
}

std::string Json(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
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

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  quiver::tools::Matrix train, test;
  quiver::Status st = quiver::tools::LoadFashionMnist(args.data, &train, &test);
  if (!st.ok()) Die("loading Fashion-MNIST from " + args.data, st.ToString());
  const size_t n = train.n;
  const size_t sync_puts = std::min(args.sync_puts, n);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("data: %zu vectors x %zu dims; writes to %s\n", n, train.d, args.dir.c_str());

  std::vector<Case> cases;
  for (const char* sys : {"quiver", "rocksdb"}) {
    cases.push_back({sys, "batch", false, n, 1000, false});
    cases.push_back({sys, "batch", true, n, 1000, false});
    cases.push_back({sys, "put", false, n, 1, false});
    cases.push_back({sys, "put", true, sync_puts, 1, false});
  }
  cases.push_back({"quiver", "batch", false, n, 1000, true});
  cases.push_back({"quiver", "batch", true, n, 1000, true});
  // Interleave quiver and rocksdb of the same shape.
  std::stable_sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) {
    auto key = [](const Case& c) { return (c.mode == "batch" ? 0 : 2) + (c.sync ? 1 : 0); };
    return key(a) < key(b);
  });

  std::vector<Result> results;
  for (const Case& c : cases) {
    Result best;
    best.seconds = 1e30;
    for (int r = 0; r < std::max(1, args.repeats); ++r) {
      Result x = c.system == "quiver" ? RunQuiver(c, train, args.dir)
                                      : RunRocks(c, train, args.dir);
      if (x.seconds < best.seconds) best = x;
    }
    best.vectors_per_s = c.vectors / best.seconds;
    best.mb_per_s = c.vectors * train.d * sizeof(float) / best.seconds / 1e6;
    results.push_back(best);
    std::printf("%-8s %-5s sync=%-5s batch %5zu  %6zu vectors  %8.3f s  %10.0f vec/s  %8.1f MB/s",
                c.system.c_str(), c.mode.c_str(), c.sync ? "true" : "false", c.batch, c.vectors,
                best.seconds, best.vectors_per_s, best.mb_per_s);
    if (c.system == "quiver") {
      std::printf("  [%s: %llu trainings, %.3f s, %u partitions]",
                  c.train ? "train@8192" : "no-train",
                  static_cast<unsigned long long>(best.trainings), best.training_seconds,
                  best.partitions);
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  std::filesystem::create_directories(std::filesystem::path(args.out).parent_path());
  {
    std::ofstream csv(args.out + ".csv");
    csv << "system,mode,sync,batch,train_threshold,vectors,seconds,vectors_per_s,mb_per_s,"
           "trainings,training_seconds,partitions\n";
    for (const auto& r : results) {
      csv << r.c.system << ',' << r.c.mode << ',' << (r.c.sync ? "true" : "false") << ','
          << r.c.batch << ','
          << (r.c.system == "rocksdb" ? "" : (r.c.train ? "8192" : "none")) << ','
          << r.c.vectors << ',' << Json(r.seconds) << ',' << Json(r.vectors_per_s) << ','
          << Json(r.mb_per_s) << ',' << r.trainings << ',' << Json(r.training_seconds) << ','
          << r.partitions << '\n';
    }
  }
  {
    std::ofstream js(args.out + ".json");
    js << "{\n  \"benchmark\": \"ingest_bench\",\n  \"dataset\": \"fashion-mnist train\",\n"
       << "  \"dim\": " << train.d << ", \"vector_bytes\": " << train.d * sizeof(float)
       << ", \"rocksdb_value_bytes\": " << kHeaderBytes + train.d * sizeof(float) << ",\n"
       << "  \"machine\": {\"cpu\": \"" << CpuModel() << "\", \"hw_threads\": "
       << std::thread::hardware_concurrency() << ", \"filesystem\": \"ext4 on virtio disk\"},\n"
       << "  \"repeats\": " << args.repeats << ",\n  \"results\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      js << "    {\"system\": \"" << r.c.system << "\", \"mode\": \"" << r.c.mode
         << "\", \"sync\": " << (r.c.sync ? "true" : "false") << ", \"batch\": " << r.c.batch
         << ", \"train_threshold\": "
         << (r.c.system == "rocksdb" ? "null" : (r.c.train ? "8192" : "null"))
         << ", \"vectors\": " << r.c.vectors << ", \"seconds\": " << Json(r.seconds)
         << ", \"vectors_per_s\": " << Json(r.vectors_per_s)
         << ", \"mb_per_s\": " << Json(r.mb_per_s) << ", \"trainings\": " << r.trainings
         << ", \"training_seconds\": " << Json(r.training_seconds)
         << ", \"partitions\": " << r.partitions << "}"
         << (i + 1 < results.size() ? ",\n" : "\n");
    }
    js << "  ]\n}\n";
  }
  std::printf("wrote %s.csv and %s.json\n", args.out.c_str(), args.out.c_str());
  return 0;
}
