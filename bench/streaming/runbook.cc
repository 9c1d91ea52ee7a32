// Copyright (c) quiver authors. Licensed under the Apache License 2.0.

#include "bench/streaming/runbook.h"

#include <yaml-cpp/yaml.h>

#include <string>

namespace quiver::bench {

std::string_view StepOpName(StepOp op) {
  switch (op) {
    case StepOp::kInsert:
      return "insert";
    case StepOp::kDelete:
      return "delete";
    case StepOp::kSearch:
      return "search";
    case StepOp::kReplace:
      return "replace";
  }
  return "?";
}

namespace {

// Reads the non-negative integer `key` of step `node`.
Status ReadBound(const YAML::Node& node, const char* key, int number, uint64_t max_pts,
                 uint64_t* out) {
  const std::string where = "step " + std::to_string(number) + ": ";
  YAML::Node v = node[key];
  if (!v) return Status::InvalidArgument(where + "'" + key + "' is missing");
  long long x = 0;
  if (!YAML::convert<long long>::decode(v, x)) {
    return Status::InvalidArgument(where + "'" + key + "' is not an integer");
  }
  if (x < 0 || static_cast<uint64_t>(x) > max_pts) {
    return Status::InvalidArgument(where + "'" + key + "' = " + std::to_string(x) +
                                   " is outside [0, max_pts = " + std::to_string(max_pts) + "]");
  }
  *out = static_cast<uint64_t>(x);
  return Status::OK();
}

Status ParseRunbook(const YAML::Node& root, const std::string& dataset, Runbook* out) {
  if (!root.IsMap() || root.size() == 0) {
    return Status::InvalidArgument("a runbook is a map from a dataset name to its steps");
  }
  YAML::Node book;
  if (dataset.empty()) {
    if (root.size() != 1) {
      return Status::InvalidArgument("the file holds several datasets; name one");
    }
    out->dataset = root.begin()->first.as<std::string>();
    book = root.begin()->second;
  } else {
    book = root[dataset];
    if (!book) return Status::InvalidArgument("no dataset '" + dataset + "' in the runbook");
    out->dataset = dataset;
  }
  if (!book.IsMap()) return Status::InvalidArgument("the dataset's entry is not a map");
  long long max_pts = 0;
  if (!book["max_pts"] || !YAML::convert<long long>::decode(book["max_pts"], max_pts) ||
      max_pts <= 0) {
    return Status::InvalidArgument("max_pts is missing or not a positive integer");
  }
  out->max_pts = static_cast<uint64_t>(max_pts);
  out->steps.clear();
  for (int i = 1;; ++i) {
    YAML::Node node = book[i];
    if (!node) break;
    const std::string where = "step " + std::to_string(i) + ": ";
    if (!node.IsMap() || !node["operation"]) {
      return Status::InvalidArgument(where + "no operation");
    }
    const std::string op = node["operation"].as<std::string>();
    RunbookStep step;
    step.number = i;
    Status s;
    if (op == "insert" || op == "delete") {
      step.op = op == "insert" ? StepOp::kInsert : StepOp::kDelete;
      s = ReadBound(node, "start", i, out->max_pts, &step.start);
      if (s.ok()) s = ReadBound(node, "end", i, out->max_pts, &step.end);
      if (s.ok() && step.start > step.end) s = Status::InvalidArgument(where + "start > end");
    } else if (op == "replace") {
      step.op = StepOp::kReplace;
      s = ReadBound(node, "tags_start", i, out->max_pts, &step.tags_start);
      if (s.ok()) s = ReadBound(node, "tags_end", i, out->max_pts, &step.tags_end);
      if (s.ok()) s = ReadBound(node, "ids_start", i, out->max_pts, &step.ids_start);
      if (s.ok()) s = ReadBound(node, "ids_end", i, out->max_pts, &step.ids_end);
      if (s.ok() && (step.tags_start > step.tags_end || step.ids_start > step.ids_end ||
                     step.tags_end - step.tags_start != step.ids_end - step.ids_start)) {
        s = Status::InvalidArgument(where + "replace ranges are reversed or differ in length");
      }
    } else if (op == "search") {
      step.op = StepOp::kSearch;
    } else {
      s = Status::InvalidArgument(where + "unknown operation '" + op + "'");
    }
    if (!s.ok()) return s;
    out->steps.push_back(step);
  }
  if (out->steps.empty()) return Status::InvalidArgument("the runbook has no step 1");
  return Status::OK();
}

}  // namespace

Status LoadRunbook(const std::string& path, const std::string& dataset, Runbook* out) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile& e) {
    return Status::IOError(path + ": cannot read");
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  try {
    Status s = ParseRunbook(root, dataset, out);
    if (!s.ok()) return Status::InvalidArgument(path + ": " + std::string(s.message()));
  } catch (const YAML::Exception& e) {  // a scalar of the wrong type
    return Status::InvalidArgument(path + ": " + e.what());
  }
  return Status::OK();
}

}  // namespace quiver::bench
