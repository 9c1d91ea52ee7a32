// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// AckedModel: what a DB acknowledged while faults fired, and what its failed
// writes may have left behind, checked against the DB after a reopen.
//
// Per id the model keeps the acknowledged state (absent, or a version of its
// value) and the states that writes failing since then may have left: a
// write that returned an error may or may not have reached the WAL, so after
// a reopen either outcome is correct. A later acknowledged write settles
// the id again (it is ordered after the failed one). A failed batch is
// atomic: each of its ids may show the batch's final state for it.
//
// Each put writes a fresh version: its vector is ValueOf(id, version) and its
// payload names id and version, so a Get tells exactly which write it sees.

#ifndef QUIVER_TESTS_FAULT_ACKED_MODEL_H_
#define QUIVER_TESTS_FAULT_ACKED_MODEL_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "crash/crash_vectors.h"
#include "quiver/db.h"
#include "quiver/write_batch.h"

namespace quiver::test {

class AckedModel {
 public:
  static constexpr uint64_t kAbsent = 0;  // the version of "no vector"
  static constexpr size_t kDim = kCrashDim;

  static std::vector<float> ValueOf(uint64_t id, uint64_t version) {
    return CrashVector(id * 1000003 + version);
  }
  static std::string PayloadOf(uint64_t id, uint64_t version) {
    return std::to_string(id) + "/" + std::to_string(version);
  }

  // A fresh version for the next put.
  uint64_t NextVersion() { return ++last_version_; }

  // The acknowledged version of `id` (kAbsent when none).
  uint64_t Acked(uint64_t id) const {
    auto it = ids_.find(id);
    return it == ids_.end() ? kAbsent : it->second.acked;
  }

  // One write: (id, version) pairs in order, kAbsent for a delete.
  using Write = std::vector<std::pair<uint64_t, uint64_t>>;

  void Acknowledged(const Write& w) {
    for (const auto& [id, version] : Final(w)) {
      IdState& st = ids_[id];
      st.acked = version;
      st.doubt.clear();
    }
    ++acked_writes_;
  }
  void Failed(const Write& w) {
    for (const auto& [id, version] : Final(w)) ids_[id].doubt.insert(version);
    ++failed_writes_;
  }

  uint64_t acked_writes() const { return acked_writes_; }
  uint64_t failed_writes() const { return failed_writes_; }

  // Checks the live DB's Get of `id` during a run: a write that failed is
  // never visible, so an OK Get must show the acknowledged version and
  // NotFound must match an acknowledged absence. Any other Status (an
  // injected read fault) is accepted. Returns false on a mismatch.
  ::testing::AssertionResult CheckLiveGet(DB* db, uint64_t id) const {
    std::vector<float> vec;
    std::string payload;
    Status s = db->Get(ReadOptions(), id, &vec, &payload);
    const uint64_t acked = Acked(id);
    if (s.ok()) {
      if (acked != kAbsent && payload == PayloadOf(id, acked) && vec == ValueOf(id, acked)) {
        return ::testing::AssertionSuccess();
      }
      return ::testing::AssertionFailure() << "live Get of id " << id << " shows " << payload
                                           << ", acknowledged version " << acked;
    }
    if (s.IsNotFound() && acked != kAbsent) {
      return ::testing::AssertionFailure()
             << "live Get of id " << id << ": NotFound, acknowledged version " << acked;
    }
    return ::testing::AssertionSuccess();
  }

  // Checks the live DB's serving index for `id` during a run: an exact
  // search finds its acknowledged vector under `id`, and no vector a failed
  // write of `id` would have put there.
  ::testing::AssertionResult CheckLiveSearch(DB* db, uint64_t id) const {
    auto it = ids_.find(id);
    if (it == ids_.end()) return ::testing::AssertionSuccess();
    const IdState& st = it->second;
    SearchOptions so;
    so.k = 1;
    so.exact = true;
    std::vector<Neighbor> hits;
    if (st.acked != kAbsent) {
      Status s = db->Search(so, ValueOf(id, st.acked), &hits);
      if (!s.ok() || hits.empty() || hits[0].id != id) {
        return ::testing::AssertionFailure() << "live search misses id " << id << " version "
                                             << st.acked << ": " << s.ToString();
      }
    }
    for (uint64_t v : st.doubt) {
      if (v == kAbsent || v == st.acked) continue;
      const std::vector<float> vec = ValueOf(id, v);
      Status s = db->Search(so, vec, &hits);
      if (!s.ok()) return ::testing::AssertionFailure() << s.ToString();
      if (!hits.empty() && hits[0].id == id && hits[0].distance <= Tolerance(vec.data())) {
        return ::testing::AssertionFailure()
               << "live search finds version " << v << " of id " << id
               << ", whose write failed";
      }
    }
    return ::testing::AssertionSuccess();
  }

  // Checks a live DB's serving index against the model when no write is in
  // doubt: it holds exactly the acknowledged vectors (an open that
  // succeeded under faults must not have lost any).
  ::testing::AssertionResult CheckLiveIndex(DB* db) const {
    uint64_t present = 0;
    for (const auto& [id, st] : ids_) {
      if (!st.doubt.empty()) return ::testing::AssertionSuccess();
      if (st.acked == kAbsent) continue;
      ++present;
      ::testing::AssertionResult r = CheckLiveSearch(db, id);
      if (!r) return r;
    }
    const uint64_t live = db->GetStats().num_vectors;
    if (live != present) {
      return ::testing::AssertionFailure() << "the index holds " << live << " vectors, "
                                           << present << " acknowledged";
    }
    return ::testing::AssertionSuccess();
  }

  // Checks the DB (reopened without faults) against the model: every id
  // shows its acknowledged state or one a failed write may have left; every
  // present vector is found by an exact search at distance 0; the DB holds
  // nothing else. Then settles each id to what the DB shows. Returns the
  // number of ids whose acknowledged state was verified.
  uint64_t Verify(DB* db, const std::string& context) {
    uint64_t verified = 0, present = 0;
    std::vector<uint64_t> present_ids;
    std::vector<float> queries;
    for (auto& [id, st] : ids_) {
      std::vector<float> vec;
      std::string payload;
      Status s = db->Get(ReadOptions(), id, &vec, &payload);
      uint64_t seen = kAbsent;
      if (s.ok()) {
        const size_t slash = payload.find('/');
        seen = slash == std::string::npos ? ~0ull : std::stoull(payload.substr(slash + 1));
        EXPECT_EQ(payload, PayloadOf(id, seen)) << context;
        EXPECT_EQ(vec, ValueOf(id, seen)) << context << " id " << id;
        present_ids.push_back(id);
        queries.insert(queries.end(), vec.begin(), vec.end());
        ++present;
      } else {
        EXPECT_TRUE(s.IsNotFound()) << context << " id " << id << ": " << s.ToString();
        if (!s.IsNotFound()) continue;
      }
      if (seen == st.acked) {
        ++verified;
      } else {
        EXPECT_TRUE(st.doubt.count(seen) != 0)
            << context << " id " << id << " shows version " << seen << ", acknowledged "
            << st.acked << (st.acked == kAbsent ? " (absent: a deleted vector is back)" : "")
            << " and no failed write left it";
      }
      st.acked = seen;
      st.doubt.clear();
    }
    EXPECT_EQ(db->GetStats().num_vectors, present) << context << ": the DB holds other vectors";
    if (!present_ids.empty()) {
      std::vector<std::vector<Neighbor>> hits;
      SearchOptions so;
      so.k = 4;
      so.exact = true;
      Status s = db->SearchBatch(so, queries, present_ids.size(), &hits);
      EXPECT_TRUE(s.ok()) << context << ": " << s.ToString();
      for (size_t i = 0; s.ok() && i < present_ids.size(); ++i) {
        bool found = false;
        const float tolerance = Tolerance(&queries[i * kDim]);
        for (const Neighbor& n : hits[i]) {
          found |= n.id == present_ids[i] && n.distance <= tolerance;
        }
        EXPECT_TRUE(found) << context << ": exact search misses id " << present_ids[i]
                           << " (first hit id " << (hits[i].empty() ? 0 : hits[i][0].id)
                           << " at " << (hits[i].empty() ? -1.f : hits[i][0].distance) << ")";
      }
    }
    return verified;
  }

 private:
  struct IdState {
    uint64_t acked = kAbsent;
    std::set<uint64_t> doubt;  // states failed writes since the ack may have left
  };

  // Exact search computes |q|^2 + |x|^2 - 2 q.x in float: a vector's
  // distance to itself is 0 up to rounding relative to its squared norm.
  static float Tolerance(const float* vec) {
    float norm = 0;
    for (size_t j = 0; j < kDim; ++j) norm += vec[j] * vec[j];
    return 1e-5f * norm + 1e-3f;
  }

  // The last state a write gives each id it touches.
  static std::map<uint64_t, uint64_t> Final(const Write& w) {
    std::map<uint64_t, uint64_t> final_state;
    for (const auto& [id, version] : w) final_state[id] = version;
    return final_state;
  }

  std::map<uint64_t, IdState> ids_;
  uint64_t last_version_ = 0;
  uint64_t acked_writes_ = 0;
  uint64_t failed_writes_ = 0;
};

}  // namespace quiver::test

#endif  // QUIVER_TESTS_FAULT_ACKED_MODEL_H_
