// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// ms per Lloyd iteration of quiver's CUDA k-means, one shape per line of
// JSON on stdout. The points come from a raw fp32 file written by
// bench/gpu/kmeans_peers.py (so that quiver and the peers see the same data)
// or, without --data, from a device-side normal generator; the initial
// centroids are the first k points (as for the peers).
//
//   kmeans_gpu_bench --data x.f32 --n 1048576 --d 128 --k 1024 \
//       --precision fp16 --input f16 --iters 10 [--batch 32] [--host]
//       [--stream] [--chunk 4194304]
//
// --host keeps the points in pinned host memory (streamed when --stream or
// when they do not fit); otherwise they live on the GPU (data_on_device).

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/gpu/bench_cuda.cuh"
#include "kernels/cuda/kmeans_cuda_ex.h"
#include "quiver/kmeans.h"

namespace {

using quiver::bench::Mix;

__global__ void normal_kernel(float* x, size_t count, uint64_t seed) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const uint64_t h = Mix(seed ^ Mix(i));
  const float u1 = (static_cast<float>(h >> 40) + 1.f) * (1.f / 16777217.f);
  const float u2 = static_cast<float>((h >> 8) & 0xffffff) * (1.f / 16777216.f);
  x[i] = sqrtf(-2.f * logf(u1)) * cospif(2.f * u2);
}

__global__ void to_half_kernel(const float* x, __half* y, size_t count) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) y[i] = __float2half_rn(x[i]);
}

struct Args {
  std::string data;
  size_t n = 1 << 20, d = 128, k = 1024, batch = 1, chunk = 0;
  std::string precision = "tf32", input = "f32";
  int iters = 10;
  bool host = false, stream = false;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (s == "--data") a.data = next();
    else if (s == "--n") a.n = std::stoull(next());
    else if (s == "--d") a.d = std::stoull(next());
    else if (s == "--k") a.k = std::stoull(next());
    else if (s == "--batch") a.batch = std::stoull(next());
    else if (s == "--chunk") a.chunk = std::stoull(next());
    else if (s == "--precision") a.precision = next();
    else if (s == "--input") a.input = next();
    else if (s == "--iters") a.iters = std::stoi(next());
    else if (s == "--host") a.host = true;
    else if (s == "--stream") a.stream = true;
    else { std::fprintf(stderr, "unknown argument %s\n", s.c_str()); std::exit(2); }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  const size_t count = a.batch * a.n * a.d;
  quiver::KMeansOptions o;
  o.max_iterations = a.iters;
  o.tolerance = 0;
  o.init = quiver::KMeansInit::kGiven;
  o.device = quiver::Device::kGpu;
  o.precision = a.precision == "fp32"   ? quiver::KMeansPrecision::kFp32
                : a.precision == "tf32" ? quiver::KMeansPrecision::kTf32
                : a.precision == "fp16" ? quiver::KMeansPrecision::kFp16
                                        : quiver::KMeansPrecision::kBf16;
  const bool half_in = a.input == "f16";
  const size_t esize = half_in ? 2 : 4;

  // fp32 points on the device (from the file or generated).
  float* d32 = nullptr;
  CHECK_CUDA(cudaMalloc(&d32, count * sizeof(float)));
  if (!a.data.empty()) {
    FILE* f = std::fopen(a.data.c_str(), "rb");
    if (f == nullptr) { std::perror(a.data.c_str()); return 1; }
    const size_t piece = size_t{1} << 26;
    std::vector<float> buf(piece);
    for (size_t off = 0; off < count; off += piece) {
      const size_t m = std::min(piece, count - off);
      if (std::fread(buf.data(), sizeof(float), m, f) != m) {
        std::fprintf(stderr, "short read from %s\n", a.data.c_str());
        return 1;
      }
      CHECK_CUDA(cudaMemcpy(d32 + off, buf.data(), m * sizeof(float), cudaMemcpyHostToDevice));
    }
    std::fclose(f);
  } else {
    normal_kernel<<<static_cast<unsigned>((count + 255) / 256), 256>>>(d32, count, 1234);
    CHECK_CUDA(cudaGetLastError());
  }
  void* points = d32;
  __half* d16 = nullptr;
  if (half_in) {
    CHECK_CUDA(cudaMalloc(&d16, count * sizeof(__half)));
    to_half_kernel<<<static_cast<unsigned>((count + 255) / 256), 256>>>(d32, d16, count);
    CHECK_CUDA(cudaGetLastError());
    points = d16;
  }
  // Initial centroids: the first k points of each problem (rounded as input).
  std::vector<float> c0(a.batch * a.k * a.d);
  {
    std::vector<float> tmp(a.k * a.d);
    for (size_t b = 0; b < a.batch; ++b) {
      CHECK_CUDA(cudaMemcpy(tmp.data(), d32 + b * a.n * a.d, tmp.size() * sizeof(float),
                            cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < tmp.size(); ++i) {
        c0[b * a.k * a.d + i] = half_in ? __half2float(__float2half_rn(tmp[i])) : tmp[i];
      }
    }
  }
  o.initial_centroids = c0.data();

  void* host = nullptr;
  if (a.host) {
    CHECK_CUDA(cudaMallocHost(&host, count * esize));
    CHECK_CUDA(cudaMemcpy(host, points, count * esize, cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaFree(d32));
    d32 = nullptr;
    if (d16 != nullptr) CHECK_CUDA(cudaFree(d16));
    d16 = nullptr;
    points = host;
  } else {
    o.data_on_device = true;
    if (half_in) {
      CHECK_CUDA(cudaFree(d32));
      d32 = nullptr;
    }
  }

  quiver::kernels::KMeansCudaConfig cfg;
  cfg.force_streaming = a.stream;
  cfg.chunk_points = a.chunk;
  std::vector<quiver::KMeansResult> res(a.batch);
  quiver::kernels::KMeansCudaTimings t;
  const quiver::kernels::KMeansInput in =
      half_in ? quiver::kernels::KMeansInput::kF16 : quiver::kernels::KMeansInput::kF32;
  // Warm-up call (module load, first allocations), then the measured one.
  quiver::KMeansOptions warm = o;
  warm.max_iterations = a.stream ? 1 : 2;
  quiver::Status s = quiver::kernels::KMeansCudaEx(warm, points, in, a.n, a.d, a.k, a.batch,
                                                   cfg, res.data(), &t);
  if (s.ok()) {
    s = quiver::kernels::KMeansCudaEx(o, points, in, a.n, a.d, a.k, a.batch, cfg, res.data(), &t);
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  if (!s.ok()) {
    std::printf("{\"impl\":\"quiver\",\"n\":%zu,\"d\":%zu,\"k\":%zu,\"batch\":%zu,"
                "\"precision\":\"%s\",\"input\":\"%s\",\"error\":\"%s\"}\n",
                a.n, a.d, a.k, a.batch, a.precision.c_str(), a.input.c_str(),
                s.ToString().c_str());
    return 1;
  }
  const double ms = t.lloyd_ms / t.iterations;
  const double flops = 2.0 * a.batch * a.n * a.k * a.d;
  std::printf("{\"impl\":\"quiver\",\"gpu\":\"%s\",\"n\":%zu,\"d\":%zu,\"k\":%zu,\"batch\":%zu,"
              "\"precision\":\"%s\",\"input\":\"%s\",\"where\":\"%s\",\"iters\":%d,"
              "\"ms_per_iter\":%.4f,\"tflops\":%.1f,\"setup_ms\":%.1f,\"h2d_gbps\":%.1f,"
              "\"objective\":%.6e}\n",
              prop.name, a.n, a.d, a.k, a.batch, a.precision.c_str(), a.input.c_str(),
              t.streamed ? "host-streamed" : (a.host ? "host-resident" : "device"), t.iterations,
              ms, flops / (ms * 1e-3) / 1e12, t.setup_ms, t.h2d_gbps,
              res[0].objective.back());
  if (host != nullptr) CHECK_CUDA(cudaFreeHost(host));
  if (d32 != nullptr) CHECK_CUDA(cudaFree(d32));
  if (d16 != nullptr) CHECK_CUDA(cudaFree(d16));
  return 0;
}
