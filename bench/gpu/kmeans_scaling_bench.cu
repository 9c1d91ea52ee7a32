// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Multi-GPU scaling of quiver's CUDA k-means: ms per Lloyd iteration on 1,
// 2, ... GPUs of this host for the same points and initial centroids, one
// line of JSON per GPU count on stdout, with the efficiency against linear
// scaling from the 1-GPU line (t1 / (G * tG)).
//
//   kmeans_scaling_bench --n 67108864 --d 128 --k 8192 --gpus 1,2 --iters 5
//       [--precision tf32] [--host]
//
// Default: the points live on the GPUs, each holding its contiguous share
// (generated in place: point i is the same whatever the GPU count), and the
// run is KMeansCudaSharded. --host: the points sit in one pinned host array
// and KMeansCudaEx streams each GPU's share from it every iteration (forced,
// also when a share would fit); the pinned host-to-device bandwidth, one GPU
// alone and all copying at once, is measured first and printed as a line of
// its own. Initial centroids: the first k points.

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench/gpu/bench_cuda.cuh"
#include "kernels/cuda/kmeans_cuda_ex.h"
#include "quiver/kmeans.h"

namespace {

using quiver::bench::Mix;

// Element i of the whole point array (first = the global index of x[0]):
// a mixture of 64 well-separated normal clusters, so the k-means has
// structure to find and no cluster empties.
__global__ void points_kernel(float* x, size_t count, size_t first, size_t d) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const size_t g = first + i;
  const size_t row = g / d, col = g % d;
  const uint64_t h = Mix(1234 ^ Mix(g));
  const float u1 = (static_cast<float>(h >> 40) + 1.f) * (1.f / 16777217.f);
  const float u2 = static_cast<float>((h >> 8) & 0xffffff) * (1.f / 16777216.f);
  const uint64_t c = Mix(row) % 64;
  const float centre = static_cast<float>(Mix(c * 1000003 + col) % 2001) / 100.f - 10.f;
  x[i] = centre + sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}

void Generate(float* x, size_t count, size_t first, size_t d) {
  points_kernel<<<static_cast<unsigned>((count + 255) / 256), 256>>>(x, count, first, d);
  CHECK_CUDA(cudaGetLastError());
}

struct Args {
  size_t n = size_t{1} << 26, d = 128, k = 8192;
  std::vector<int> gpus = {1, 2};
  std::string precision = "tf32";
  int iters = 5;
  bool host = false;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (s == "--n") a.n = std::stoull(next());
    else if (s == "--d") a.d = std::stoull(next());
    else if (s == "--k") a.k = std::stoull(next());
    else if (s == "--iters") a.iters = std::stoi(next());
    else if (s == "--precision") a.precision = next();
    else if (s == "--host") a.host = true;
    else if (s == "--gpus") {
      a.gpus.clear();
      std::string list = next();
      for (size_t p = 0; p < list.size();) {
        size_t q = list.find(',', p);
        if (q == std::string::npos) q = list.size();
        a.gpus.push_back(std::stoi(list.substr(p, q - p)));
        p = q + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: kmeans_scaling_bench [--n N] [--d D] [--k K] [--gpus 1,2]\n"
                   "       [--iters I] [--precision fp32|tf32|fp16|bf16] [--host]\n");
      std::exit(s == "--help" ? 0 : 2);
    }
  }
  return a;
}

quiver::KMeansPrecision PrecisionOf(const std::string& p) {
  return p == "fp32"   ? quiver::KMeansPrecision::kFp32
         : p == "tf32" ? quiver::KMeansPrecision::kTf32
         : p == "fp16" ? quiver::KMeansPrecision::kFp16
                       : quiver::KMeansPrecision::kBf16;
}

// GB/s of pinned host-to-device copies of `bytes` from `host` to each of
// the first `gpus` GPUs at once (one thread each), best of three.
double H2DBandwidth(const float* host, size_t bytes, int gpus) {
  std::vector<void*> dst(gpus);
  for (int g = 0; g < gpus; ++g) {
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaMalloc(&dst[g], bytes));
  }
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int g = 0; g < gpus; ++g) {
      threads.emplace_back([&, g] {
        CHECK_CUDA(cudaSetDevice(g));
        CHECK_CUDA(cudaMemcpy(dst[g], reinterpret_cast<const char*>(host) + g * bytes, bytes,
                              cudaMemcpyHostToDevice));
      });
    }
    for (auto& t : threads) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, gpus * static_cast<double>(bytes) / s / 1e9);
  }
  for (int g = 0; g < gpus; ++g) {
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaFree(dst[g]));
  }
  CHECK_CUDA(cudaSetDevice(0));
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  int visible = 0;
  CHECK_CUDA(cudaGetDeviceCount(&visible));
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));

  quiver::KMeansOptions o;
  o.max_iterations = a.iters;
  o.tolerance = 0;
  o.init = quiver::KMeansInit::kGiven;
  o.device = quiver::Device::kGpu;
  o.precision = PrecisionOf(a.precision);
  std::vector<float> c0(a.k * a.d);
  {
    float* tmp = nullptr;
    CHECK_CUDA(cudaMalloc(&tmp, c0.size() * sizeof(float)));
    Generate(tmp, c0.size(), 0, a.d);
    CHECK_CUDA(cudaMemcpy(c0.data(), tmp, c0.size() * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaFree(tmp));
  }
  o.initial_centroids = c0.data();

  float* host = nullptr;
  if (a.host) {
    const size_t count = a.n * a.d;
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_CUDA(cudaHostAlloc(&host, count * sizeof(float), cudaHostAllocPortable));
    const size_t piece = size_t{1} << 28;  // 1 GiB of floats
    float* tmp = nullptr;
    CHECK_CUDA(cudaMalloc(&tmp, piece * sizeof(float)));
    for (size_t off = 0; off < count; off += piece) {
      const size_t m = std::min(piece, count - off);
      Generate(tmp, m, off, a.d);
      CHECK_CUDA(cudaMemcpy(host + off, tmp, m * sizeof(float), cudaMemcpyDeviceToHost));
    }
    CHECK_CUDA(cudaFree(tmp));
    const std::chrono::duration<double> prep_time = std::chrono::steady_clock::now() - t0;
    const double prep = prep_time.count();
    const size_t probe = size_t{4} << 30;
    std::printf("{\"gpu\":\"%s\",\"what\":\"pinned_h2d\",\"host_prepare_s\":%.1f", prop.name,
                prep);
    for (int g = 1; g <= visible; ++g) {
      std::printf(",\"gbps_%d_gpus\":%.1f", g, H2DBandwidth(host, probe, g));
    }
    std::printf("}\n");
    std::fflush(stdout);
  }

  double t1 = 0;
  for (int gpus : a.gpus) {
    if (gpus > visible) {
      std::printf("{\"gpus\":%d,\"error\":\"only %d GPUs visible\"}\n", gpus, visible);
      continue;
    }
    quiver::kernels::KMeansCudaConfig cfg;
    quiver::kernels::KMeansCudaTimings t;
    quiver::KMeansResult res;
    std::vector<float*> shard(gpus, nullptr);
    const quiver::Status s = [&]() -> quiver::Status {
      if (a.host) {
        cfg.force_streaming = true;
        o.devices.clear();
        for (int g = 0; g < gpus; ++g) o.devices.push_back(g);
        return quiver::kernels::KMeansCudaEx(o, host, quiver::kernels::KMeansInput::kF32, a.n,
                                             a.d, a.k, 1, cfg, &res, &t);
      }
      std::vector<quiver::kernels::DeviceShard> shards(gpus);
      for (int g = 0; g < gpus; ++g) {
        const size_t begin = a.n * g / gpus, end = a.n * (g + 1) / gpus;
        CHECK_CUDA(cudaSetDevice(g));
        CHECK_CUDA(cudaMalloc(&shard[g], (end - begin) * a.d * sizeof(float)));
        Generate(shard[g], (end - begin) * a.d, begin * a.d, a.d);
        CHECK_CUDA(cudaDeviceSynchronize());
        shards[g] = {g, shard[g], end - begin};
      }
      CHECK_CUDA(cudaSetDevice(0));
      // Warm-up (module load, communicators), then the measured run.
      quiver::KMeansOptions warm = o;
      warm.max_iterations = 2;
      const quiver::Status w = quiver::kernels::KMeansCudaSharded(
          warm, shards.data(), shards.size(), quiver::kernels::KMeansInput::kF32, a.d, a.k, cfg,
          &res, &t);
      if (!w.ok()) return w;
      return quiver::kernels::KMeansCudaSharded(o, shards.data(), shards.size(),
                                                quiver::kernels::KMeansInput::kF32, a.d, a.k,
                                                cfg, &res, &t);
    }();
    for (int g = 0; g < gpus; ++g) {
      if (shard[g] == nullptr) continue;
      CHECK_CUDA(cudaSetDevice(g));
      CHECK_CUDA(cudaFree(shard[g]));
    }
    CHECK_CUDA(cudaSetDevice(0));
    if (!s.ok()) {
      std::printf("{\"gpus\":%d,\"error\":\"%s\"}\n", gpus, s.ToString().c_str());
      std::fflush(stdout);
      continue;
    }
    const double ms = t.lloyd_ms / t.iterations;
    if (gpus == 1) t1 = ms;
    const double flops = 2.0 * a.n * a.k * a.d;
    std::printf("{\"impl\":\"quiver\",\"gpu\":\"%s\",\"gpus\":%d,\"n\":%zu,\"d\":%zu,\"k\":%zu,"
                "\"precision\":\"%s\",\"where\":\"%s\",\"iters\":%d,\"ms_per_iter\":%.2f,"
                "\"tflops\":%.1f,\"efficiency\":%.3f,\"setup_ms\":%.0f,\"h2d_gbps\":%.1f,"
                "\"objective\":%.6e}\n",
                prop.name, gpus, a.n, a.d, a.k, a.precision.c_str(),
                a.host ? "host-streamed" : "device", t.iterations, ms,
                flops / (ms * 1e-3) / 1e12, t1 > 0 ? t1 / (gpus * ms) : 0.0, t.setup_ms,
                t.h2d_gbps, res.objective.back());
    std::fflush(stdout);
  }
  if (host != nullptr) CHECK_CUDA(cudaFreeHost(host));
  return 0;
}
