#!/usr/bin/python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
"""plot_streaming: recall@10 (top row) and search QPS (bottom row) per search
step of every runbook, one column per runbook, one line per variant:
quiver maintained, quiver add-only, FAISS IVFFlat add-only, quiver full
rebuild before every search (the ceiling). Reads
bench/results/streaming_<runbook>_<variant>.json; writes
bench/results/streaming_recall.png and bench/results/streaming_summary.csv,
and prints the summary as a Markdown table (for docs/benchmarks.md).

Usage: /usr/bin/python3 bench/streaming/plot_streaming.py [--results DIR]
         [--runbooks fashion-mnist-drift,sift5k-drift] [--out PNG]
"""

import argparse
import json
import os
import sys

VARIANTS = [  # (file suffix, label, style)
    ("maintained", "quiver, maintenance on", dict(color="tab:blue", marker="o")),
    ("addonly", "quiver, add-only", dict(color="tab:orange", marker="s")),
    ("faiss", "FAISS IVFFlat, add-only", dict(color="tab:green", marker="^")),
    ("rebuild", "quiver, rebuild each search (ceiling)",
     dict(color="black", linestyle="--", marker="x")),
]


def load(results, runbook, variant):
    path = os.path.join(results, f"streaming_{runbook}_{variant}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def searches(run):
    return [s for s in run["steps"] if s["operation"] == "search"]


def summary_rows(results, runbooks):
    rows = []
    for rb in runbooks:
        runs = {v: load(results, rb, v) for v, _, _ in VARIANTS}
        ceiling = runs.get("rebuild")
        addonly = runs.get("addonly")
        for v, label, _ in VARIANTS:
            run = runs[v]
            if run is None:
                continue
            s, c = run["summary"], run["config"]
            gap = None
            if ceiling is not None and v != "rebuild":
                ceil = {x["step"]: x["recall"] for x in searches(ceiling)}
                gap = max(ceil[x["step"]] - x["recall"] for x in searches(run)
                          if x["step"] in ceil)
            qps = [x["ops_per_s"] for x in searches(run)]
            row = {
                "runbook": rb, "variant": v, "nlist": c["nlist"], "nprobe": c["nprobe"],
                "min_recall": s["min_recall"], "mean_recall": s["mean_recall"],
                "max_gap_to_ceiling": gap,
                "min_qps": min(qps), "last_qps": qps[-1],
                "ingest_seconds": s["ingest_seconds"],
                "ingest_vs_addonly": (s["ingest_seconds"] / addonly["summary"]["ingest_seconds"] - 1
                                      if addonly is not None and v == "maintained" else None),
                "maintenance_seconds": s.get("maintenance_seconds"),
                "background_per_ingest": ((s["maintenance_seconds"] + s["training_seconds"])
                                          / s["ingest_seconds"] if v == "maintained" else None),
                "training_seconds": s.get("training_seconds"),
                "trainings": s.get("trainings"), "splits": s.get("splits"),
                "merges": s.get("merges"), "final_partitions": s.get("final_partitions"),
                "rebuild_seconds": s.get("rebuild_seconds"),
            }
            lat = run.get("latency")
            if lat:
                row["idle_p99_us"] = lat["idle"]["p99_us"]
                row["reindex_p99_us"] = lat["during_reindex"]["p99_us"]
                row["idle_p50_us"] = lat["idle"]["p50_us"]
                row["reindex_p50_us"] = lat["during_reindex"]["p50_us"]
            rows.append(row)
    return rows


def fmt(v, digits=4):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="bench/results")
    p.add_argument("--runbooks", default="fashion-mnist-drift,sift5k-drift")
    p.add_argument("--out", default="")
    args = p.parse_args()
    runbooks = [r for r in args.runbooks.split(",") if r]

    rows = summary_rows(args.results, runbooks)
    cols = ["runbook", "variant", "nlist", "nprobe", "min_recall", "mean_recall",
            "max_gap_to_ceiling", "min_qps", "last_qps", "ingest_seconds", "ingest_vs_addonly",
            "maintenance_seconds", "training_seconds", "background_per_ingest", "trainings", "splits", "merges",
            "final_partitions", "rebuild_seconds", "idle_p50_us", "idle_p99_us",
            "reindex_p50_us", "reindex_p99_us"]
    with open(os.path.join(args.results, "streaming_summary.csv"), "w") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(fmt(r.get(c), 6) for c in cols) + "\n")
    md = ["| runbook | variant | min recall@10 | mean | worst gap to ceiling | min QPS | "
          "ingest s | partitions (end) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['runbook']} | {r['variant']} | {fmt(r['min_recall'])} | "
                  f"{fmt(r['mean_recall'])} | {fmt(r['max_gap_to_ceiling'], 2)} | "
                  f"{fmt(r['min_qps'], 4)} | {fmt(r['ingest_seconds'], 3)} | "
                  f"{fmt(r['final_partitions'])} |")
    print("\n".join(md))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_streaming: matplotlib missing (python3-matplotlib); summary written")
    present = [rb for rb in runbooks if any(load(args.results, rb, v) for v, _, _ in VARIANTS)]
    if not present:
        sys.exit("plot_streaming: no results found")
    fig, axes = plt.subplots(3, len(present), figsize=(6.5 * len(present), 10.5),
                             squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 2.2, 1.4]})
    for j, rb in enumerate(present):
        top, bottom, parts = axes[0][j], axes[1][j], axes[2][j]
        for v, label, style in VARIANTS:
            run = load(args.results, rb, v)
            if run is None:
                continue
            ss = searches(run)
            x = [s["step"] for s in ss]
            top.plot(x, [s["recall"] for s in ss], label=label, markersize=4, **style)
            bottom.plot(x, [s["ops_per_s"] for s in ss], label=label, markersize=4, **style)
            parts.plot(x, [s["partitions"] for s in ss], label=label, markersize=3, **style)
            c = run["config"]
        top.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
        top.set_title(f"{rb} (nlist {c['nlist']}, nprobe {c['nprobe']}, k {c['k']})")
        top.set_ylabel("recall@10")
        top.grid(alpha=0.3)
        bottom.set_yscale("log")
        bottom.set_ylabel("queries / s (SearchBatch, all cores)")
        parts.set_ylabel("partitions")
        parts.set_xlabel("runbook step (search steps)")
        parts.grid(alpha=0.3)
        bottom.grid(alpha=0.3, which="both")
        # Live count on a secondary axis of the QPS panel.
        ref = load(args.results, rb, "rebuild") or load(args.results, rb, "addonly")
        if ref is not None:
            ax2 = bottom.twinx()
            ax2.plot([s["step"] for s in ref["steps"]], [s["live"] for s in ref["steps"]],
                     color="grey", alpha=0.35, linewidth=1)
            ax2.set_ylabel("live vectors (grey)")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle("Streaming drift runbooks: recall@10, QPS and partitions per search step")
    fig.tight_layout()
    out = args.out or os.path.join(args.results, "streaming_recall.png")
    fig.savefig(out, dpi=110)
    print(f"plot_streaming: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
