// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver bench DB --queries FILE [--ground-truth FILE] [-k 10] [--nprobe LIST] [--json]`

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <unordered_set>

#include "tools/cli_util.h"
#include "tools/vector_file.h"

namespace quiver::tools {
namespace {

// recall@k of `got` against the first k ids of each truth row.
double Recall(const std::vector<std::vector<Neighbor>>& got, const std::vector<uint64_t>& truth,
              size_t per_row, size_t k) {
  size_t hits = 0;
  for (size_t q = 0; q < got.size(); ++q) {
    std::unordered_set<uint64_t> want(truth.begin() + q * per_row,
                                      truth.begin() + q * per_row + k);
    for (const Neighbor& n : got[q]) hits += want.count(n.id);
  }
  return got.empty() ? 0.0 : double(hits) / double(got.size() * k);
}

}  // namespace

void AddBenchCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path, queries, truth, format = "auto";
    uint32_t k = 10;
    std::vector<uint32_t> nprobe;
    int repeat = 3;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure recall@k and queries per second of the DB's index over a range of nprobe.\n"
      "The queries run as one batch on all cores (the best of --repeat runs is kept).\n"
      "Ground truth: a file of neighbour ids per query (ivecs as in the TEXMEX sets, whose\n"
      "ids are row numbers of the base file: import it with --start-id 0), else computed\n"
      "here by exact search.\n"
      "Example: quiver bench /tmp/sift --queries sift_query.fvecs "
      "--ground-truth sift_groundtruth.ivecs");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_option("--queries", args->queries, "Query vectors")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--format", args->format, "Format of the query file (auto: by extension)")
      ->capture_default_str();
  cmd->add_option("--ground-truth", args->truth, "Neighbour ids per query (ivecs, npy, text)")
      ->check(CLI::ExistingFile);
  cmd->add_option("-k", args->k, "Neighbours")->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--nprobe", args->nprobe, "Comma-separated nprobe values (default: 1, 2, 4 ..."
                                            " up to every partition)")
      ->delimiter(',');
  cmd->add_option("--repeat", args->repeat, "Runs per nprobe")->capture_default_str()
      ->check(CLI::Range(1, 100));
  cmd->add_flag("--json", args->json, "One JSON object");
  cmd->callback([run, args] {
    *run = [args] {
      VectorFormat format;
      Status s = ParseVectorFormat(args->format, &format);
      if (!s.ok()) return Fail("bench", s);
      std::vector<float> queries;
      size_t nq = 0;
      uint32_t dim = 0;
      s = ReadAllVectors(args->queries, format, ReaderOptions(), &queries, &nq, &dim);
      if (!s.ok()) return Fail("bench", s);
      if (nq == 0) return Fail("bench", Status::InvalidArgument(args->queries + " holds no query"));
      std::unique_ptr<DB> db;
      s = OpenExisting(args->path, true, &db);
      if (!s.ok()) return Fail("bench", s);
      const Stats st = db->GetStats();
      if (dim != st.dim) {
        return Fail("bench", Status::InvalidArgument(args->queries + " holds " +
                                                     std::to_string(dim) + "-d vectors, the DB " +
                                                     std::to_string(st.dim) + "-d"));
      }
      const size_t k = std::min<uint64_t>(args->k, st.num_vectors);
      if (k == 0) return Fail("bench", Status::InvalidArgument(args->path + " holds no vector"));

      std::vector<uint64_t> truth;
      uint32_t per_row = 0;
      if (!args->truth.empty()) {
        s = ReadIds(args->truth, &truth, &per_row);
        if (!s.ok()) return Fail("bench", s);
        if (per_row == 0 || truth.size() / per_row < nq || per_row < k) {
          return Fail("bench", Status::InvalidArgument(
                                   args->truth + " holds " + std::to_string(per_row) +
                                   " ids for each of " +
                                   std::to_string(per_row ? truth.size() / per_row : 0) +
                                   " queries; needed " + std::to_string(k) + " for " +
                                   std::to_string(nq)));
        }
      } else {
        std::vector<std::vector<Neighbor>> exact;
        s = db->SearchBatch(SearchOptions{.k = static_cast<uint32_t>(k), .exact = true}, queries,
                            nq, &exact);
        if (!s.ok()) return Fail("bench", s);
        per_row = static_cast<uint32_t>(k);
        truth.assign(nq * k, UINT64_MAX);
        for (size_t q = 0; q < nq; ++q) {
          for (size_t j = 0; j < exact[q].size(); ++j) truth[q * k + j] = exact[q][j].id;
        }
      }

      std::vector<uint32_t> probes = args->nprobe;
      if (probes.empty()) {
        for (uint32_t p = 1; p < st.num_partitions; p *= 2) probes.push_back(p);
        probes.push_back(std::max<uint32_t>(1, st.num_partitions));
      }
      nlohmann::json rows = nlohmann::json::array();
      if (!args->json) {
        std::printf("%u partitions, %zu queries, k = %zu, ground truth %s\n", st.num_partitions,
                    nq, k, args->truth.empty() ? "by exact search" : args->truth.c_str());
        std::printf("%8s %10s %12s %14s\n", "nprobe", "recall", "QPS", "ms/query");
      }
      for (uint32_t p : probes) {
        std::vector<std::vector<Neighbor>> got;
        double best = 1e300;
        for (int r = 0; r < args->repeat; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          s = db->SearchBatch(SearchOptions{.k = static_cast<uint32_t>(k), .nprobe = p}, queries,
                              nq, &got);
          const double secs =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (!s.ok()) return Fail("bench", s);
          best = std::min(best, secs);
        }
        const double recall = Recall(got, truth, per_row, k);
        const double qps = nq / best;
        if (args->json) {
          rows.push_back({{"nprobe", p}, {"recall", recall}, {"qps", qps}, {"seconds", best}});
        } else {
          std::printf("%8u %10.4f %12.0f %14.4f\n", p, recall, qps, 1e3 * best / nq);
        }
      }
      if (args->json) {
        nlohmann::json j = {{"queries", nq},          {"k", k},
                            {"partitions", st.num_partitions},
                            {"vectors", st.num_vectors},
                            {"ground_truth", args->truth.empty() ? "exact" : args->truth},
                            {"results", rows}};
        std::printf("%s\n", j.dump().c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
