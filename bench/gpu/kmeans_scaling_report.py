#!/usr/bin/env python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
"""CSV, markdown table and plot of a kmeans_scaling_bench run (JSON lines).

    /usr/bin/python3 bench/gpu/kmeans_scaling_report.py bench/results/kmeans_scaling_2xh200.jsonl
"""
import json, sys

src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/kmeans_scaling_2xh200.jsonl"
stem = src.rsplit(".", 1)[0]
runs, bandwidth = [], None
for line in open(src):
    r = json.loads(line)
    if r.get("what") == "pinned_h2d":
        bandwidth = r
    elif "ms_per_iter" in r:
        runs.append(r)
cols = ["gpu", "where", "precision", "n", "d", "k", "gpus", "ms_per_iter", "tflops", "efficiency",
        "h2d_gbps"]
with open(stem + ".csv", "w") as f:
    f.write(",".join(cols) + "\n")
    for r in runs:
        f.write(",".join(str(r[c]) for c in cols) + "\n")
print("| points | N | precision | GPUs | ms / iteration | TFLOP/s | speed-up | efficiency | H2D GB/s |")
print("|---|---|---|---|---|---|---|---|---|")
base = {}
for r in runs:
    key = (r["where"], r["n"], r["precision"])
    base.setdefault(key, r["ms_per_iter"] * r["gpus"])
    print(f"| {r['where']} | {r['n']:,} | {r['precision']} | {r['gpus']} | {r['ms_per_iter']:.1f} | "
          f"{r['tflops']:.0f} | {base[key] / r['ms_per_iter']:.2f}x | {r['efficiency']:.2f} | "
          f"{r['h2d_gbps'] or '-'} |")
if bandwidth:
    print("pinned H2D:", {k: v for k, v in bandwidth.items() if k.startswith("gbps")})
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {}
    for r in runs:
        groups.setdefault((r["where"], r["n"], r["precision"]), []).append(r)
    for (where, n, prec), rs in groups.items():
        g = [r["gpus"] for r in rs]
        speed = [rs[0]["ms_per_iter"] * rs[0]["gpus"] / r["ms_per_iter"] for r in rs]
        ax.plot(g, speed, "o-", label=f"{where}, N={n:,}, {prec} ({rs[0]['ms_per_iter']:.0f} ms on 1)")
    top = max(r["gpus"] for r in runs)
    ax.plot([1, top], [1, top], "k--", lw=0.8, label="linear")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("speed-up over 1 GPU (ms/iteration)")
    ax.set_xticks(range(1, top + 1))
    ax.set_title(f"quiver k-means, D=128, K=8192, {runs[0]['gpu']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)
    print("plot:", stem + ".png")
except ImportError:
    print("matplotlib not installed: no plot")
