// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Centroid hand-over: how a process that cannot write to a DB (a secondary
// instance: `quiver reindex` while an application holds the DB) gives the
// process that holds it a new set of centroids to re-cluster with.
//
// The files live in <db>/handover/:
//   <id>.*.tmp      a file being written; ignored
//   <id>.request    a complete request: a header (magic, version, length,
//                   CRC32C) and an IndexRecord whose handover_id is <id>
//   <id>.applied    the holder's answer: "<epoch>", the epoch it committed
//   <id>.rejected   the holder's answer: why it could not apply the request
// Every file is written to a temporary name, fsync'ed and renamed, so a
// reader sees it whole or not at all.
//
// The protocol, and why a crash of either side loses nothing:
//  1. The requester publishes <id>.request. Until then nothing changed.
//  2. The holder (its maintainer, or Open) reads the request, assigns every
//     live vector to the given centroids, catches up the writes made
//     meanwhile and commits the new epoch in one synced RocksDB write,
//     whose IndexRecord carries handover_id = <id>. A crash before that
//     commit leaves the old epoch and the request, which is applied again
//     on the next open; after it, the new epoch.
//  3. The holder writes the answer, then removes the request. A request
//     found with an epoch that already carries its id was applied before a
//     crash: it is answered, not applied twice.
//  4. The requester reads the answer and removes it.

#ifndef QUIVER_STORAGE_HANDOVER_H_
#define QUIVER_STORAGE_HANDOVER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "quiver/status.h"
#include "storage/records.h"

namespace quiver::storage::handover {

// <db_path>/handover
std::string Dir(const std::string& db_path);

// A fresh, random, non-zero request id.
uint64_t NewId();

// Writes request rec.handover_id durably (steps: temporary file, fsync,
// rename, fsync of the directory).
Status Publish(const std::string& db_path, const IndexRecord& rec);

// Ids of the complete requests waiting in db_path, in id order. An absent
// directory is no request.
Status ListRequests(const std::string& db_path, std::vector<uint64_t>* ids);

// Reads and verifies request `id`: Corruption for a damaged or foreign file.
Status ReadRequest(const std::string& db_path, uint64_t id, IndexRecord* rec);

// The holder's answer to request `id` (applied at `epoch` when outcome is
// OK, else rejected with outcome's message); written durably, then the
// request is removed.
Status Answer(const std::string& db_path, uint64_t id, const Status& outcome, uint64_t epoch);

// The requester's view of request `id`: *answered false while it waits;
// then OK with *epoch set, or Aborted with the holder's reason.
Status ReadAnswer(const std::string& db_path, uint64_t id, bool* answered, uint64_t* epoch);

// Removes the answer and any temporary file of request `id` (the
// requester's cleanup). A published request is left in place: once
// published, it is the holder's to apply.
void Forget(const std::string& db_path, uint64_t id);

}  // namespace quiver::storage::handover

#endif  // QUIVER_STORAGE_HANDOVER_H_
