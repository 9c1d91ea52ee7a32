// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Many readers and writers on one DB at once, through a training.

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "engine/db_impl.h"
#include "quiver/db.h"
#include "test_util.h"

namespace quiver {
namespace {

TEST(ConcurrencyTest, ReadersAndWritersShareOneDb) {
  test::TempDir dir;
  Options o;
  o.dim = 16;
  o.device = Device::kCpu;
  o.target_partition_size = 32;
  o.ivf_train_threshold = 500;  // trains while the writers run
  o.kmeans_iterations = 5;
  std::unique_ptr<DB> db;
  ASSERT_TRUE(DB::Open(o, dir.path(), &db).ok());

  constexpr int kWriters = 3, kReaders = 3, kPerWriter = 400;
  auto vec_of = [](uint64_t id) {
    std::vector<float> v(16);
    std::mt19937 rng(static_cast<uint32_t>(id));
    std::uniform_real_distribution<float> u(-1, 1);
    for (auto& x : v) x = u(rng);
    return v;
  };
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<uint64_t> searches{0};

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        const uint64_t id = uint64_t(w) * 100000 + i;
        if (!db->Put(WriteOptions(), id, vec_of(id)).ok()) ++errors;
        // Every fifth vector is deleted again, every seventh re-put.
        if (i % 5 == 4 && !db->Delete(WriteOptions(), id - 1).ok()) ++errors;
        if (i % 7 == 6 && !db->Put(WriteOptions(), id - 2, vec_of(id - 2)).ok()) ++errors;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937 rng(r);
      while (!stop.load()) {
        std::vector<float> q = vec_of(rng());
        std::vector<Neighbor> hits;
        if (!db->Search(SearchOptions{.k = 5, .nprobe = 4}, q, &hits).ok()) ++errors;
        for (size_t j = 1; j < hits.size(); ++j) {
          if (hits[j - 1].distance > hits[j].distance) ++errors;
        }
        std::vector<float> v;
        Status s = db->Get(ReadOptions(), rng() % 400, &v);
        if (!s.ok() && !s.IsNotFound()) ++errors;
        (void)db->GetStats();
        ++searches;
      }
    });
  }
  // Global re-clusterings run beside the writers and readers.
  std::thread reindexer([&] {
    for (int i = 0; i < 3; ++i) {
      Status s = db->Reindex(ReindexOptions{.iterations = 3});
      if (!s.ok()) ++errors;
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  reindexer.join();
  stop = true;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(errors.load(), 0);
  EXPECT_GT(searches.load(), 0u);
  static_cast<DBImpl*>(db.get())->TEST_WaitForMaintenance();
  Stats st = db->GetStats();
  EXPECT_GE(st.epoch, 1u);
  // Final state: exactly the puts that were not deleted afterwards.
  uint64_t expected = 0;
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kPerWriter; ++i) {
      // Deleted at step i + 1, unless re-put at step i + 2.
      const bool deleted = (i % 5 == 3) && (i + 1 < kPerWriter) &&
                           !((i % 7 == 4) && (i + 2 < kPerWriter));
      const uint64_t id = uint64_t(w) * 100000 + i;
      std::vector<float> v;
      Status s = db->Get(ReadOptions(), id, &v);
      EXPECT_EQ(s.ok(), !deleted) << id << " " << s.ToString();
      if (!deleted) {
        ++expected;
        std::vector<Neighbor> hits;
        ASSERT_TRUE(db->Search(SearchOptions{.k = 1, .exact = true}, v, &hits).ok());
        ASSERT_EQ(hits.size(), 1u);
        EXPECT_EQ(hits[0].id, id);
      }
    }
  }
  EXPECT_EQ(st.num_vectors, expected);
}

}  // namespace
}  // namespace quiver
