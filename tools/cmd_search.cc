// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver search DB (--vector "0.1,0.2,..." | --query-file FILE [--format F] [--dataset NAME])
//     [-k 10] [--nprobe N] [--exact] [--json]`

#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>

#include "tools/cli_util.h"
#include "tools/vector_file.h"

namespace quiver::tools {
namespace {

Status ParseVector(const std::string& text, std::vector<float>* out) {
  out->clear();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out->push_back(std::stof(item, &used));
      if (item.find_first_not_of(" \t", used) != std::string::npos) throw std::invalid_argument("");
    } catch (const std::exception&) {
      return Status::InvalidArgument("--vector component " + std::to_string(out->size()) + " '" +
                                     item + "' is not a number");
    }
  }
  if (out->empty()) return Status::InvalidArgument("--vector is empty");
  return Status::OK();
}

}  // namespace

void AddSearchCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path, vector, query_file, format = "auto", dataset;
    uint32_t k = 10, nprobe = 0;
    bool json = false, exact = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "search",
      "Find the k nearest vectors of one query or of every vector in a file of queries\n"
      "(any format import reads: fvecs, bvecs, ivecs, npy, hdf5, csv, idx).\n"
      "Examples: quiver search /tmp/sift --vector \"0.5,1,0,...\" -k 5 --nprobe 16\n"
      "          quiver search /tmp/glove --query-file glove-100-angular.hdf5 --dataset test");
  cmd->add_option("DB", args->path, "DB directory")->required();
  auto* v = cmd->add_option("--vector", args->vector, "Comma-separated components");
  auto* q = cmd->add_option("--query-file", args->query_file, "File of queries, read whole")
                ->check(CLI::ExistingFile);
  v->excludes(q);
  cmd->add_option("--format", args->format, "Query file format; auto goes by the extension")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "fvecs", "bvecs", "ivecs", "npy", "hdf5", "csv", "idx"}))
      ->needs(q);
  cmd->add_option("--dataset", args->dataset, "hdf5: the dataset of queries (e.g. test)")
      ->needs(q);
  cmd->add_option("-k", args->k, "Neighbours")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--nprobe", args->nprobe, "Partitions to scan (0: the DB's default)")
      ->capture_default_str();
  cmd->add_flag("--exact", args->exact, "Scan everything");
  cmd->add_flag("--json", args->json, "One JSON object per query");
  cmd->callback([run, args] {
    *run = [args] {
      std::vector<float> queries;
      size_t nq = 0;
      Status s;
      if (!args->vector.empty()) {
        s = ParseVector(args->vector, &queries);
        nq = 1;
      } else if (!args->query_file.empty()) {
        VectorFormat format = VectorFormat::kAuto;
        s = ParseVectorFormat(args->format, &format);
        ReaderOptions options;
        options.dataset = args->dataset;
        uint32_t dim = 0;
        if (s.ok()) s = ReadAllVectors(args->query_file, format, options, &queries, &nq, &dim);
      } else {
        s = Status::InvalidArgument("give --vector or --query-file");
      }
      if (!s.ok()) return Fail("search", s);
      std::unique_ptr<DB> db;
      s = OpenExisting(args->path, true, &db);
      if (!s.ok()) return Fail("search", s);
      std::vector<std::vector<Neighbor>> results;
      s = db->SearchBatch(SearchOptions{.k = args->k, .nprobe = args->nprobe, .exact = args->exact},
                          queries, nq, &results);
      if (!s.ok()) return Fail("search", s);
      for (size_t i = 0; i < results.size(); ++i) {
        if (args->json) {
          std::printf("{\"query\": %zu, \"neighbors\": [", i);
          for (size_t j = 0; j < results[i].size(); ++j) {
            std::printf("%s{\"id\": %llu, \"distance\": %.6g}", j ? ", " : "",
                        (unsigned long long)results[i][j].id, results[i][j].distance);
          }
          std::printf("]}\n");
        } else {
          std::printf("query %zu\n", i);
          for (const auto& n : results[i]) {
            std::printf("  %20llu  %.6g\n", (unsigned long long)n.id, n.distance);
          }
        }
      }
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
