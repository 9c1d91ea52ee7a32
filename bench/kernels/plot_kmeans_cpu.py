#!/usr/bin/python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
#
# Plots bench/results/kmeans_cpu_peers.json (written by kmeans_peers):
# milliseconds per Lloyd iteration of each implementation per data set, and
# the final objective relative to quiver's.
#
#   /usr/bin/python3 bench/kernels/plot_kmeans_cpu.py [results.json] [out.png]
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/kmeans_cpu_peers.json"
out = sys.argv[2] if len(sys.argv) > 2 else "bench/results/kmeans_cpu_peers.png"
with open(src) as f:
    doc = json.load(f)
runs = doc["runs"]
configs = []
for r in runs:
    key = (r["dataset"], r["n"], r["d"], r["k"])
    if key not in configs:
        configs.append(key)
impls = []
for r in runs:
    if r["impl"] not in impls:
        impls.append(r["impl"])
colors = {"quiver": "#1f77b4", "quiver-plain": "#9ecae1", "faiss": "#d62728", "faiss-avx2": "#8c1c13",
          "sklearn": "#ff7f0e"}

fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
width = 0.8 / len(impls)
for i, impl in enumerate(impls):
    ys, rel = [], []
    for c in configs:
        match = [r for r in runs if (r["dataset"], r["n"], r["d"], r["k"]) == c and r["impl"] == impl]
        q = [r for r in runs if (r["dataset"], r["n"], r["d"], r["k"]) == c and r["impl"] == "quiver"]
        ys.append(match[0]["ms_per_iter"] if match else 0)
        if match and q and match[0]["final_objective"] and q[0]["final_objective"]:
            rel.append(match[0]["final_objective"] / q[0]["final_objective"])
        else:
            rel.append(float("nan"))
    xs = [j + (i - (len(impls) - 1) / 2) * width for j in range(len(configs))]
    bars = ax.bar(xs, ys, width, label=impl, color=colors.get(impl))
    for b, y in zip(bars, ys):
        ax.annotate(f"{y:.0f}" if y >= 10 else f"{y:.1f}", (b.get_x() + b.get_width() / 2, y),
                    ha="center", va="bottom", fontsize=7)
    ax2.plot(range(len(configs)), rel, "o-", label=impl, color=colors.get(impl))
labels = [f"{c[0]}\nn={c[1]} d={c[2]}\nk={c[3]}" for c in configs]
ax.set_xticks(range(len(configs)))
ax.set_xticklabels(labels, fontsize=8)
ax.set_yscale("log")
ax.set_ylabel("ms per Lloyd iteration (log)")
ax.set_title(f"CPU k-means, {doc.get('iterations', 10)} iterations, same init, best of the runs\n{doc.get('machine', '')}",
             fontsize=9)
ax.legend(fontsize=8)
ax2.set_xticks(range(len(configs)))
ax2.set_xticklabels(labels, fontsize=8)
ax2.set_ylabel("final objective / quiver's")
ax2.set_title("objective after the same iterations", fontsize=9)
ax2.ticklabel_format(axis="y", useOffset=False)
ax2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out, dpi=120)
print("wrote", out)
