// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Micro-benchmarks of the CPU kernels: distances per dimension (AVX2 and
// scalar), the fused assignment at the k-means shapes, one Lloyd iteration.
//
//   build-cpu/bench/kernels/kmeans_cpu_bench --benchmark_format=json

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/assign.h"
#include "kernels/cpu/distance.h"
#include "kernels/cpu/kmeans_cpu.h"
#include "quiver/kmeans.h"

namespace quiver::kernels {
namespace {

std::vector<float> Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// Distances between one query and a 4096-row block (in L2 for d <= 64).
template <float (*F)(const float*, const float*, size_t)>
void BM_Distance(benchmark::State& state) {
  const size_t d = size_t(state.range(0));
  const size_t rows = std::max<size_t>(16, (size_t(1) << 18) / d);
  auto q = Random(d, 1), block = Random(rows * d, 2);
  size_t j = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(F(q.data(), block.data() + j * d, d));
    if (++j == rows) j = 0;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * double(d) * double(state.iterations()), benchmark::Counter::kIsRate,
      benchmark::Counter::kIs1000);
}

#define DIMS ->Arg(3)->Arg(17)->Arg(64)->Arg(128)->Arg(784)->Arg(1536)
BENCHMARK(BM_Distance<L2Sqr>)->Name("L2Sqr") DIMS;
BENCHMARK(BM_Distance<Dot>)->Name("Dot") DIMS;
BENCHMARK(BM_Distance<simd::L2SqrScalar>)->Name("L2SqrScalar") DIMS;
BENCHMARK(BM_Distance<simd::DotScalar>)->Name("DotScalar") DIMS;

// AssignNearest(n, d, k): points per second and the dot-product GFLOP/s.
void BM_AssignNearest(benchmark::State& state) {
  const size_t n = size_t(state.range(0)), d = size_t(state.range(1)),
               k = size_t(state.range(2));
  const bool scalar = state.range(3) != 0;
  auto x = Random(n * d, 3), c = Random(k * d, 4);
  std::vector<float> norms(k);
  RowNormsSqr(c.data(), k, d, norms.data());
  std::vector<uint32_t> labels(n);
  std::vector<float> dists(n);
  simd::ForceScalar(scalar);
  for (auto _ : state) {
    AssignNearest(Metric::kL2, x.data(), n, c.data(), norms.data(), k, d,
                  labels.data(), dists.data());
    benchmark::ClobberMemory();
  }
  simd::ForceScalar(false);
  state.SetItemsProcessed(int64_t(state.iterations() * n));
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * double(n) * double(k) * double(d) * double(state.iterations()),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_AssignNearest)
    ->ArgNames({"n", "d", "k", "scalar"})
    ->Args({65536, 128, 1024, 0})
    ->Args({60000, 784, 256, 0})
    ->Args({60000, 784, 1024, 0})
    ->Args({65536, 128, 1024, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// NearestCentroids: coarse quantisation of 10,000 queries, nprobe = 16.
void BM_NearestCentroids(benchmark::State& state) {
  const size_t n = 10000, d = size_t(state.range(0)),
               k = size_t(state.range(1));
  const size_t nearest = 16;
  auto x = Random(n * d, 5), c = Random(k * d, 6);
  std::vector<uint32_t> labels(n * nearest);
  std::vector<float> dists(n * nearest);
  for (auto _ : state) {
    NearestCentroids(Metric::kL2, x.data(), n, c.data(), k, d, nearest,
                     labels.data(), dists.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(int64_t(state.iterations() * n));
}
BENCHMARK(BM_NearestCentroids)
    ->ArgNames({"d", "k"})
    ->Args({128, 1024})
    ->Args({784, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One Lloyd iteration (assignment + update) of quiver::KMeans from given
// centroids, timed through the progress callback (so the final assignment
// that KMeans adds after its last iteration is not counted).
void BM_LloydIteration(benchmark::State& state) {
  const size_t n = size_t(state.range(0)), d = size_t(state.range(1)),
               k = size_t(state.range(2));
  auto x = Random(n * d, 7);
  std::vector<float> init(x.begin(), x.begin() + k * d);
  KMeansOptions opt;
  opt.device = Device::kCpu;
  opt.init = KMeansInit::kGiven;
  opt.initial_centroids = init.data();
  opt.max_iterations = 1;
  opt.tolerance = 0;
  for (auto _ : state) {
    KMeansResult res;
    auto t0 = std::chrono::steady_clock::now();
    double seconds = 0;
    opt.progress = [&](const KMeansIterationInfo&) {
      seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
      return true;
    };
    if (!KMeans(opt, x.data(), n, d, k, &res).ok())
      state.SkipWithError("k-means failed");
    state.SetIterationTime(seconds);
  }
  state.SetItemsProcessed(int64_t(state.iterations() * n));
}
BENCHMARK(BM_LloydIteration)
    ->ArgNames({"n", "d", "k"})
    ->Args({65536, 128, 1024})
    ->Args({60000, 784, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace
}  // namespace quiver::kernels

BENCHMARK_MAIN();
