#!/usr/bin/python3
"""Plots recall@10 (x) against QPS (log y) from search_peers' CSV.

Usage: /usr/bin/python3 bench/db/plot_search.py [CSV] [PNG]
Defaults: bench/results/search_fashion_mnist.csv -> .png beside it.
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "quiver": "quiver (SearchBatch)",
    "faiss-ivfflat": "FAISS IVFFlat (own k-means)",
    "faiss-ivfflat-qc": "FAISS IVFFlat (quiver's centroids)",
}
STYLES = {
    "quiver": dict(color="tab:red", marker="o"),
    "faiss-ivfflat": dict(color="tab:blue", marker="s"),
    "faiss-ivfflat-qc": dict(color="tab:green", marker="^", linestyle="--"),
}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/search_fashion_mnist.csv"
    dst = sys.argv[2] if len(sys.argv) > 2 else src.rsplit(".", 1)[0] + ".png"
    curves = defaultdict(list)
    with open(src) as f:
        for row in csv.DictReader(f):
            curves[row["system"]].append(
                (float(row["recall_at_10"]), float(row["qps"]), int(row["nprobe"])))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for system, pts in curves.items():
        pts.sort(key=lambda p: p[2])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=LABELS.get(system, system),
                **STYLES.get(system, {}))
        if system == "quiver":
            for r, q, nprobe in pts:
                ax.annotate(str(nprobe), (r, q), textcoords="offset points", xytext=(4, 4),
                            fontsize=7, color="tab:red")
    ax.axvline(0.95, color="gray", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (batch of 10,000, 2 cores)")
    ax.set_title("Fashion-MNIST 60K x 784, L2, nlist 256 (labels: nprobe)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=120)
    print("wrote", dst)


if __name__ == "__main__":
    main()
