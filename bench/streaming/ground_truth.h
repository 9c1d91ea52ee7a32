// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Exact k nearest neighbours (squared L2) by brute force over the live ids of
// a runbook, independent of quiver's own search code, and a cache of the
// answers of every search step so that several variants of one runbook
// compute them once.
//
//   std::vector<LiveVector> live = ...;   // (id, row of `data`) pairs
//   std::vector<uint64_t> gt;             // nq * k ids, closest first
//   ExactKnnL2(data, d, live, queries, nq, 10, 2, &gt);

#ifndef QUIVER_BENCH_STREAMING_GROUND_TRUTH_H_
#define QUIVER_BENCH_STREAMING_GROUND_TRUTH_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "quiver/status.h"

namespace quiver::bench {

// Pads an answer when fewer than k ids are live.
inline constexpr uint64_t kNoId = std::numeric_limits<uint64_t>::max();

struct LiveVector {
  uint64_t id;
  uint64_t row;  // row of the data matrix holding its vector
};

// Writes to *out (resized to nq * k) the k ids of `live` nearest to each of
// the nq queries (row-major, dimension d), closest first; ties go to the
// smaller id. Runs on `threads` threads (>= 1), blocked over queries and
// rows so that each row is read once per block of queries.
void ExactKnnL2(const float* data, size_t d, std::span<const LiveVector> live,
                const float* queries, size_t nq, size_t k, int threads,
                std::vector<uint64_t>* out);

// The answers of every search step of one runbook. File layout, all int64
// little-endian: magic, number of steps, nq, k, key; then per step its step
// number and nq * k ids (-1 for kNoId). `key` identifies the inputs (see
// GroundTruthKey); a file with another key is ignored.
struct GroundTruthCache {
  uint64_t key = 0;
  size_t nq = 0;
  size_t k = 0;
  std::vector<int> step_numbers;
  std::vector<std::vector<uint64_t>> answers;  // one per step, nq * k
};

// A hash of the runbook text, the sizes of the data and query files, the
// number of queries and k.
uint64_t GroundTruthKey(const std::string& runbook_path, const std::string& data_path,
                        const std::string& queries_path, size_t nq, size_t k);

// NotFound when `path` does not exist or holds another key.
Status LoadGroundTruth(const std::string& path, uint64_t key, GroundTruthCache* out);
Status SaveGroundTruth(const std::string& path, const GroundTruthCache& gt);

// Recall@k of one query: |result ∩ truth| / |truth|, where `truth` holds up
// to k ids (kNoId padding does not count).
double RecallAtK(std::span<const uint64_t> truth, std::span<const uint64_t> result);

}  // namespace quiver::bench

#endif  // QUIVER_BENCH_STREAMING_GROUND_TRUTH_H_
