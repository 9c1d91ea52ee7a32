// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Runbooks in the big-ann-benchmarks NeurIPS'23 streaming format:
//
//   fashion-mnist-drift:        # the dataset name: one top-level key
//     max_pts: 60000            # rows of the data file
//     1:                        # steps numbered from 1, run in order
//       operation: "insert"     # insert rows [start, end) under ids start..end-1
//       start: 0
//       end: 2000
//     2:
//       operation: "search"     # the query set, k nearest over the live ids
//     3:
//       operation: "delete"     # delete ids [start, end)
//       start: 0
//       end: 600
//     4:
//       operation: "replace"    # ids [tags_start, tags_end) take the vectors
//       tags_start: 0           # of rows [ids_start, ids_end)
//       tags_end: 100
//       ids_start: 5000
//       ids_end: 5100
//
// Numbering stops at the first missing number; other keys (max_pts, gt_url)
// are not steps. Ranges are half-open, 0 <= start <= end <= max_pts.

#ifndef QUIVER_BENCH_STREAMING_RUNBOOK_H_
#define QUIVER_BENCH_STREAMING_RUNBOOK_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quiver/status.h"

namespace quiver::bench {

enum class StepOp { kInsert, kDelete, kSearch, kReplace };

std::string_view StepOpName(StepOp op);

struct RunbookStep {
  int number = 0;  // as numbered in the YAML (1-based)
  StepOp op = StepOp::kSearch;
  // insert / delete: [start, end). replace: [tags_start, tags_end) take the
  // vectors of rows [ids_start, ids_end).
  uint64_t start = 0, end = 0;
  uint64_t tags_start = 0, tags_end = 0;
  uint64_t ids_start = 0, ids_end = 0;
};

struct Runbook {
  std::string dataset;  // the top-level key
  uint64_t max_pts = 0;
  std::vector<RunbookStep> steps;
};

// Reads the runbook of `dataset` from the YAML file at `path`; an empty
// `dataset` takes the file's only top-level key. InvalidArgument for a file
// that is not a runbook (unknown operation, missing or out-of-range bounds,
// a replace whose two ranges differ in length), IOError when unreadable.
Status LoadRunbook(const std::string& path, const std::string& dataset, Runbook* out);

}  // namespace quiver::bench

#endif  // QUIVER_BENCH_STREAMING_RUNBOOK_H_
