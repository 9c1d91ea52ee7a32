#!/usr/bin/python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
"""faiss_runner: the FAISS peer of streaming_runner on the same runbook.

FAISS IndexIVFFlat (L2), trained once on the first insert batch with
--nlist lists (FAISS's own k-means), then add-only: inserts add_with_ids,
deletes remove_ids(IDSelectorRange), replaces remove then add. Searches at
--nprobe. Per step it records what streaming_runner records (same CSV
columns; quiver-only columns stay empty) plus the vectors scanned per query
(faiss.cvar.indexIVF_stats.ndis) and the list imbalance (largest / mean).

Ground truth: exact k-NN over the live ids with faiss.IndexFlatL2 (BLAS), a
computation independent of streaming_runner's. When streaming_runner's
cache for this runbook exists (--gt-cache), the two are compared and the
agreement (mean recall of one against the other) is recorded.

Run with Debian's python (/usr/bin/python3: python3-faiss, python3-numpy,
python3-yaml), and install libopenblas0-pthread first (see
/work/shared/peers/README.md: the reference BLAS makes FAISS look slow).

Usage: /usr/bin/python3 bench/streaming/faiss_runner.py --runbook YAML
         --data FVECS --queries FVECS [--dataset NAME] [--nlist 64]
         [--nprobe 4] [--k 10] [--out PREFIX] [--gt-cache DIR]
         [--search-repeats 1] [--threads N]
Writes PREFIX.csv and PREFIX.json (default
bench/results/streaming_<dataset>_faiss).
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np

try:
    import faiss
    import yaml
except ImportError as e:  # another python earlier on PATH
    sys.exit(f"faiss_runner: {e}; run with /usr/bin/python3 (python3-faiss, python3-yaml)")

GT_MAGIC = 0x5147545354524541
CSV_HEADER = ("runbook,variant,step,operation,count,live,seconds,ops_per_s,recall_at_k,qps,"
              "rebuild_seconds,epoch,partitions,trainings,training_seconds,splits,merges,"
              "compactions,reassigned,maintenance_seconds,imbalance,tombstones,drift,"
              "scanned_per_query")


def load_runbook(path, dataset):
    """Steps of the big-ann-benchmarks streaming format (see runbook.h)."""
    with open(path) as f:
        root = yaml.safe_load(f)
    if not isinstance(root, dict) or not root:
        raise ValueError(f"{path}: not a runbook")
    if not dataset:
        if len(root) != 1:
            raise ValueError(f"{path}: several datasets; pass --dataset")
        dataset = next(iter(root))
    book = root[dataset]
    max_pts = int(book["max_pts"])
    steps, i = [], 1
    while i in book:
        e = dict(book[i])
        op = e.get("operation")
        keys = {"insert": ("start", "end"), "delete": ("start", "end"), "search": (),
                "replace": ("tags_start", "tags_end", "ids_start", "ids_end")}.get(op)
        if keys is None:
            raise ValueError(f"{path}: step {i}: unknown operation {op!r}")
        for key in keys:
            if not 0 <= int(e[key]) <= max_pts:
                raise ValueError(f"{path}: step {i}: {key} out of range")
        e["number"] = i
        steps.append(e)
        i += 1
    return dataset, max_pts, steps


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    rows = raw.reshape(-1, d + 1)
    if not np.all(rows[:, 0] == d):
        raise ValueError(f"{path}: mixed dimensions")
    return np.ascontiguousarray(rows[:, 1:]).view(np.float32)


def load_cpp_gt(path):
    """streaming_runner's ground-truth cache: {step: (nq, k) int64 ids}."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        head = struct.unpack("<5q", f.read(40))
        if head[0] != struct.unpack("<q", struct.pack("<Q", GT_MAGIC))[0]:
            return None
        n, nq, k = head[1], head[2], head[3]
        out = {}
        for _ in range(n):
            step = struct.unpack("<q", f.read(8))[0]
            out[step] = np.frombuffer(f.read(nq * k * 8), dtype=np.int64).reshape(nq, k)
        return out


def recall(truth, got):
    """Mean over queries of |got ∩ truth| / |truth| (-1 pads truth)."""
    total = 0.0
    for t, g in zip(truth, got):
        t = t[t >= 0]
        total += 1.0 if t.size == 0 else np.intersect1d(t, g).size / t.size
    return total / len(truth)


def imbalance(index):
    sizes = np.array([index.invlists.list_size(i) for i in range(index.nlist)])
    return float(sizes.max() / sizes.mean()) if sizes.sum() else 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runbook", required=True)
    p.add_argument("--dataset", default="")
    p.add_argument("--data", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--nlist", type=int, default=64)
    p.add_argument("--nprobe", type=int, default=4)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default="")
    p.add_argument("--gt-cache", default="/tmp/quiver_streaming_gt")
    p.add_argument("--search-repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()

    faiss.omp_set_num_threads(args.threads)
    dataset, max_pts, steps = load_runbook(args.runbook, args.dataset)
    data = read_fvecs(args.data)
    queries = read_fvecs(args.queries)
    if len(data) < max_pts:
        sys.exit(f"faiss_runner: data has {len(data)} rows, max_pts is {max_pts}")
    d, nq, k = data.shape[1], len(queries), args.k
    prefix = args.out or f"bench/results/streaming_{dataset}_faiss"
    cpp_gt = load_cpp_gt(os.path.join(args.gt_cache, f"gt_{dataset}.bin"))

    row_of = np.full(max_pts, -1, dtype=np.int64)  # id -> data row, -1 when not live
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, args.nlist, faiss.METRIC_L2)
    index.cp.seed = 1234
    rows, agreements = [], []
    ingest_s = search_s = train_s = gt_s = 0.0
    ingested = 0
    t_run = time.perf_counter()
    for st in steps:
        op = st["operation"]
        row = {"step": st["number"], "operation": op, "seconds": 0.0, "recall": None,
               "ops_per_s": None, "scanned_per_query": None}
        if op in ("insert", "delete", "replace"):
            if op == "replace":
                ids = np.arange(st["tags_start"], st["tags_end"], dtype=np.int64)
                src = np.arange(st["ids_start"], st["ids_end"], dtype=np.int64)
            else:
                ids = np.arange(st["start"], st["end"], dtype=np.int64)
                src = ids
            if op == "insert" and not index.is_trained:
                # Train on the first batch (not counted as ingest).
                t0 = time.perf_counter()
                index.train(data[src])
                train_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            if op in ("delete", "replace") and ids.size:
                index.remove_ids(faiss.IDSelectorRange(int(ids[0]), int(ids[-1]) + 1))
            if op in ("insert", "replace") and ids.size:
                index.add_with_ids(data[src], ids)
            row["seconds"] = time.perf_counter() - t0
            row_of[ids] = -1 if op == "delete" else src
            row["count"] = int(ids.size)
            row["ops_per_s"] = ids.size / row["seconds"] if row["seconds"] > 0 else 0.0
            ingest_s += row["seconds"]
            ingested += int(ids.size)
        else:
            index.nprobe = args.nprobe
            best, got = float("inf"), None
            for r in range(args.search_repeats):
                faiss.cvar.indexIVF_stats.reset()
                t0 = time.perf_counter()
                _, I = index.search(queries, k)
                best = min(best, time.perf_counter() - t0)
                if r == 0:
                    got = I
                    row["scanned_per_query"] = faiss.cvar.indexIVF_stats.ndis / nq
            row["seconds"] = best
            row["count"] = nq
            row["ops_per_s"] = nq / best
            search_s += best
            # Exact ground truth over the live set.
            t0 = time.perf_counter()
            live_ids = np.flatnonzero(row_of >= 0)
            flat = faiss.IndexFlatL2(d)
            flat.add(data[row_of[live_ids]])
            _, J = flat.search(queries, min(k, live_ids.size))
            truth = np.full((nq, k), -1, dtype=np.int64)
            truth[:, :J.shape[1]] = np.where(J >= 0, live_ids[np.maximum(J, 0)], -1)
            gt_s += time.perf_counter() - t0
            row["recall"] = recall(truth, got)
            if cpp_gt is not None and st["number"] in cpp_gt:
                agreements.append(recall(cpp_gt[st["number"]], truth))
            print(f"[{dataset} faiss] step {st['number']}: live {int((row_of >= 0).sum())} "
                  f"recall@{k} {row['recall']:.4f} qps {row['ops_per_s']:.0f} "
                  f"scanned/query {row['scanned_per_query']:.0f}", file=sys.stderr)
        row["live"] = int((row_of >= 0).sum())
        row["partitions"] = args.nlist if index.is_trained else 0
        row["imbalance"] = imbalance(index) if index.is_trained else None
        rows.append(row)
    run_s = time.perf_counter() - t_run

    recalls = [r["recall"] for r in rows if r["operation"] == "search"]
    summary = {
        "search_steps": len(recalls),
        "min_recall": min(recalls) if recalls else None,
        "mean_recall": float(np.mean(recalls)) if recalls else None,
        "ingest_seconds": ingest_s, "ingested_ops": ingested, "search_seconds": search_s,
        "rebuild_seconds": 0.0, "first_training_seconds": train_s, "run_seconds": run_s,
        "ground_truth_seconds": gt_s,
        "ground_truth_agreement_min": min(agreements) if agreements else None,
        "ground_truth_agreement_steps": len(agreements),
        "final_partitions": args.nlist,
    }
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump({"system": "faiss", "faiss_version": faiss.__version__, "runbook": dataset,
                   "runbook_file": args.runbook, "variant": "faiss",
                   "config": {"nlist": args.nlist, "nprobe": args.nprobe, "k": k,
                              "index": "IndexIVFFlat", "trained_on_first_batch": True,
                              "queries": nq, "dim": d, "threads": args.threads,
                              "search_repeats": args.search_repeats},
                   "summary": summary, "latency": None, "steps": rows}, f, indent=1)

    def fmt(v):
        return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

    with open(prefix + ".csv", "w") as f:
        f.write(CSV_HEADER + "\n")
        for r in rows:
            search = r["operation"] == "search"
            f.write(",".join([
                dataset, "faiss", str(r["step"]), r["operation"], str(r["count"]),
                str(r["live"]), fmt(r["seconds"]), "" if search else fmt(r["ops_per_s"]),
                fmt(r["recall"]), fmt(r["ops_per_s"]) if search else "", "", "",
                str(r["partitions"]), "1" if r["partitions"] else "0", fmt(train_s),
                "", "", "", "", "", fmt(r["imbalance"]), "", "", fmt(r["scanned_per_query"]),
            ]) + "\n")
    agree = summary["ground_truth_agreement_min"]
    print(f"[{dataset} faiss] {len(recalls)} search steps, recall min {summary['min_recall']:.4f} "
          f"mean {summary['mean_recall']:.4f}; ingest {ingest_s:.2f} s, search {search_s:.2f} s, "
          f"ground truth {gt_s:.2f} s"
          + (f", agreement with streaming_runner's ground truth min {agree:.4f}"
             if agree is not None else "") + f" -> {prefix}.{{csv,json}}", file=sys.stderr)


if __name__ == "__main__":
    main()
