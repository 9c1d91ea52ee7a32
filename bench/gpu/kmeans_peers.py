#!/usr/bin/env python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
"""GPU k-means peers on the same data and init as kmeans_gpu_bench: a plain
PyTorch Lloyd step (GEMM + argmin + index_add), Flash-KMeans and flashlib
(Triton). Writes the points as raw fp32 files for kmeans_gpu_bench, prints
one JSON line per measurement (also appended to --out).

ms/iter = (T(1 + iters) - T(1)) / iters for each peer, so that per-call setup
(norms, allocation) is excluded, after a warm-up call that compiles; each T is
the fastest of --reps timings.

  python3 kmeans_peers.py --peers .device --data-dir /tmp/km --out peers.jsonl \
      --shape 1048576,1024,128 --precision fp16 [--write-only] [--ceilings]
"""
import argparse, json, os, sys, time, types

import torch

p = argparse.ArgumentParser()
p.add_argument("--peers", default=".device")
p.add_argument("--data-dir", default="/tmp/km")
p.add_argument("--out", default="peers.jsonl")
p.add_argument("--shape", action="append", default=[], help="N,K,D[,B]")
p.add_argument("--precision", action="append", default=[], help="tf32 | fp16")
p.add_argument("--iters", type=int, default=10)
p.add_argument("--reps", type=int, default=3, help="timings of each call length; the fastest counts")
p.add_argument("--impl", action="append", default=[], help="torch | flash-kmeans | flashlib")
p.add_argument("--write-only", action="store_true")
p.add_argument("--ceilings", action="store_true")
p.add_argument("--compile-at-new-n", action="store_true")
a = p.parse_args()

# Flash-KMeans imports tqdm, which the GPU machine may lack.
if "tqdm" not in sys.modules:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        m = types.ModuleType("tqdm")
        m.tqdm = lambda it=None, *x, **kw: it
        m.trange = lambda *x, **kw: range(*x)
        sys.modules["tqdm"] = m
sys.path.insert(0, os.path.join(a.peers, "flashlib"))
sys.path.insert(0, os.path.join(a.peers, "flash-kmeans"))

torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
dev = torch.device("cuda")
gpu = torch.cuda.get_device_name(0)
os.makedirs(a.data_dir, exist_ok=True)


def emit(rec):
    rec["gpu"] = gpu
    line = json.dumps(rec)
    print(line, flush=True)
    with open(a.out, "a") as f:
        f.write(line + "\n")


def data_file(n, d, b):
    return os.path.join(a.data_dir, f"x_{b}x{n}x{d}.f32")


def points(n, d, b):
    """(B, N, D) fp32 on the GPU; written once to a raw file for quiver."""
    path = data_file(n, d, b)
    g = torch.Generator(device="cuda").manual_seed(1234 + n + d + b)
    x = torch.randn(b, n, d, device=dev, generator=g)
    if not os.path.exists(path):
        x.cpu().numpy().tofile(path)
    return x


def sync():
    torch.cuda.synchronize()


def timed(fn):
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def torch_lloyd(x, c0, iters):
    # x (B, N, D) in the compute dtype; centroids fp32, product in x's dtype.
    B, N, D = x.shape
    K = c0.shape[1]
    for b in range(B):
        xb = x[b]
        c = c0[b].float().clone()
        for _ in range(iters):
            cn = (c * c).sum(1)
            dist = cn[None, :] - 2.0 * (xb @ c.to(xb.dtype).T).float()
            ids = dist.argmin(1)
            s = torch.zeros(K, D, device=dev).index_add_(0, ids, xb.float())
            cnt = torch.bincount(ids, minlength=K).clamp_(min=1)
            c = s / cnt[:, None]


def run_peer(impl, x, K, c0, iters):
    if impl == "torch":
        return lambda it: torch_lloyd(x, c0, it)
    if impl == "flash-kmeans":
        from flash_kmeans import batch_kmeans_Euclid as fk
        return lambda it: fk(x, K, max_iters=it, tol=-1.0, init_centroids=c0.clone())
    if impl == "flashlib":
        from flashlib.primitives.kmeans.triton.kmeans import batch_kmeans_Euclid as fl
        return lambda it: fl(x, K, max_iters=it, tol=0.0, init_centroids=c0.clone())
    raise ValueError(impl)


def ceilings():
    for dt, name in ((torch.bfloat16, "bf16"), (torch.float32, "tf32")):
        m = torch.randn(8192, 8192, device=dev).to(dt)
        for _ in range(3):
            m @ m
        reps = 10
        t = timed(lambda: [m @ m for _ in range(reps)])
        emit({"impl": "ceiling", "what": f"{name}_gemm_tflops", "value": 2 * 8192**3 * reps / t / 1e12})
    big = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(big)
    dst.copy_(big)
    t = timed(lambda: [dst.copy_(big) for _ in range(10)])
    emit({"impl": "ceiling", "what": "d2d_copy_gbps", "value": 2 * (1 << 30) * 10 / t / 1e9})
    h = torch.empty(1 << 30, dtype=torch.uint8).pin_memory()
    big.copy_(h, non_blocking=True)
    t = timed(lambda: [big.copy_(h, non_blocking=True) for _ in range(5)])
    emit({"impl": "ceiling", "what": "pinned_h2d_gbps", "value": (1 << 30) * 5 / t / 1e9})


if a.ceilings:
    ceilings()

impls = a.impl or ["torch", "flash-kmeans", "flashlib"]
precs = a.precision or ["tf32", "fp16"]
for shape in a.shape:
    parts = [int(v) for v in shape.split(",")]
    N, K, D = parts[:3]
    B = parts[3] if len(parts) > 3 else 1
    x32 = points(N, D, B)
    if a.write_only:
        del x32
        continue
    for prec in precs:
        x = x32 if prec == "tf32" else x32.half()
        c0 = x[:, :K, :].clone()
        for impl in impls:
            rec = {"impl": impl, "n": N, "k": K, "d": D, "batch": B, "precision": prec,
                   "input": "f32" if prec == "tf32" else "f16"}
            try:
                run = run_peer(impl, x, K, c0, a.iters)
                rec["first_call_s"] = timed(lambda: run(1))
                t1 = min(timed(lambda: run(1)) for _ in range(a.reps))
                tn = min(timed(lambda: run(1 + a.iters)) for _ in range(a.reps))
                ms = (tn - t1) / a.iters * 1e3
                rec["ms_per_iter"] = ms
                rec["tflops"] = 2.0 * B * N * K * D / (ms * 1e-3) / 1e12
            except torch.cuda.OutOfMemoryError:
                rec["error"] = "out of memory"
            except Exception as e:  # report, keep going
                rec["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            torch.cuda.empty_cache()
            emit(rec)
        del x, c0
    del x32
    torch.cuda.empty_cache()

if a.compile_at_new_n:
    # A database meets new N all the time: first call at an unseen N.
    for impl in ("flash-kmeans", "flashlib"):
        N = 1_000_003
        x = torch.randn(1, N, 128, device=dev).half()
        c0 = x[:, :1024, :].clone()
        run = run_peer(impl, x, 1024, c0, 1)
        first = timed(lambda: run(1))
        again = timed(lambda: run(1))
        emit({"impl": impl, "what": "first_call_new_n", "n": N, "k": 1024, "d": 128,
              "precision": "fp16", "first_call_s": first, "steady_call_s": again})
