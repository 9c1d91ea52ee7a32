// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// A one-line progress bar on stderr: label, bar, count, rate, ETA.
//
//   ProgressBar bar("import", total, "vec");
//   for (...) bar.Update(done);
//   bar.Finish();
//
// On a terminal the line is redrawn in place (at most 10 times a second);
// otherwise (a log, CI) a line is printed every 10% so logs stay short.

#ifndef QUIVER_TOOLS_PROGRESS_H_
#define QUIVER_TOOLS_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "quiver/db.h"

namespace quiver::tools {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total, std::string unit);
  ~ProgressBar();

  void Update(uint64_t done);
  // Redraws at 100% with the total time and ends the line.
  void Finish();
  // Ends the line where the count stands (work that ends before its total,
  // such as a wait that ends early).
  void Stop();

 private:
  void Draw(uint64_t done, bool final);

  std::string label_;
  uint64_t total_;
  std::string unit_;
  bool tty_;
  bool finished_ = false;
  uint64_t done_ = 0;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Runs db->Reindex(options) with one progress bar per phase (gather,
// kmeans, assign, persist; on a secondary instance handover instead of
// assign).
Status ReindexWithProgress(DB* db, const ReindexOptions& options);

}  // namespace quiver::tools

#endif  // QUIVER_TOOLS_PROGRESS_H_
