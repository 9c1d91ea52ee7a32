// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// DB::Check: verifies the stored bytes and the index derived from them.

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/db_impl.h"
#include "storage/records.h"

namespace quiver {
namespace {

constexpr size_t kMaxListedProblems = 100;

bool AllFinite(const float* v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return false;
  }
  return true;
}

}  // namespace

Status DBImpl::Check(CheckReport* report) {
  if (report == nullptr) return Status::InvalidArgument("Check: report is null");
  *report = CheckReport();
  std::shared_lock close_lock(close_mu_);
  if (closed_) return Status::InvalidArgument("the DB is closed");
  // The index and the store must be compared at one point of the write order.
  std::lock_guard lock(write_mu_);
  const auto problem = [report](std::string what) {
    ++report->problems_found;
    if (report->problems.size() < kMaxListedProblems) report->problems.push_back(std::move(what));
  };
  // Damage found by a scan is a problem to report; anything else (an I/O
  // error) stops the check.
  const auto scanned = [&](const Status& s) {
    if (s.IsCorruption()) {
      problem(std::string(s.message()));
      return Status::OK();
    }
    return s;
  };

  // 1. Every block of every table file.
  Status s = scanned(store_->VerifyChecksums());
  if (!s.ok()) return s;

  // 2. The metadata.
  storage::DbMeta meta;
  s = store_->ReadMeta(&meta);
  if (!s.ok()) {
    problem("DB metadata: " + std::string(s.message()));
  } else if (meta.dim != dim_ || meta.metric != metric_) {
    problem("DB metadata changed under the open DB");
  }

  // 3. The centroid records: each decodes and fits the DB; the newest is
  // the serving epoch.
  std::shared_ptr<const index::IndexVersion> serving = index_.Current();
  uint64_t newest = 0;
  s = store_->ForEachIndex([&](uint64_t epoch, std::string_view bytes) {
    ++report->index_records;
    storage::IndexRecord rec;
    Status ds = storage::DecodeIndexRecord(bytes, &rec);
    const std::string name = "centroid record of epoch " + std::to_string(epoch);
    if (!ds.ok()) {
      problem(name + ": " + std::string(ds.message()));
    } else if (rec.epoch != epoch) {
      problem(name + " holds epoch " + std::to_string(rec.epoch));
    } else if (rec.dim != dim_ || rec.metric != metric_) {
      problem(name + " does not match the DB's dimension or metric");
    } else if (!AllFinite(rec.centroids.data(), rec.centroids.size())) {
      problem(name + " holds a NaN or infinite centroid");
    }
    newest = epoch;
    return Status::OK();
  });
  s = scanned(s);
  if (!s.ok()) return s;
  if (!serving->flat() && newest != serving->epoch) {
    problem("the index serves epoch " + std::to_string(serving->epoch) +
            " but the newest centroid record is of epoch " + std::to_string(newest));
  }

  // 4. The partitions, and every stored vector against them.
  const std::vector<uint64_t> indexed = index_.CheckConsistency(problem);
  report->partitions = static_cast<uint32_t>(serving->partitions.size());
  // indexed[next_indexed..] are the ids not yet met in the store's scan
  // (which is in id order too): those passed over have no stored vector.
  size_t next_indexed = 0;
  const auto stored_nowhere = [&](size_t until) {
    for (; next_indexed < until; ++next_indexed) {
      problem("the index holds id " + std::to_string(indexed[next_indexed]) +
              " which has no stored vector");
    }
  };
  std::vector<float> raw(dim_), prepared(dim_);
  s = store_->ForEachVector([&](uint64_t id, std::string_view bytes) {
    ++report->vectors;
    const std::string name = "vector " + std::to_string(id);
    stored_nowhere(std::lower_bound(indexed.begin() + next_indexed, indexed.end(), id) -
                   indexed.begin());
    const bool in_index = next_indexed < indexed.size() && indexed[next_indexed] == id;
    if (in_index) ++next_indexed;
    storage::VectorRecordView view;
    Status ds = storage::DecodeVectorRecord(bytes, &view);
    if (!ds.ok()) {
      problem(name + ": " + std::string(ds.message()));
      return Status::OK();
    }
    if (view.id != id || view.dim != dim_) {
      problem(name + ": record does not match its key or the DB's dimension");
      return Status::OK();
    }
    view.CopyVector(raw.data());
    if (!AllFinite(raw.data(), dim_)) {
      problem(name + " holds a NaN or infinite component");
      return Status::OK();
    }
    if (!in_index) {
      problem(name + " is stored but in no partition of the index");
      return Status::OK();
    }
    index_.PrepareVector(raw.data(), prepared.data());
    const float* held = index_.VectorOf(id);
    if (held == nullptr || std::memcmp(held, prepared.data(), dim_ * sizeof(float)) != 0) {
      problem(name + " differs between the store and the index");
    }
    return Status::OK();
  });
  s = scanned(s);
  if (!s.ok()) return s;
  stored_nowhere(indexed.size());

  if (report->problems_found == 0) return Status::OK();
  std::string first = report->problems.front();
  if (report->problems_found > 1) {
    first += " (and " + std::to_string(report->problems_found - 1) + " more problems)";
  }
  return Status::Corruption(first);
}

}  // namespace quiver
