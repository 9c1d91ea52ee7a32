// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Online re-clustering of a DB that another process holds open for
// writing. The secondary instance (the requester) catches up with the
// writer, runs the k-means over that snapshot and hands the centroids over
// through storage/handover.h; the writer (the holder) applies them as a
// global re-clustering whose k-means is already done: it assigns every
// live vector, replays the writes made meanwhile and commits the epoch in
// one synced write. The protocol's crash cases are listed in handover.h.

#include <chrono>
#include <cmath>
#include <thread>

#include "engine/db_impl.h"
#include "storage/handover.h"

namespace quiver {

Status DBImpl::TryCatchUpWithPrimary() {
  std::shared_lock close_lock(close_mu_);
  if (closed_) return Status::InvalidArgument("the DB is closed");
  if (!store_->secondary()) {
    return Status::NotSupported("TryCatchUpWithPrimary needs a secondary instance");
  }
  return CatchUp();
}

Status DBImpl::CatchUp() {
  Status s = store_->TryCatchUpWithPrimary();
  if (!s.ok()) return s;
  std::lock_guard lock(write_mu_);
  return Recover();
}

Status DBImpl::ReindexOnSecondary(const ReindexOptions& options, const ReclusterPlan& plan) {
  if (!(options.handover_timeout_seconds >= 0)) {
    return Status::InvalidArgument("handover_timeout_seconds must be >= 0");
  }
  const std::string& path = store_->path();
  Status s = CatchUp();
  if (!s.ok()) return s;

  storage::IndexRecord rec;
  s = RunBounded(plan.max_threads, [&] {
    std::lock_guard global(global_mu_);
    std::vector<uint64_t> ids;
    std::vector<float> vectors, warm;
    {
      std::lock_guard lock(write_mu_);
      index_.CollectLive(&ids, &vectors);
      rec.epoch = index_.Current()->epoch;
      warm = index_.Current()->centroids;
    }
    const size_t n = ids.size();
    if (plan.progress && !plan.progress({"gather", n, n})) {
      return Status::Aborted("reindex aborted");
    }
    if (n == 0) return Status::InvalidArgument("the DB holds no vectors to cluster");
    rec.dim = dim_;
    rec.metric = metric_;
    rec.trained_on = n;
    Status ts = TrainCentroids(plan, vectors, n, warm, rec.epoch, &rec.centroids);
    rec.num_centroids = static_cast<uint32_t>(rec.centroids.size() / dim_);
    return ts;
  });
  if (!s.ok()) return s;

  rec.handover_id = storage::handover::NewId();
  s = storage::handover::Publish(path, rec);
  if (!s.ok()) {
    storage::handover::Forget(path, rec.handover_id);
    return s;
  }

  // Published: from here on the request is the writer's to apply. Should
  // the writer close before it does, the DB is free: open it as its writer
  // here, which applies every pending hand-over (Open does), and close it.
  const auto start = std::chrono::steady_clock::now();
  auto last_try = start;
  const auto timeout = std::chrono::duration<double>(options.handover_timeout_seconds);
  const uint64_t total = static_cast<uint64_t>(std::ceil(options.handover_timeout_seconds));
  for (;;) {
    bool answered = false;
    uint64_t epoch = 0;
    s = storage::handover::ReadAnswer(path, rec.handover_id, &answered, &epoch);
    if (answered || !s.ok()) {
      storage::handover::Forget(path, rec.handover_id);
      if (!s.ok()) return s;
      if (plan.progress) (void)plan.progress({"persist", 1, 1});
      return CatchUp();  // this instance now serves the new epoch
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    const std::string pending = storage::handover::Dir(path) + " holds the request; the DB's " +
                                "writer applies it when its background maintenance runs, or "
                                "any writer when it next opens the DB";
    if (std::chrono::steady_clock::now() - last_try >= std::chrono::seconds(1)) {
      last_try = std::chrono::steady_clock::now();
      Options o;
      o.create_if_missing = false;
      o.accept_stored_metric = true;
      o.background_maintenance = false;
      o.device = plan.device;
      o.maintenance_threads = plan.max_threads;
      std::unique_ptr<DB> writer;
      Status ws = DB::Open(o, path, &writer);
      if (ws.ok()) ws = writer->Close();
      if (!ws.ok() && !ws.IsBusy()) return ws;
      continue;  // read the answer the writer (ours or the other) gave
    }
    if (waited >= timeout) {
      return Status::Busy("the DB's writer has not applied the new centroids within " +
                          std::to_string(options.handover_timeout_seconds) + " s; " + pending);
    }
    if (plan.progress &&
        !plan.progress({"handover",
                        static_cast<uint64_t>(std::chrono::duration<double>(waited).count()),
                        total})) {
      return Status::Aborted("stopped waiting; " + pending);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Status DBImpl::CheckHandedOver(const storage::IndexRecord& rec) const {
  if (rec.dim != dim_ || rec.metric != metric_) {
    return Status::InvalidArgument(
        "the centroids are " + std::to_string(rec.dim) + "-d " +
        std::string(MetricName(rec.metric)) + ", the DB holds " + std::to_string(dim_) + "-d " +
        std::string(MetricName(metric_)));
  }
  for (float c : rec.centroids) {
    if (!std::isfinite(c)) return Status::InvalidArgument("a centroid holds a NaN or infinity");
  }
  return Status::OK();
}

void DBImpl::ApplyHandovers() {
  const std::string& path = store_->path();
  std::vector<uint64_t> requests;
  if (!storage::handover::ListRequests(path, &requests).ok()) return;
  for (uint64_t id : requests) {
    if (stopping_.load()) return;
    uint64_t applied = 0, epoch = 0;
    {
      std::lock_guard lock(write_mu_);
      applied = handover_id_;
      epoch = index_.Current()->epoch;
    }
    if (id == applied) {
      // Committed before a crash; only the answer was missing.
      (void)storage::handover::Answer(path, id, Status::OK(), epoch);
      continue;
    }
    storage::IndexRecord rec;
    Status s = storage::handover::ReadRequest(path, id, &rec);
    if (s.ok()) s = CheckHandedOver(rec);
    if (s.ok()) {
      ReclusterPlan plan;
      plan.given = &rec;
      plan.max_threads = MaintenanceThreads();
      s = Recluster(plan);
      if (s.ok()) {
        std::lock_guard lock(write_mu_);
        epoch = index_.Current()->epoch;
      }
    }
    if (s.ok() || s.IsCorruption() || s.IsInvalidArgument()) {
      (void)storage::handover::Answer(path, id, s, epoch);
    }
    // Anything else (closing, an I/O error) leaves the request for the
    // next pass or the next open.
  }
}

}  // namespace quiver
