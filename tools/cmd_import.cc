// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver import DB FILE [--format auto|fvecs|bvecs|ivecs|npy|hdf5|csv|idx]
//     [--dataset NAME] [--ids FILE|column] [--start-id N] [--batch N]
//     [--existing replace|skip] [--skip-bad] [--sync]`
//
// Streams FILE through a VectorFileReader, one batch of rows at a time, so
// memory stays one batch whatever the file's size. Each batch is one atomic
// DB write: an interrupted import leaves whole batches, and running the same
// command again resumes it. Before each write the importer looks up which
// of the batch's ids are already present, so that it can replace or skip
// them as asked and say which in its summary.

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <unordered_set>

#include "quiver/write_batch.h"
#include "tools/cli_util.h"
#include "tools/progress.h"
#include "tools/vector_file.h"

namespace quiver::tools {
namespace {

struct ImportArgs {
  std::string path, file, format = "auto", dataset, ids, existing = "replace";
  uint64_t start_id = 0;
  size_t batch = 1000;
  bool skip_bad = false, sync = false;
};

constexpr uint64_t kNoRow = std::numeric_limits<uint64_t>::max();

// What happened to the rows read so far.
struct Tally {
  uint64_t added = 0;     // ids that were not in the DB
  uint64_t replaced = 0;  // present, overwritten (--existing replace)
  uint64_t kept = 0;      // present, left as they were (--existing skip)
  uint64_t bad = 0;       // rows reported and not imported
  uint64_t written() const { return added + replaced; }
};

class Importer {
 public:
  explicit Importer(const ImportArgs& args) : a_(args), tty_(isatty(STDERR_FILENO) != 0) {}

  int Run() {
    Status s = Prepare();
    if (!s.ok()) return Fail("import", s);
    const bool by_rows = reader_->count().has_value();
    // Reset before a failure is reported: it ends the bar's line first.
    std::optional<ProgressBar> bar;
    bar.emplace("import", by_rows ? *reader_->count() : reader_->bytes_total() / 1024,
                by_rows ? "vec" : "KiB");
    RowBatch rows;
    while (true) {
      s = reader_->Next(a_.batch, &rows);
      if (!s.ok()) {
        bar.reset();
        return Stop(s.ToString(), kRerun);
      }
      if (rows.rows == 0 && rows.bad.empty()) break;
      uint64_t stop_row = kNoRow;
      s = ImportBatch(rows, &stop_row);
      if (!s.ok()) {
        bar.reset();
        return Stop(s.ToString(), kRerun);
      }
      bar->Update(by_rows ? rows_seen_ : reader_->bytes_read() / 1024);
      if (stop_row != kNoRow) {
        bar.reset();
        return Stop("stopped at the bad row reported above",
                    "fix it or pass --skip-bad, then run the same command again to resume");
      }
    }
    bar->Finish();
    PrintSummary();
    return kExitOk;
  }

 private:
  // Opens the file and the DB and checks everything that can be checked
  // before the first write: the format, the dimensions, the ids.
  Status Prepare() {
    VectorFormat format;
    Status s = ParseVectorFormat(a_.format, &format);
    if (s.ok() && format == VectorFormat::kAuto) s = FormatFromExtension(a_.file, &format);
    if (!s.ok()) return s;
    id_column_ = a_.ids == "column";
    if (id_column_ && format != VectorFormat::kCsv) {
      return Status::InvalidArgument("--ids column takes the ids from a csv file's first field; " +
                                     a_.file + " is " + VectorFormatName(format));
    }
    ReaderOptions options;
    options.dataset = a_.dataset;
    options.id_column = id_column_;
    s = VectorFileReader::Open(a_.file, format, options, &reader_);
    if (!s.ok()) return s;
    if (!a_.ids.empty() && !id_column_) {
      s = LoadIdFile(format, options);
      if (!s.ok()) return s;
    } else if (!id_column_ && reader_->count() && *reader_->count() > 0 &&
               *reader_->count() - 1 > std::numeric_limits<uint64_t>::max() - a_.start_id) {
      return Status::InvalidArgument("--start-id " + std::to_string(a_.start_id) + " plus " +
                                     std::to_string(*reader_->count()) + " rows overflows a uint64 id");
    }
    s = OpenExisting(a_.path, false, &db_);
    if (!s.ok()) return s;
    const uint32_t db_dim = db_->GetStats().dim;
    if (db_dim != reader_->dim()) {
      return Status::InvalidArgument(a_.file + " holds " + std::to_string(reader_->dim()) +
                                     "-d vectors, the DB at " + a_.path + " holds " +
                                     std::to_string(db_dim) + "-d");
    }
    return Status::OK();
  }

  // --ids FILE: one id per row of the data file, checked before any write.
  Status LoadIdFile(VectorFormat format, const ReaderOptions& options) {
    uint32_t per_row = 1;
    Status s = ReadIds(a_.ids, &id_list_, &per_row);
    if (!s.ok()) return s;
    if (per_row != 1) {
      return Status::InvalidArgument(a_.ids + " holds " + std::to_string(per_row) +
                                     " ids per row; --ids needs one id per vector");
    }
    uint64_t rows = 0;
    if (reader_->count()) {
      rows = *reader_->count();
    } else {
      // csv says its length only when read: count its rows (good and bad,
      // both of which own an id) with a reader of its own.
      std::unique_ptr<VectorFileReader> counter;
      s = VectorFileReader::Open(a_.file, format, options, &counter);
      RowBatch batch;
      while (s.ok() && (s = counter->Next(1 << 16, &batch)).ok() &&
             (batch.rows > 0 || !batch.bad.empty())) {
        rows += batch.rows + batch.bad.size();
      }
      if (!s.ok()) return s;
    }
    if (rows != id_list_.size()) {
      return Status::InvalidArgument(a_.ids + " holds " + std::to_string(id_list_.size()) +
                                     " ids, " + a_.file + " holds " + std::to_string(rows) +
                                     " vectors");
    }
    return Status::OK();
  }

  uint64_t IdOf(const RowBatch& rows, size_t i) const {
    if (id_column_) return rows.ids[i];
    if (!id_list_.empty()) return id_list_[rows.row_numbers[i]];
    return a_.start_id + rows.row_numbers[i];
  }

  static std::string WhereOf(const RowBatch& rows, size_t i) {
    return rows.lines.empty() ? "row " + std::to_string(rows.row_numbers[i])
                              : "line " + std::to_string(rows.lines[i]);
  }

  // Writes the batch's good rows in one atomic write. A bad row (the
  // reader's, or a NaN/Inf the DB would refuse) is reported; without
  // --skip-bad the rows after the first bad one are left out and
  // *stop_row names it.
  Status ImportBatch(const RowBatch& rows, uint64_t* stop_row) {
    const size_t d = reader_->dim();
    std::vector<BadRow> bad = rows.bad;
    std::vector<char> finite(rows.rows, 1);
    for (size_t i = 0; i < rows.rows; ++i) {
      const float* v = rows.values.data() + i * d;
      const float* odd = std::find_if(v, v + d, [](float x) { return !std::isfinite(x); });
      if (odd == v + d) continue;
      finite[i] = 0;
      bad.push_back({rows.row_numbers[i], WhereOf(rows, i),
                     "value " + std::to_string(odd - v + 1) + " is " +
                         (std::isnan(*odd) ? "NaN" : "infinite")});
    }
    std::sort(bad.begin(), bad.end(),
              [](const BadRow& x, const BadRow& y) { return x.row < y.row; });
    if (!bad.empty() && !a_.skip_bad) {
      bad.resize(1);
      *stop_row = bad[0].row;
    }
    for (const BadRow& b : bad) {
      std::fprintf(stderr, "%squiver import: %s %s: %s\n", tty_ ? "\r\033[K" : "", a_.file.c_str(),
                   b.where.c_str(), b.reason.c_str());
    }

    WriteBatch batch;
    std::unordered_set<uint64_t> in_batch;  // an id twice in one batch: present the 2nd time
    std::vector<float> scratch;
    Tally t;
    for (size_t i = 0; i < rows.rows; ++i) {
      if (rows.row_numbers[i] >= *stop_row) break;
      if (!finite[i]) continue;
      const uint64_t id = IdOf(rows, i);
      bool present = !in_batch.insert(id).second;
      if (!present) {
        Status s = db_->Get(ReadOptions(), id, &scratch);
        if (!s.ok() && !s.IsNotFound()) return s;
        present = s.ok();
      }
      if (present && a_.existing == "skip") {
        ++t.kept;
        continue;
      }
      ++(present ? t.replaced : t.added);
      batch.Put(id, std::span<const float>(rows.values.data() + i * d, d));
    }
    if (batch.Count() > 0) {
      Status s = db_->Write(WriteOptions{.sync = a_.sync}, &batch);
      if (!s.ok()) return s;
    }
    tally_.added += t.added;
    tally_.replaced += t.replaced;
    tally_.kept += t.kept;
    tally_.bad += *stop_row == kNoRow ? bad.size() : 0;
    rows_seen_ += rows.rows + rows.bad.size();
    return Status::OK();
  }

  static constexpr char kRerun[] = "run the same command again to resume";

  // Ends a failed import: what failed, what is in the DB, how to go on.
  int Stop(const std::string& why, const std::string& next) {
    std::string done = std::to_string(tally_.added) + " new";
    if (tally_.replaced > 0) done += ", " + std::to_string(tally_.replaced) + " replaced";
    if (tally_.kept > 0) done += ", " + std::to_string(tally_.kept) + " present were skipped";
    std::fprintf(stderr,
                 "quiver import: %s; the %llu vectors before it are imported (%s)\n"
                 "quiver import: %s (ids already present are %s)\n",
                 why.c_str(), (unsigned long long)tally_.written(), done.c_str(), next.c_str(),
                 a_.existing == "skip" ? "skipped" : "replaced; --existing skip leaves them");
    return kExitError;
  }

  void PrintSummary() const {
    std::string line = "imported " + std::to_string(tally_.written()) + " vectors";
    if (!id_column_ && id_list_.empty() && rows_seen_ > 0) {
      line += " (ids " + std::to_string(a_.start_id) + ".." +
              std::to_string(a_.start_id + rows_seen_ - 1) + ")";
    }
    line += ": " + std::to_string(tally_.added) + " new";
    if (tally_.replaced > 0) {
      line += ", " + std::to_string(tally_.replaced) + " already present were replaced";
    }
    if (tally_.kept > 0) {
      line += ", " + std::to_string(tally_.kept) + " already present were skipped";
    }
    if (tally_.bad > 0) {
      line += "; " + std::to_string(tally_.bad) + " bad rows were skipped (reported above)";
    }
    std::printf("%s\n", line.c_str());
  }

  const ImportArgs& a_;
  const bool tty_;
  std::unique_ptr<VectorFileReader> reader_;
  std::unique_ptr<DB> db_;
  bool id_column_ = false;
  std::vector<uint64_t> id_list_;  // --ids FILE
  uint64_t rows_seen_ = 0;         // rows read, good and bad
  Tally tally_;
};

}  // namespace

void AddImportCommand(CLI::App& app, CommandRunner* run) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = app.add_subcommand(
      "import",
      "Insert the vectors of a file, streaming it one batch at a time.\n"
      "Example: quiver import /tmp/sift sift_base.fvecs");
  cmd->footer(
      "Formats (by extension, or --format):\n"
      "  fvecs, bvecs, ivecs  TEXMEX: per row an int32 dimension, then float32/uint8/int32\n"
      "  npy                  a 2-D C-order array of float16/32/64 or 8-64 bit integers\n"
      "  hdf5 (.h5)           a 2-D dataset: --dataset, else the only one, or \"train\"\n"
      "  csv (.tsv, .txt)     one row per line, comma, tab or space separated; empty lines,\n"
      "                       '#' comments and a first line that is not all numbers are skipped\n"
      "  idx                  MNIST / Fashion-MNIST images, gzip'd or not\n"
      "\n"
      "Ids: row i of the file (counting from 0, bad rows included) gets id --start-id + i.\n"
      "--ids FILE takes them from a file instead (one id per line, a 1-D .npy of integers,\n"
      "or a one-column .ivecs; as many ids as rows); --ids column takes each csv row's\n"
      "first field.\n"
      "\n"
      "Resume: every batch is one atomic write, so an interrupted import leaves whole\n"
      "batches; run the same command again to finish it. Ids already in the DB are\n"
      "replaced (--existing replace, the default) or left as they are (--existing skip);\n"
      "the summary says how many were new, replaced or skipped.\n"
      "\n"
      "Bad rows (a wrong number of values, not a number, NaN or Inf) are reported on\n"
      "stderr with their line (csv) or row: \"quiver import: FILE line 17: has 127 values,\n"
      "expected 128\". The import then stops with exit code 1, keeping the rows before the\n"
      "bad one; with --skip-bad it reports every bad row, goes on, and counts them.\n"
      "\n"
      "Examples:\n"
      "  quiver import /tmp/sift sift_base.fvecs --batch 5000\n"
      "  quiver import /tmp/glove glove-100-angular.hdf5 --dataset train\n"
      "  quiver import /tmp/db vectors.csv --ids column --skip-bad\n"
      "  quiver import /tmp/db more.npy --start-id 1000000 --existing skip");
  cmd->add_option("DB", args->path, "DB directory (made by quiver create)")->required();
  cmd->add_option("FILE", args->file, "Vectors to insert")->required()->check(CLI::ExistingFile);
  cmd->add_option("--format", args->format, "File format; auto goes by the extension")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fvecs", "bvecs", "ivecs", "npy", "hdf5", "csv", "idx"}));
  cmd->add_option("--dataset", args->dataset, "hdf5: the dataset to read (a path within the file)");
  auto* ids = cmd->add_option("--ids", args->ids,
                              "Ids from FILE (text, .npy or .ivecs), or 'column': a csv's first "
                              "field");
  cmd->add_option("--start-id", args->start_id, "Id of row 0 when ids are row numbers")
      ->capture_default_str()
      ->excludes(ids);
  cmd->add_option("--batch", args->batch, "Rows per atomic write (and in memory)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--existing", args->existing, "Ids already present: replace them, or skip them")
      ->capture_default_str()
      ->check(CLI::IsMember({"replace", "skip"}));
  cmd->add_flag("--skip-bad", args->skip_bad, "Report bad rows and go on, instead of stopping");
  cmd->add_flag("--sync", args->sync, "fsync every batch");
  cmd->callback([run, args] {
    *run = [args] { return Importer(*args).Run(); };
  });
}

}  // namespace quiver::tools
