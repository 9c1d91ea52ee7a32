#!/usr/bin/env python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
"""Table (CSV + markdown) and plot of bench/results/kmeans_gpu_*.jsonl."""
import json, sys

src = sys.argv[1] if len(sys.argv) > 1 else "bench/results/kmeans_gpu_h100.jsonl"
stem = src.rsplit(".", 1)[0]
rows, extra = {}, []
for line in open(src):
    r = json.loads(line)
    if r.get("impl") == "ceiling" or "what" in r:
        extra.append(r)
        continue
    key = (r["n"], r["k"], r["d"], r.get("batch", 1), r["precision"], r.get("where", "device"))
    rows.setdefault(key, {})[r["impl"]] = r.get("ms_per_iter", r.get("error"))
impls = ["quiver", "flashlib", "flash-kmeans", "torch"]
with open(stem + ".csv", "w") as f:
    f.write("n,k,d,batch,precision,where," + ",".join(impls) + "\n")
    for k in sorted(rows):
        f.write(",".join(map(str, k)) + "," +
                ",".join(str(rows[k].get(i, "")) for i in impls) + "\n")
print("| N | K | D | B | precision | where | " + " | ".join(impls) + " | quiver / best peer |")
print("|" + "---|" * (7 + len(impls)))
fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else (v or "-")
for k in sorted(rows):
    v = rows[k]
    peers = [v[i] for i in impls[1:] if isinstance(v.get(i), float)]
    ratio = f"{v['quiver'] / min(peers):.2f}x" if peers and isinstance(v.get("quiver"), float) else "-"
    print(f"| {k[0]:,} | {k[1]:,} | {k[2]} | {k[3]} | {k[4]} | {k[5]} | " +
          " | ".join(fmt(v.get(i)) for i in impls) + f" | {ratio} |")
for e in extra:
    print(e)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(15, 5))
    for ax, prec in zip(axes, ("fp16", "tf32")):
        keys = [k for k in sorted(rows) if k[4] == prec and k[5] == "device"]
        xs = range(len(keys))
        w = 0.2
        for j, impl in enumerate(impls):
            vals = [rows[k].get(impl) for k in keys]
            ax.bar([x + (j - 1.5) * w for x in xs],
                   [v if isinstance(v, float) else 0 for v in vals], w, label=impl)
        ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{k[0]//1024}K x {k[1]}\nD{k[2]}" + (f" B{k[3]}" if k[3] > 1 else "")
                            for k in keys], fontsize=7)
        ax.set_ylabel("ms per Lloyd iteration (log)")
        ax.set_title(f"{prec} products, H100 80GB HBM3")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)
except ImportError:
    print("matplotlib missing: no plot")
