// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The child of the kill -9 test: writes vectors (and deletes) to a DB and
// prints one line per acknowledged write ("put ID" / "del ID") to stdout,
// flushed, so that the parent knows exactly what was acknowledged before
// it kills this process.
//
//   crash_writer DB START COUNT SYNC(0|1)

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "crash/crash_vectors.h"
#include "quiver/db.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: crash_writer DB START COUNT SYNC\n");
    return 2;
  }
  const uint64_t start = std::strtoull(argv[2], nullptr, 10);
  const uint64_t count = std::strtoull(argv[3], nullptr, 10);
  quiver::Options o;
  o.dim = quiver::test::kCrashDim;
  o.device = quiver::Device::kCpu;
  o.ivf_train_threshold = 300;  // trainings happen while we are killed
  o.target_partition_size = 32;
  o.kmeans_iterations = 3;
  std::unique_ptr<quiver::DB> db;
  quiver::Status s = quiver::DB::Open(o, argv[1], &db);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const quiver::WriteOptions wo{.sync = argv[4][0] == '1'};
  for (uint64_t id = start; id < start + count; ++id) {
    s = db->Put(wo, id, quiver::test::CrashVector(id));
    if (!s.ok()) return 1;
    std::printf("put %llu\n", (unsigned long long)id);
    std::fflush(stdout);
    // Every third write, delete the vector written two writes ago.
    if (id % 3 == 2 && id >= start + 2) {
      s = db->Delete(wo, id - 2);
      if (!s.ok()) return 1;
      std::printf("del %llu\n", (unsigned long long)(id - 2));
      std::fflush(stdout);
    }
  }
  return 0;
}
