// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "tools/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

namespace quiver::tools {
namespace {

std::string FormatSeconds(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%.1fs", s);
  } else {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", int(s) / 60, int(s) % 60);
  }
  return buf;
}

}  // namespace

ProgressBar::ProgressBar(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)),
      total_(std::max<uint64_t>(total, 1)),
      unit_(std::move(unit)),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {
  if (tty_) Draw(0, false);
}

ProgressBar::~ProgressBar() {
  // On a terminal the bar's line is open; in a log every line is ended.
  if (!finished_ && tty_) std::fputc('\n', stderr);
}

void ProgressBar::Update(uint64_t done) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    // Finish() prints the last line; the 0% line says nothing in a log.
    const int decile = static_cast<int>(10 * std::min(done, total_) / total_);
    if (decile == last_decile_ || decile == 0 || decile == 10) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  Draw(done, false);
}

void ProgressBar::Finish() {
  if (finished_) return;
  Draw(total_, true);
  finished_ = true;
}

void ProgressBar::Stop() {
  if (finished_) return;
  Draw(done_, true);
  finished_ = true;
}

void ProgressBar::Draw(uint64_t done, bool final) {
  done = std::min(done, total_);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = double(done) / double(total_);
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '#');
  bar.resize(kWidth, '.');
  // A rate over the first tenth of a second says nothing.
  const double rate = elapsed >= 0.1 ? done / elapsed : 0;
  std::string tail;
  if (final) {
    tail = "in " + FormatSeconds(elapsed);
  } else if (done > 0 && rate > 0) {
    tail = "ETA " + FormatSeconds((total_ - done) / rate);
  }
  const std::string rate_text =
      rate > 0 && total_ > 1 ? std::to_string(static_cast<uint64_t>(rate + 0.5)) + " " + unit_ + "/s  " : "";
  std::fprintf(stderr, "%s%-10s [%s] %3d%% %llu/%llu %s  %s%s%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), int(frac * 100), (unsigned long long)done,
               (unsigned long long)total_, unit_.c_str(), rate_text.c_str(), tail.c_str(),
               tty_ && !final ? "\033[K" : "\n");
  std::fflush(stderr);
}

Status ReindexWithProgress(DB* db, const ReindexOptions& options) {
  std::unique_ptr<ProgressBar> bar;
  std::string phase;
  Status s = db->Reindex(options, [&](const ReindexProgress& p) {
    if (p.phase != phase) {
      if (bar && phase == "handover") bar->Stop();  // answered before the timeout
      if (bar) bar->Finish();
      phase = p.phase;
      const char* unit = phase == "kmeans"     ? "iter"
                         : phase == "handover" ? "s"
                         : phase == "persist"  ? "epoch"
                                               : "vec";
      bar = std::make_unique<ProgressBar>(phase, p.total, unit);
    }
    bar->Update(p.done);
    return true;
  });
  if (bar) bar->Finish();
  return s;
}

}  // namespace quiver::tools
