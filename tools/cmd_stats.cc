// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// `quiver stats DB [--json]`

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

#include "tools/cli_util.h"

namespace quiver::tools {
namespace {

// Partition sizes in `bins` equal-width bins over [min, max].
struct Bin {
  uint64_t lo, hi, count;
};
std::vector<Bin> Histogram(const std::vector<uint64_t>& sizes, int bins) {
  if (sizes.empty()) return {};
  const auto [mn, mx] = std::minmax_element(sizes.begin(), sizes.end());
  const uint64_t lo = *mn, width = std::max<uint64_t>(1, (*mx - lo + bins) / bins);
  std::vector<Bin> out;
  for (uint64_t b = lo; b <= *mx; b += width) out.push_back({b, b + width - 1, 0});
  for (uint64_t s : sizes) ++out[(s - lo) / width].count;
  return out;
}

}  // namespace

void AddStatsCommand(CLI::App& app, CommandRunner* run) {
  struct Args {
    std::string path;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "stats",
      "Print the DB's size and index shape: vectors, epoch, partitions and a histogram of\n"
      "their sizes, imbalance (largest / mean), drift (mean distance to the centroid now vs.\n"
      "when the epoch was trained), tombstones, bytes on disk. Read-only.\n"
      "Example: quiver stats /tmp/sift --json");
  cmd->add_option("DB", args->path, "DB directory")->required();
  cmd->add_flag("--json", args->json, "Machine-readable output");
  cmd->callback([run, args] {
    *run = [args] {
      std::unique_ptr<DB> db;
      Status s = OpenExisting(args->path, true, &db);
      if (!s.ok()) return Fail("stats", s);
      const Stats st = db->GetStats();
      const std::vector<Bin> hist = Histogram(st.partition_sizes, 10);
      const std::string metric(MetricName(st.metric));
      if (args->json) {
        nlohmann::json h = nlohmann::json::array();
        for (const Bin& b : hist) h.push_back({{"min", b.lo}, {"max", b.hi}, {"partitions", b.count}});
        nlohmann::json j = {{"dim", st.dim},
                            {"metric", metric},
                            {"vectors", st.num_vectors},
                            {"epoch", st.epoch},
                            {"partitions", st.num_partitions},
                            {"min_partition", st.min_partition_size},
                            {"max_partition", st.max_partition_size},
                            {"mean_partition", st.mean_partition_size},
                            {"imbalance", st.imbalance},
                            {"drift", st.drift},
                            {"mean_distortion", st.mean_distortion},
                            {"tombstones", st.tombstones},
                            {"storage_bytes", st.storage_bytes},
                            {"partition_histogram", h}};
        std::printf("%s\n", j.dump().c_str());
        return kExitOk;
      }
      std::printf("dimension   %u\nmetric      %s\nvectors     %llu\nepoch       %llu%s\n"
                  "partitions  %u (sizes %llu..%llu, mean %.1f, imbalance %.2f)\n"
                  "distortion  %.6g (mean distance to centroid)\ntombstones  %llu\n"
                  "on disk     %.1f MiB\n",
                  st.dim, metric.c_str(), (unsigned long long)st.num_vectors,
                  (unsigned long long)st.epoch,
                  st.epoch == 0 ? " (not trained: exact search)" : "", st.num_partitions,
                  (unsigned long long)st.min_partition_size,
                  (unsigned long long)st.max_partition_size, st.mean_partition_size,
                  st.imbalance, st.mean_distortion, (unsigned long long)st.tombstones,
                  st.storage_bytes / 1048576.0);
      if (hist.size() > 1) {
        uint64_t most = 1;
        for (const Bin& b : hist) most = std::max(most, b.count);
        std::printf("partition sizes\n");
        for (const Bin& b : hist) {
          std::printf("  %8llu..%-8llu %6llu  %s\n", (unsigned long long)b.lo,
                      (unsigned long long)b.hi, (unsigned long long)b.count,
                      std::string(b.count * 40 / most, '#').c_str());
        }
      }
      return kExitOk;
    };
  });
}

}  // namespace quiver::tools
