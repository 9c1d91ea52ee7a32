// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A crash_writer child process and the model of what it acknowledged: the
// crash test SIGKILLs it mid-write; the online reindex test keeps it writing
// while another process re-clusters the DB. VerifyAcknowledged() then
// checks a reopened DB against the model.

#ifndef QUIVER_TESTS_CRASH_WRITER_PROCESS_H_
#define QUIVER_TESTS_CRASH_WRITER_PROCESS_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "crash/crash_vectors.h"
#include "quiver/db.h"

namespace quiver::test {

// One operation of a write: a put of CrashVector(id, stamp), or a delete.
struct CrashOp {
  bool put;
  uint64_t id;
  uint64_t stamp;
};

// What the DB must hold: id -> the stamp of its live vector, or nullopt
// once deleted. Ids never written are absent.
using CrashModel = std::map<uint64_t, std::optional<uint64_t>>;

inline void ApplyOps(const std::vector<CrashOp>& ops, CrashModel* model) {
  for (const CrashOp& op : ops) {
    (*model)[op.id] = op.put ? std::optional<uint64_t>(op.stamp) : std::nullopt;
  }
}

struct WriterArgs {
  uint64_t seed = 1;
  bool sync = false;
  uint64_t ops = 0;      // writes before a clean exit; 0: until killed
  int reindex_ms = 0;    // period of the writer's Reindex thread; 0: none
  uint64_t ids = 4096;   // id space
  bool hold = false;     // after `ops` writes, keep the DB open until killed
};

class WriterProcess {
 public:
  WriterProcess(const std::string& path, const WriterArgs& args, CrashModel* model)
      : model_(model) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      const std::string seed = std::to_string(args.seed), ops = std::to_string(args.ops),
                        every = std::to_string(args.reindex_ms), ids = std::to_string(args.ids);
      execl(QUIVER_CRASH_WRITER, QUIVER_CRASH_WRITER, path.c_str(), seed.c_str(),
            args.sync ? "1" : "0", ops.c_str(), every.c_str(), ids.c_str(),
            args.hold ? "1" : "0", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~WriterProcess() { Kill(); }
  WriterProcess(const WriterProcess&) = delete;
  WriterProcess& operator=(const WriterProcess&) = delete;

  bool started() const { return pid_ > 0 && out_ != nullptr; }
  // Writes acknowledged so far.
  size_t acks() const { return acks_; }
  // Contradictions found while reading (a delete answered NotFound for an
  // id the model holds live: an acknowledged put was lost).
  const std::vector<std::string>& errors() const { return errors_; }

  // Reads up to the next acknowledgement and applies it to the model; false
  // once the writer's output ends (a write left without its
  // acknowledgement is in_doubt()) or it holds the DB idle (WriterArgs::hold).
  bool ReadAck() {
    char line[128];
    while (out_ != nullptr && std::fgets(line, sizeof(line), out_) != nullptr) {
      unsigned long long a = 0, b = 0;
      if (std::sscanf(line, "I %llu", &a) == 1) {
        pending_.clear();
        expected_ = a;
      } else if (std::sscanf(line, "P %llu %llu", &a, &b) == 2) {
        pending_.push_back({true, a, b});
      } else if (std::sscanf(line, "D %llu", &a) == 1) {
        pending_.push_back({false, a, 0});
      } else if (line[0] == 'A' && pending_.size() == expected_) {
        ApplyOps(pending_, model_);
        pending_.clear();
        ++acks_;
        return true;
      } else if (line[0] == 'H') {
        return false;
      } else if (line[0] == 'N' && pending_.size() == 1) {
        auto it = model_->find(pending_[0].id);
        if (it != model_->end() && it->second.has_value()) {
          errors_.push_back("delete of id " + std::to_string(pending_[0].id) +
                            " found nothing, but its put was acknowledged");
        }
        pending_.clear();
        ++acks_;
        return true;
      }
    }
    return false;
  }

  // SIGKILLs the writer (if it still runs); the lines still in the pipe
  // were acknowledged too. Returns the writer's exit status.
  int Kill() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGKILL);
    while (ReadAck()) {
    }
    if (out_ != nullptr) std::fclose(out_);
    out_ = nullptr;
    waitpid(pid_, &status_, 0);
    pid_ = -1;
    return status_;
  }

  // Waits for a writer started with a finite OPS to exit on its own.
  int Wait() {
    while (ReadAck()) {
    }
    return Kill();
  }

  // The write in flight when the output ended: applied entirely or not at
  // all (a batch is atomic); empty when none.
  const std::vector<CrashOp>& in_doubt() const { return pending_; }

 private:
  CrashModel* model_;
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  int status_ = 0;
  size_t acks_ = 0;
  size_t expected_ = 0;
  std::vector<CrashOp> pending_;
  std::vector<std::string> errors_;
};

// True when `db` holds id as the model says.
inline bool HoldsAsModel(DB* db, uint64_t id, const std::optional<uint64_t>& want) {
  std::vector<float> v;
  Status s = db->Get(ReadOptions(), id, &v);
  return want.has_value() ? s.ok() && v == CrashVector(id, *want) : s.IsNotFound();
}

// Checks a reopened `db` against what a writer acknowledged: the write in
// doubt is applied entirely or not at all (the model takes the outcome);
// then every id is as the model says (its latest acknowledged vector, or
// deleted), each live vector is its own nearest neighbour in a search with
// `search` options, and the DB holds nothing else.
inline void VerifyAcknowledged(DB* db, const std::vector<CrashOp>& in_doubt, CrashModel* model,
                               const SearchOptions& search, const std::string& context) {
  if (!in_doubt.empty()) {
    CrashModel applied = *model;
    ApplyOps(in_doubt, &applied);
    bool all = true, none = true;
    for (const CrashOp& op : in_doubt) {
      auto before = model->find(op.id);
      all &= HoldsAsModel(db, op.id, applied[op.id]);
      none &= HoldsAsModel(db, op.id, before == model->end() ? std::nullopt : before->second);
    }
    EXPECT_TRUE(all || none) << context << ": a write of " << in_doubt.size()
                             << " operations was applied in part";
    if (all) *model = std::move(applied);
  }
  uint64_t live = 0;
  for (const auto& [id, want] : *model) {
    std::vector<float> v;
    Status s = db->Get(ReadOptions(), id, &v);
    if (!want.has_value()) {
      EXPECT_TRUE(s.IsNotFound()) << context << ": deleted id " << id << " is back";
      continue;
    }
    ++live;
    ASSERT_TRUE(s.ok()) << context << ": acknowledged id " << id << ": " << s.ToString();
    ASSERT_EQ(v, CrashVector(id, *want)) << context << ": id " << id << " has another value";
    std::vector<Neighbor> hits;
    ASSERT_TRUE(db->Search(search, v, &hits).ok());
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(hits[0].distance, 0.0f) << context << ": id " << id << " is not found by search";
  }
  EXPECT_EQ(db->GetStats().num_vectors, live) << context;
}

}  // namespace quiver::test

#endif  // QUIVER_TESTS_CRASH_WRITER_PROCESS_H_
