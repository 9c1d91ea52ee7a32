// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "engine/db_impl.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include "kernels/cpu/assign.h"
#include "kernels/cpu/distance.h"
#include "kernels/cuda/kmeans_cuda.h"
#include "kernels/cuda/kmeans_cuda_ex.h"
#include "quiver/kmeans.h"
#include "quiver/write_batch.h"
#include "storage/handover.h"
#include "storage/records.h"

namespace quiver {
namespace {

// A re-clustering replays logged writes off the lock while at least this
// many are waiting, for at most this many rounds.
constexpr size_t kCatchUpUnderLock = 256;
constexpr int kCatchUpRoundsOffLock = 4;

constexpr char kLibraryVersion[] = "quiver 0.1.0";
constexpr uint32_t kDefaultPartitionSize = 256;

Status ValidateOptions(const Options& o) {
  if (o.kmeans_iterations < 1) {
    return Status::InvalidArgument("kmeans_iterations must be >= 1");
  }
  if (static_cast<uint8_t>(o.metric) > static_cast<uint8_t>(Metric::kCosine)) {
    return Status::InvalidArgument("unknown metric");
  }
  // Devices are checked where there are GPUs to check them against; a
  // machine without one runs the CPU path and ignores the list.
  const int gpus =
      o.device == Device::kCpu || o.devices.empty() ? 0 : kernels::CudaDeviceCount();
  return kernels::CheckDeviceList(o.devices, gpus);
}

}  // namespace

Status DB::Open(const Options& options, const std::string& path,
                std::unique_ptr<DB>* db) {
  if (db == nullptr) return Status::InvalidArgument("DB::Open: db is null");
  db->reset();
  return DBImpl::OpenImpl(options, path, /*secondary_path=*/"", db);
}

Status DB::OpenAsSecondary(const Options& options, const std::string& path,
                           const std::string& secondary_path, std::unique_ptr<DB>* db) {
  if (db == nullptr) return Status::InvalidArgument("DB::OpenAsSecondary: db is null");
  db->reset();
  if (secondary_path.empty()) {
    return Status::InvalidArgument("a secondary instance needs a directory of its own");
  }
  return DBImpl::OpenImpl(options, path, secondary_path, db);
}

Status DBImpl::OpenImpl(const Options& options, const std::string& path,
                        const std::string& secondary_path, std::unique_ptr<DB>* db) {
  Status s = ValidateOptions(options);
  if (!s.ok()) return s;
  std::error_code ec;
  const bool exists = std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec);
  const bool read_only = options.read_only || !secondary_path.empty();
  if (!exists && options.dim == 0 && options.create_if_missing && !read_only) {
    return Status::InvalidArgument("creating a DB needs Options::dim >= 1");
  }

  storage::Store::OpenOptions so;
  so.create_if_missing = options.create_if_missing;
  so.error_if_exists = options.error_if_exists;
  so.read_only = options.read_only;
  so.secondary_path = secondary_path;
  std::unique_ptr<storage::Store> store;
  bool created = false;
  s = storage::Store::Open(so, path, &store, &created);
  if (!s.ok()) return s;

  storage::DbMeta meta;
  if (created) {
    meta.dim = options.dim;
    meta.metric = options.metric;
    meta.created_by = kLibraryVersion;
    meta.target_partition_size = options.target_partition_size;
    s = store->WriteMeta(meta);
    if (!s.ok()) return s;
  } else {
    s = store->ReadMeta(&meta);
    if (s.IsNotFound() && !store->read_only() && options.dim > 0) {
      // The creation crashed between creating RocksDB and writing the
      // metadata; nothing else can have been written yet.
      bool any = false;
      s = store->ForEachVector([&](uint64_t, std::string_view) {
        any = true;
        return Status::Aborted("stop");
      });
      if (any) return Status::Corruption(path + ": vectors without DB metadata");
      meta.dim = options.dim;
      meta.metric = options.metric;
      meta.created_by = kLibraryVersion;
      meta.target_partition_size = options.target_partition_size;
      s = store->WriteMeta(meta);
    }
    if (s.IsInvalidArgument()) return Status::InvalidArgument(path + ": " + std::string(s.message()));
    if (!s.ok()) return s;
    if (options.dim != 0 && options.dim != meta.dim) {
      return Status::InvalidArgument(
          path + " holds vectors of dimension " + std::to_string(meta.dim) +
          ", opened with dimension " + std::to_string(options.dim));
    }
    if (!options.accept_stored_metric && options.metric != meta.metric) {
      return Status::InvalidArgument(path + " was created with metric " +
                                     std::string(MetricName(meta.metric)) +
                                     ", opened with metric " +
                                     std::string(MetricName(options.metric)));
    }
  }

  // The partition size is the DB's own: stored at creation, replaced when
  // an open names another.
  Options effective = options;
  if (options.target_partition_size != 0 && !created && !store->read_only() &&
      options.target_partition_size != meta.target_partition_size) {
    meta.target_partition_size = options.target_partition_size;
    s = store->WriteMeta(meta);
    if (!s.ok()) return s;
  }
  if (effective.target_partition_size == 0) {
    effective.target_partition_size =
        meta.target_partition_size != 0 ? meta.target_partition_size : kDefaultPartitionSize;
  }
  std::unique_ptr<DBImpl> impl(
      new DBImpl(effective, std::move(store), meta.dim, meta.metric));
  s = impl->Recover();
  if (!s.ok()) return s;
  if (!read_only && options.device != Device::kCpu) impl->StartMirror();
  if (!read_only) {
    // A hand-over left by a crash (of this process or of the requester's
    // wait) is finished now, before anyone writes.
    impl->ApplyHandovers();
  }
  if (options.background_maintenance && !read_only) {
    DBImpl* raw = impl.get();
    impl->maintainer_ = std::thread([raw] { raw->MaintainerLoop(); });
  }
  *db = std::move(impl);
  return Status::OK();
}

DBImpl::DBImpl(const Options& options, std::unique_ptr<storage::Store> store,
               uint32_t dim, Metric metric)
    : options_(options),
      dim_(dim),
      metric_(metric),
      store_(std::move(store)),
      index_(dim, metric) {}

DBImpl::~DBImpl() { (void)Close(); }

Status DBImpl::Recover() {
  storage::IndexRecord rec;
  Status s = store_->LatestIndex(&rec);
  const bool trained = s.ok();
  if (!trained && !s.IsNotFound()) return s;
  if (trained && (rec.dim != dim_ || rec.metric != metric_)) {
    return Status::Corruption("index record of epoch " + std::to_string(rec.epoch) +
                              " does not match the DB's dimension or metric");
  }

  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  ids.reserve(store_->EstimateVectorCount());
  vectors.reserve(ids.capacity() * dim_);
  std::vector<float> raw(dim_);
  s = store_->ForEachVector([&](uint64_t id, std::string_view bytes) {
    storage::VectorRecordView view;
    Status ds = storage::DecodeVectorRecord(bytes, &view);
    if (!ds.ok()) {
      return Status::Corruption("vector " + std::to_string(id) + ": " +
                                std::string(ds.message()));
    }
    if (view.id != id || view.dim != dim_) {
      return Status::Corruption("vector " + std::to_string(id) +
                                ": record does not match its key or the DB's dimension");
    }
    view.CopyVector(raw.data());
    ids.push_back(id);
    vectors.resize(vectors.size() + dim_);
    index_.PrepareVector(raw.data(), &vectors[vectors.size() - dim_]);
    return Status::OK();
  });
  if (!s.ok()) return s;

  std::vector<uint32_t> assignments(ids.size());
  std::vector<float> distances(ids.size());
  if (trained && !ids.empty()) {
    kernels::AssignNearest(metric_, vectors.data(), ids.size(), rec.centroids.data(),
                           nullptr, rec.num_centroids, dim_, assignments.data(),
                           distances.data());
  }
  handover_id_ = trained ? rec.handover_id : 0;
  index_.Publish(index_.Build(trained ? rec.epoch : 0,
                              trained ? std::move(rec.centroids) : std::vector<float>(), ids,
                              vectors, assignments, distances));
  // Drift is measured against the epoch's training (records written before
  // it was stored: against the index as reopened).
  epoch_distortion_ = trained && rec.epoch_distortion > 0 ? rec.epoch_distortion
                      : ids.empty()                       ? 0.0
                                                          : index_.distortion_sum() / ids.size();
  return Status::OK();
}

void DBImpl::StartMirror() {
  mirror_ = DeviceMirror::Create(dim_, options_.devices);
  if (mirror_ == nullptr) return;
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  index_.CollectLive(&ids, &vectors);
  for (size_t i = 0; i < ids.size(); ++i) mirror_->Put(ids[i], &vectors[i * dim_]);
  if (!mirror_->ok()) mirror_.reset();
}

Status DBImpl::CheckVector(std::span<const float> vec) const {
  if (vec.size() != dim_) {
    return Status::InvalidArgument("has dimension " + std::to_string(vec.size()) +
                                   ", the DB holds dimension " + std::to_string(dim_));
  }
  double norm = 0.0;
  for (size_t i = 0; i < vec.size(); ++i) {
    if (!std::isfinite(vec[i])) {
      return Status::InvalidArgument("component " + std::to_string(i) + " is " +
                                     (std::isnan(vec[i]) ? "NaN" : "infinite"));
    }
    norm += static_cast<double>(vec[i]) * vec[i];
  }
  if (metric_ == Metric::kCosine && norm == 0.0) {
    return Status::InvalidArgument("is all zeros, which has no direction under cosine");
  }
  return Status::OK();
}

Status DBImpl::Put(const WriteOptions& options, uint64_t id, std::span<const float> vec,
                   std::string_view payload) {
  WriteBatch batch;
  batch.Put(id, vec, payload);
  return Write(options, &batch);
}

Status DBImpl::Delete(const WriteOptions& options, uint64_t id) {
  std::shared_lock close_lock(close_mu_);
  if (closed_) return Status::InvalidArgument("the DB is closed");
  if (store_->read_only()) return Status::NotSupported("the DB is open read-only");
  std::lock_guard lock(write_mu_);
  if (!index_.Contains(id)) return Status::NotFound("no vector with id " + std::to_string(id));
  WriteBatch batch;
  batch.Delete(id);
  bool train_due = false;
  return WriteLocked(options, batch, &train_due);
}

Status DBImpl::Write(const WriteOptions& options, WriteBatch* batch) {
  if (batch == nullptr) return Status::InvalidArgument("Write: batch is null");
  std::shared_lock close_lock(close_mu_);
  if (closed_) return Status::InvalidArgument("the DB is closed");
  if (store_->read_only()) return Status::NotSupported("the DB is open read-only");
  for (size_t i = 0; i < batch->ops().size(); ++i) {
    const auto& op = batch->ops()[i];
    if (op.type != WriteBatch::OpType::kPut) continue;
    Status s = CheckVector(op.vector);
    if (!s.ok()) {
      // The subject is named only on failure: no string is built per vector.
      const std::string what = "vector of id " + std::to_string(op.id) + " " +
                               std::string(s.message());
      return Status::InvalidArgument(
          batch->Count() == 1 ? what : "batch operation " + std::to_string(i) + ": " + what);
    }
  }
  bool train_due = false;
  {
    std::lock_guard lock(write_mu_);
    Status s = WriteLocked(options, *batch, &train_due);
    if (!s.ok()) return s;
  }
  if (train_due) {
    // Maintenance is off: train once, here, without blocking other writers.
    // The write is already durable; a failed training leaves the flat index
    // and is retried by the next write.
    ReclusterPlan plan;
    plan.iterations = options_.kmeans_iterations;
    plan.device = options_.device;
    plan.only_if_flat = true;
    (void)Recluster(plan);
  }
  return Status::OK();
}

Status DBImpl::WriteLocked(const WriteOptions& options, const WriteBatch& batch,
                           bool* train_due) {
  if (batch.Count() == 0) return Status::OK();
  storage::Store::Batch sb(store_.get());
  for (const auto& op : batch.ops()) {
    if (op.type == WriteBatch::OpType::kPut) {
      sb.PutVector(op.id, op.vector, op.payload);
    } else {
      sb.DeleteVector(op.id);
    }
  }
  Status s = store_->Commit(&sb, options.sync);
  if (!s.ok()) return s;

  // Durable: now visible to searches.
  std::vector<float> prepared(dim_);
  for (const auto& op : batch.ops()) {
    if (op.type == WriteBatch::OpType::kPut) {
      index_.PrepareVector(op.vector.data(), prepared.data());
      index_.Upsert(op.id, prepared.data());
      if (mirror_ != nullptr) mirror_->Put(op.id, prepared.data());
      ++written_since_epoch_;
      ++changed_since_epoch_;
      if (recording_) op_log_.push_back(LoggedOp{true, op.id, prepared});
    } else {
      if (index_.Remove(op.id)) ++changed_since_epoch_;
      if (mirror_ != nullptr) mirror_->Erase(op.id);
      if (recording_) op_log_.push_back(LoggedOp{false, op.id, {}});
    }
  }
  // Out of GPU memory: re-clusterings upload their snapshot again.
  if (mirror_ != nullptr && !mirror_->ok()) mirror_.reset();

  if (options_.background_maintenance) {
    KickMaintainer();
  } else {
    *train_due = index_.Current()->flat() && index_.size() >= options_.ivf_train_threshold &&
                 index_.size() >= 2;
  }
  return Status::OK();
}

uint32_t DBImpl::PartitionsFor(size_t n) const {
  return static_cast<uint32_t>(
      std::max<size_t>(1, (n + options_.target_partition_size / 2) /
                              options_.target_partition_size));
}

Status DBImpl::Hook(std::string_view step) {
  std::function<Status(std::string_view)> hook;
  {
    std::lock_guard lock(write_mu_);
    hook = epoch_switch_hook_;
  }
  return hook ? hook(step) : Status::OK();
}

uint32_t DBImpl::MaintenanceThreads() const {
  if (options_.maintenance_threads != 0) return options_.maintenance_threads;
  return std::max(1u, std::thread::hardware_concurrency() / 2);
}

Status RunBounded(uint32_t max_threads, const std::function<Status()>& fn) {
  if (max_threads == 0) return fn();
  tbb::task_arena arena(static_cast<int>(max_threads));
  Status s;
  arena.execute([&] { s = fn(); });
  return s;
}

Status DBImpl::Recluster(const ReclusterPlan& plan) {
  return RunBounded(plan.max_threads, [&] { return ReclusterUnbounded(plan); });
}

Status DBImpl::TrainCentroids(const ReclusterPlan& plan, const std::vector<float>& vectors,
                              size_t n, const std::vector<float>& warm, uint64_t epoch,
                              std::vector<float>* centroids,
                              std::vector<uint32_t>* assignments,
                              const DeviceSnapshot* on_device) {
  const size_t k = std::min<size_t>(plan.partitions != 0 ? plan.partitions : PartitionsFor(n), n);
  KMeansOptions ko;
  ko.max_iterations = plan.iterations;
  ko.tolerance = 1e-4;
  ko.seed = 1234 + epoch;
  // Prepared cosine vectors are unit length: spherical k-means over them.
  ko.metric = metric_ == Metric::kCosine ? Metric::kInnerProduct : metric_;
  ko.device = plan.device;
  ko.devices = options_.devices;
  if (warm.size() == k * dim_) {
    ko.init = KMeansInit::kGiven;  // warm start from the serving centroids
    ko.initial_centroids = warm.data();
  }
  ko.progress = [&](const KMeansIterationInfo& info) {
    if (stopping_.load()) return false;
    return !plan.progress ||
           plan.progress({"kmeans", static_cast<uint64_t>(info.iteration + 1),
                          static_cast<uint64_t>(plan.iterations)});
  };
  KMeansResult res;
  Status s;
  if (on_device != nullptr) {
    // The mirror's rows: `vectors`, in the same order, already on the
    // GPUs, one shard each.
    std::vector<kernels::DeviceShard> shards;
    for (const DeviceMirror::Shard& sh : on_device->shards) {
      shards.push_back({sh.device, sh.rows.get(), sh.count});
    }
    s = kernels::KMeansCudaSharded(ko, shards.data(), shards.size(), kernels::KMeansInput::kF32,
                                   dim_, k, kernels::KMeansCudaConfig(), &res, nullptr);
  } else {
    s = KMeans(ko, vectors.data(), n, dim_, k, &res);
  }
  if (s.IsNotSupported() && plan.device == Device::kAuto) {
    // The GPUs cannot run it (several GPUs without NCCL, say): the CPU
    // computes the same function.
    ko.device = Device::kCpu;
    s = KMeans(ko, vectors.data(), n, dim_, k, &res);
  }
  if (!s.ok()) return s;
  if (assignments != nullptr) *assignments = std::move(res.assignments);
  *centroids = std::move(res.centroids);
  return Status::OK();
}

Status DBImpl::ReclusterUnbounded(const ReclusterPlan& plan) {
  std::lock_guard global(global_mu_);
  const auto start = std::chrono::steady_clock::now();
  const auto& progress = plan.progress;

  // 1. Take the serving version and start logging the writes that follow;
  // then, off the lock, copy its live vectors. Writes racing the copy are
  // in the log, whose replay (step 4) leaves exactly their result; local
  // maintenance meanwhile publishes new versions and leaves this one be.
  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  std::vector<float> warm;  // the serving centroids, to warm-start from
  uint64_t epoch = 0;
  std::shared_ptr<const index::IndexVersion> snapshot;
  DeviceSnapshot on_device;  // the GPU mirror's rows, when there is one
  {
    std::lock_guard lock(write_mu_);
    if (plan.only_if_flat && !index_.Current()->flat()) return Status::OK();
    snapshot = index_.Current();
    epoch = snapshot->epoch;
    if (plan.given == nullptr) warm = snapshot->centroids;
    recording_ = true;
    op_log_.clear();
    if (mirror_ != nullptr && plan.given == nullptr && plan.device != Device::kCpu &&
        !mirror_->Snapshot(&on_device.ids, &on_device.shards).ok()) {
      on_device.shards.clear();  // train on the host copy instead
      if (!mirror_->ok()) mirror_.reset();
    }
  }
  // Whatever happens next, stop logging.
  struct StopRecording {
    DBImpl* db;
    ~StopRecording() {
      std::lock_guard lock(db->write_mu_);
      db->recording_ = false;
      db->op_log_.clear();
      db->op_log_.shrink_to_fit();
    }
  } stop_recording{this};
  if (!on_device.shards.empty()) {
    // The mirror's snapshot is the live set exactly as the lock saw it:
    // copy those rows back for the host index instead of walking the
    // partitions (a 1M x 128 copy takes tens of milliseconds over PCIe).
    ids = std::move(on_device.ids);
    vectors.resize(ids.size() * dim_);
    size_t row = 0;
    for (const DeviceMirror::Shard& sh : on_device.shards) {
      if (!kernels::CopyToHost(sh.rows.get(), sh.count * dim_, &vectors[row * dim_]).ok()) {
        on_device = DeviceSnapshot();
        break;
      }
      row += sh.count;
    }
  }
  if (on_device.shards.empty()) index_.CollectLive(*snapshot, &ids, &vectors);
  snapshot.reset();

  const size_t n = ids.size();
  if (progress && !progress({"gather", n, n})) return Status::Aborted("reindex aborted");
  Status s = Hook("snapshot");
  if (!s.ok()) return s;
  if (n == 0 && plan.given == nullptr) return Status::OK();

  // 2. k-means (or the handed-over centroids), off the lock: writers and
  // searches go on.
  std::vector<float> centroids;
  std::vector<uint32_t> labels;
  size_t k = 0;
  if (plan.given != nullptr) {
    centroids = plan.given->centroids;
    k = plan.given->num_centroids;
  } else {
    s = TrainCentroids(plan, vectors, n, warm, epoch, &centroids, &labels,
                       !on_device.shards.empty() ? &on_device : nullptr);
    on_device = DeviceSnapshot();  // frees the GPU copy
    if (!s.ok()) return s;
    k = centroids.size() / dim_;
  }
  s = Hook("kmeans");
  if (!s.ok()) return s;

  // 3. The new index, beside the serving one. Vectors go to their nearest
  // centroid: the k-means's final assignment (made against the centroids
  // it returns, on whichever device ran it), so only the distance to the
  // assigned centroid is computed here; handed-over centroids need the
  // whole nearest-centroid search.
  std::vector<float> dists(n);
  if (labels.size() == n && n > 0) {
    tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 1024),
                      [&](const tbb::blocked_range<size_t>& r) {
                        for (size_t i = r.begin(); i != r.end(); ++i) {
                          kernels::DistancesToBlock(metric_, &vectors[i * dim_],
                                                    &centroids[size_t{labels[i]} * dim_], 1,
                                                    dim_, &dists[i]);
                        }
                      });
  } else if (n > 0) {
    labels.resize(n);
    kernels::AssignNearest(metric_, vectors.data(), n, centroids.data(), nullptr, k, dim_,
                           labels.data(), dists.data());
  }
  if (progress && !progress({"assign", n, n})) return Status::Aborted("reindex aborted");
  index::IndexState next = index_.Build(epoch + 1, centroids, ids, vectors, labels, dists);
  ids.clear();
  vectors.clear();
  s = Hook("build");
  if (!s.ok()) return s;

  // 4. Catch up with the writes logged since the snapshot, in log order.
  // First off the lock, taking the log as it stands, a few rounds while
  // writers keep adding to it, so that the rest, replayed under the lock
  // below, is short: the longer the k-means, the longer the log.
  const auto replay = [&](const std::vector<LoggedOp>& ops) {
    for (const LoggedOp& op : ops) {
      if (op.put) {
        index_.UpsertInto(&next, op.id, op.vec.data());
      } else {
        index_.RemoveFrom(&next, op.id);
      }
    }
  };
  for (int round = 0; round < kCatchUpRoundsOffLock; ++round) {
    std::vector<LoggedOp> logged;
    {
      std::lock_guard lock(write_mu_);
      if (op_log_.size() < kCatchUpUnderLock) break;
      logged.swap(op_log_);
    }
    replay(logged);
  }
  // Under the lock: the rest of the log, persist, swap. The replaced
  // state is freed after the lock is released (declared first, destroyed
  // last).
  index::IndexState retired;
  std::lock_guard lock(write_mu_);
  if (stopping_.load()) return Status::Aborted("the DB is closing");
  replay(op_log_);
  if (epoch_switch_hook_) {
    s = epoch_switch_hook_("catchup");
    if (!s.ok()) return s;
  }
  storage::IndexRecord rec;
  rec.epoch = epoch + 1;
  rec.dim = dim_;
  rec.metric = metric_;
  rec.num_centroids = static_cast<uint32_t>(k);
  rec.centroids = std::move(centroids);
  rec.trained_on = n;
  rec.handover_id = plan.given != nullptr ? plan.given->handover_id : handover_id_;
  rec.epoch_distortion = next.locations.empty() ? 0.0
                                                : next.distortion_sum / next.locations.size();
  storage::Store::Batch sb(store_.get());
  sb.PutIndex(rec);
  sb.DeleteIndexBelow(rec.epoch);
  s = store_->Commit(&sb, /*sync=*/true);
  if (!s.ok()) return s;
  if (epoch_switch_hook_) {
    s = epoch_switch_hook_("persist");
    if (!s.ok()) return s;
  }
  if (progress) (void)progress({"persist", 1, 1});
  epoch_distortion_ = rec.epoch_distortion;
  written_since_epoch_ = 0;
  changed_since_epoch_ = 0;
  handover_id_ = rec.handover_id;
  split_refused_.clear();
  retired = index_.Publish(std::move(next));
  if (epoch_switch_hook_) (void)epoch_switch_hook_("swap");

  trainings_.fetch_add(1);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  training_seconds_.store(training_seconds_.load() + secs);
  return Status::OK();
}

Status DBImpl::PersistCentroidsLocked(bool sync) {
  std::shared_ptr<const index::IndexVersion> v = index_.Current();
  if (v->flat()) return Status::OK();
  storage::IndexRecord rec;
  rec.epoch = v->epoch;
  rec.dim = dim_;
  rec.metric = metric_;
  rec.num_centroids = static_cast<uint32_t>(v->partitions.size());
  rec.centroids = v->centroids;
  rec.trained_on = index_.size();
  rec.handover_id = handover_id_;
  rec.epoch_distortion = epoch_distortion_;
  storage::Store::Batch sb(store_.get());
  sb.PutIndex(rec);
  return store_->Commit(&sb, sync);
}

Status DBImpl::Reindex(const ReindexOptions& options,
                       std::function<bool(const ReindexProgress&)> progress) {
  std::shared_lock close_lock(close_mu_);
  if (closed_) return Status::InvalidArgument("the DB is closed");
  if (options.iterations < 0) return Status::InvalidArgument("iterations must be >= 0");
  ReclusterPlan plan;
  plan.partitions = options.partitions;
  plan.iterations = options.iterations != 0 ? options.iterations : options_.kmeans_iterations;
  plan.device = options.device != Device::kAuto ? options.device : options_.device;
  plan.max_threads = options.max_threads;
  plan.progress = std::move(progress);
  if (store_->secondary()) return ReindexOnSecondary(options, plan);
  if (store_->read_only()) return Status::NotSupported("the DB is open read-only");
  return Recluster(plan);
}

Status DBImpl::Get(const ReadOptions& options, uint64_t id, std::vector<float>* vec,
                   std::string* payload) {
  if (vec == nullptr) return Status::InvalidArgument("Get: vec is null");
  std::shared_lock close_lock(close_mu_);
  if (closed_) return Status::InvalidArgument("the DB is closed");
  std::string bytes;
  Status s = store_->GetVector(id, options.verify_checksums, &bytes);
  if (!s.ok()) return s;
  storage::VectorRecordView view;
  s = storage::DecodeVectorRecord(bytes, &view);
  if (!s.ok()) {
    return Status::Corruption("vector " + std::to_string(id) + ": " + std::string(s.message()));
  }
  if (view.id != id || view.dim != dim_) {
    return Status::Corruption("vector " + std::to_string(id) +
                              ": record does not match its key or the DB's dimension");
  }
  *vec = view.Vector();
  if (payload != nullptr) payload->assign(view.payload);
  return Status::OK();
}

Status DBImpl::CheckSearch(const SearchOptions& options, std::span<const float> queries,
                           size_t nq, index::SearchParams* params) const {
  if (options.k == 0) return Status::InvalidArgument("k must be >= 1");
  if (options.k > kMaxK) {
    return Status::InvalidArgument("k = " + std::to_string(options.k) + " exceeds the maximum " +
                                   std::to_string(kMaxK));
  }
  if (options.nprobe > kMaxNprobe) {
    return Status::InvalidArgument("nprobe = " + std::to_string(options.nprobe) +
                                   " exceeds the maximum " + std::to_string(kMaxNprobe));
  }
  // By division: nq * dim_ wraps around for a huge nq (nq = 2^61 with an
  // empty span would pass, and the loop below read past the queries).
  if (queries.size() % dim_ != 0 || queries.size() / dim_ != nq) {
    return Status::InvalidArgument(
        nq == 1 ? "query has dimension " + std::to_string(queries.size()) +
                      ", the DB holds dimension " + std::to_string(dim_)
                : "queries hold " + std::to_string(queries.size()) + " floats, expected " +
                      std::to_string(nq) + " x " + std::to_string(dim_));
  }
  for (size_t i = 0; i < nq; ++i) {
    Status s = CheckVector(queries.subspan(i * dim_, dim_));
    if (!s.ok()) {
      return Status::InvalidArgument((nq == 1 ? "query " : "query " + std::to_string(i) + " ") +
                                     std::string(s.message()));
    }
  }
  params->k = options.k;
  params->nprobe = options.nprobe != 0 ? options.nprobe : options_.default_nprobe;
  params->exact = options.exact;
  return Status::OK();
}

Status DBImpl::Search(const SearchOptions& options, std::span<const float> query,
                      std::vector<Neighbor>* result) {
  if (result == nullptr) return Status::InvalidArgument("Search: result is null");
  std::vector<std::vector<Neighbor>> results;
  Status s = SearchBatch(options, query, 1, &results);
  if (!s.ok()) return s;
  *result = std::move(results[0]);
  return Status::OK();
}

Status DBImpl::SearchBatch(const SearchOptions& options, std::span<const float> queries,
                           size_t nq, std::vector<std::vector<Neighbor>>* results) {
  if (results == nullptr) return Status::InvalidArgument("SearchBatch: results is null");
  index::SearchParams params;
  Status s = CheckSearch(options, queries, nq, &params);
  if (!s.ok()) return s;
  if (metric_ != Metric::kCosine) {
    index_.SearchBatch(queries.data(), nq, params, results);
    return Status::OK();
  }
  std::vector<float> prepared(queries.size());
  for (size_t i = 0; i < nq; ++i) {
    index_.PrepareVector(&queries[i * dim_], &prepared[i * dim_]);
  }
  index_.SearchBatch(prepared.data(), nq, params, results);
  return Status::OK();
}

Stats DBImpl::GetStats() {
  index::IndexStats is = index_.Stats();
  Stats st;
  st.dim = dim_;
  st.metric = metric_;
  st.num_vectors = is.live;
  st.epoch = is.epoch;
  st.num_partitions = static_cast<uint32_t>(is.partition_sizes.size());
  st.tombstones = is.tombstones;
  st.trainings = trainings_.load();
  st.training_seconds = training_seconds_.load();
  {
    std::lock_guard lock(write_mu_);
    st.splits = counters_.splits;
    st.merges = counters_.merges;
    st.compactions = counters_.compactions;
    st.reassigned = counters_.reassigned;
    st.maintenance_seconds = maintenance_seconds_.load();
    st.written_since_epoch = written_since_epoch_;
    st.changed_since_epoch = changed_since_epoch_;
    st.gpu_mirror_vectors = mirror_ != nullptr ? mirror_->size() : 0;
    const size_t live = index_.size();
    st.mean_distortion = live ? index_.distortion_sum() / live : 0.0;
    st.epoch_distortion = epoch_distortion_;
    st.drift = epoch_distortion_ > 0 ? st.mean_distortion / epoch_distortion_ - 1.0 : 0.0;
  }
  if (!is.partition_sizes.empty()) {
    st.min_partition_size = *std::min_element(is.partition_sizes.begin(), is.partition_sizes.end());
    st.max_partition_size = *std::max_element(is.partition_sizes.begin(), is.partition_sizes.end());
    st.mean_partition_size = static_cast<double>(is.live) / is.partition_sizes.size();
    st.imbalance = st.mean_partition_size > 0 ? st.max_partition_size / st.mean_partition_size : 0.0;
  }
  st.partition_sizes = std::move(is.partition_sizes);
  {
    std::shared_lock close_lock(close_mu_);
    if (!closed_) st.storage_bytes = store_->DiskBytes();
  }
  return st;
}

Status DBImpl::Close() {
  stopping_.store(true);
  {
    std::lock_guard lock(maint_mu_);
    maint_stop_ = true;
  }
  maint_cv_.notify_all();
  if (maintainer_.joinable()) maintainer_.join();
  std::unique_lock close_lock(close_mu_);
  if (closed_) return Status::OK();
  std::lock_guard lock(write_mu_);
  closed_ = true;
  return store_->Close();
}

}  // namespace quiver
