// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Acknowledged writes survive kill -9: a child process (crash_writer)
// writes and reports each acknowledged write; we SIGKILL it at a random
// moment, reopen the DB and check that every acknowledged put is there
// with its value, every acknowledged delete stays deleted, and each
// surviving vector is found by search.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <optional>
#include <random>

#include "crash/crash_vectors.h"
#include "quiver/db.h"
#include "test_util.h"

namespace quiver {
namespace {

// Runs crash_writer on `path` and kills it once it has acknowledged
// `kill_after` writes. Records the acknowledged state in *acked (lines still
// in the pipe after the kill were acknowledged too), and in *in_doubt the id
// a write in flight at the kill may have deleted.
void RunAndKill(const std::string& path, uint64_t start, uint64_t count, bool sync,
                size_t kill_after, std::map<uint64_t, bool>* acked,
                std::optional<uint64_t>* in_doubt) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    const std::string s = std::to_string(start), c = std::to_string(count);
    execl(QUIVER_CRASH_WRITER, QUIVER_CRASH_WRITER, path.c_str(), s.c_str(), c.c_str(),
          sync ? "1" : "0", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  FILE* in = fdopen(fds[0], "r");
  char op[8];
  unsigned long long id;
  size_t lines = 0;
  std::string last_op;
  uint64_t last_id = 0;
  auto record = [&] {
    last_op = op;
    last_id = id;
    (*acked)[id] = last_op == "put";
    ++lines;
  };
  while (lines < kill_after && std::fscanf(in, "%7s %llu", op, &id) == 2) record();
  kill(pid, SIGKILL);
  while (std::fscanf(in, "%7s %llu", op, &id) == 2) record();
  std::fclose(in);
  // The writer's next operation after "put N" with N % 3 == 2 deletes N - 2.
  in_doubt->reset();
  if (last_op == "put" && last_id % 3 == 2 && last_id >= start + 2) *in_doubt = last_id - 2;
  int status = 0;
  waitpid(pid, &status, 0);
}

TEST(Kill9Test, AcknowledgedWritesSurvive) {
  test::TempDir dir;
  const std::string path = dir.Sub("db");
  std::map<uint64_t, bool> acked;  // id -> present
  std::mt19937 rng(42);
  uint64_t next = 0;
  for (int cycle = 0; cycle < 6; ++cycle) {
    const bool sync = cycle % 2 == 1;
    const size_t kill_after = 50 + rng() % 250;
    std::optional<uint64_t> in_doubt;
    RunAndKill(path, next, 100000, sync, kill_after, &acked, &in_doubt);
    // The child may have run ahead of kill_after before the kill landed:
    // start the next cycle past every id it touched, so that an in-flight
    // put never lands on an id we track.
    next = acked.rbegin()->first + 3;

    Options o;
    o.dim = 0;
    o.device = Device::kCpu;
    o.create_if_missing = false;
    std::unique_ptr<DB> db;
    Status s = DB::Open(o, path, &db);
    ASSERT_TRUE(s.ok()) << "cycle " << cycle << ": " << s.ToString();
    size_t present = 0;
    for (auto& [id, live] : acked) {
      std::vector<float> v;
      if (in_doubt == id) {
        live = db->Get(ReadOptions(), id, &v).ok();  // either outcome is correct
        continue;
      }
      s = db->Get(ReadOptions(), id, &v);
      if (live) {
        ASSERT_TRUE(s.ok()) << "cycle " << cycle << " id " << id << ": " << s.ToString();
        EXPECT_EQ(v, test::CrashVector(id));
        std::vector<Neighbor> hits;
        ASSERT_TRUE(db->Search(SearchOptions{.k = 1, .exact = true}, v, &hits).ok());
        ASSERT_FALSE(hits.empty());
        EXPECT_EQ(hits[0].distance, 0.0f);
        ++present;
      } else {
        EXPECT_TRUE(s.IsNotFound()) << "cycle " << cycle << " deleted id " << id << " is back";
      }
    }
    EXPECT_GE(db->GetStats().num_vectors, present);
  }
}

}  // namespace
}  // namespace quiver
