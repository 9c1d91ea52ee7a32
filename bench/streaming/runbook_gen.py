#!/usr/bin/python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
"""runbook_gen: drift runbooks from real data, in the big-ann-benchmarks
NeurIPS'23 streaming format.

A runbook is YAML: one top-level key (the dataset name) holding `max_pts` and
steps numbered from 1, each with `operation` = insert | delete | search |
replace. insert/delete take `start`/`end` (half-open range of row indices of
the data file, which are also the ids); replace takes `tags_start`/`tags_end`
(the ids whose vectors change) and `ids_start`/`ids_end` (the rows that hold
the new vectors). The data file is written in insertion order, so every
insert is a contiguous range.

Two runbooks:
  fashion-mnist-drift  Fashion-MNIST's 60,000 train images, inserted class by
                       class (the labels are the clusters) in --rounds rounds
                       (each round inserts 1/rounds of every class); after
                       each round --delete-fraction of the live vectors is
                       deleted (the oldest rows of every live chunk). Queries:
                       the first --queries test images (all classes).
  sift5k-drift         SIFT 5K minus --queries held-out query vectors,
                       clustered with k-means (--clusters), inserted cluster
                       by cluster, then the first --delete-clusters clusters
                       deleted one by one.
A search step follows every --search-every inserts and every delete phase.

Usage:
  /usr/bin/python3 bench/streaming/runbook_gen.py fashion --out-dir DIR \
      --yaml bench/streaming/runbooks/fashion_mnist_drift.yaml
  /usr/bin/python3 bench/streaming/runbook_gen.py sift --out-dir DIR \
      --yaml bench/streaming/runbooks/sift5k_drift.yaml
Writes DIR/<name>.fvecs (data in row = id order), DIR/<name>_queries.fvecs,
DIR/<name>_rows.json (label / cluster of every row, for reference) and the
YAML. Deterministic for a given --seed.
"""

import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """Reads an IDX file (gzip or not): uint8 images (0x803) or labels (0x801)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for an IDX header")
    magic, count = struct.unpack(">II", raw[:8])
    if magic == 0x00000801:
        labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
        if labels.size != count:
            raise ValueError(f"{path}: header says {count} labels, file holds {labels.size}")
        return labels
    if magic == 0x00000803:
        rows, cols = struct.unpack(">II", raw[8:16])
        pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
        if pixels.size != count * rows * cols:
            raise ValueError(f"{path}: header says {count}x{rows}x{cols}, file holds {pixels.size}")
        return pixels.reshape(count, rows * cols).astype(np.float32)
    raise ValueError(f"{path}: unknown IDX magic {magic:#010x}")


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    if raw.size == 0:
        raise ValueError(f"{path}: empty")
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        raise ValueError(f"{path}: not an fvecs file")
    rows = raw.reshape(-1, d + 1)
    if not np.all(rows[:, 0] == d):
        raise ValueError(f"{path}: mixed dimensions")
    return rows[:, 1:].copy().view(np.float32)


def write_fvecs(path, x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    out = np.empty((n, d + 1), dtype=np.float32)
    out[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    out[:, 1:] = x
    tmp = path + ".tmp"
    out.tofile(tmp)
    os.replace(tmp, path)


class Runbook:
    """Collects steps; ids are rows of the reordered data file."""

    def __init__(self):
        self.steps = []
        self.live = 0

    def insert(self, start, end):
        self.steps.append({"operation": "insert", "start": int(start), "end": int(end)})
        self.live += end - start

    def delete(self, start, end):
        self.steps.append({"operation": "delete", "start": int(start), "end": int(end)})
        self.live -= end - start

    def search(self):
        self.steps.append({"operation": "search"})

    def write(self, path, name, max_pts, comment):
        # Written by hand (not yaml.dump) to keep the key order of the
        # published runbooks: max_pts, then steps 1..n.
        lines = [f"# {line}" for line in comment]
        lines.append(f"{name}:")
        lines.append(f"  max_pts: {max_pts}")
        for i, s in enumerate(self.steps, start=1):
            lines.append(f"  {i}:")
            lines.append(f"    operation: \"{s['operation']}\"")
            for key in ("start", "end", "tags_start", "tags_end", "ids_start", "ids_end"):
                if key in s:
                    lines.append(f"    {key}: {s[key]}")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")


def gen_fashion(args):
    rng = np.random.default_rng(args.seed)
    x = read_idx(os.path.join(args.fashion_dir, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(args.fashion_dir, "train-labels-idx1-ubyte.gz"))
    q = read_idx(os.path.join(args.fashion_dir, "t10k-images-idx3-ubyte.gz"))
    if len(x) != len(y):
        raise ValueError("images and labels differ in count")
    classes = sorted(set(int(c) for c in y))
    # Rows of every class, shuffled, split into `rounds` chunks.
    chunks_of = {}
    for c in classes:
        rows = np.flatnonzero(y == c)
        rng.shuffle(rows)
        chunks_of[c] = np.array_split(rows, args.rounds)

    order = []        # source rows in insertion order
    labels = []
    rb = Runbook()
    live_chunks = []  # [first live row, end row) of every inserted chunk
    since_search = 0
    for r in range(args.rounds):
        for c in classes:
            src = chunks_of[c][r]
            start = len(order)
            order.extend(src.tolist())
            labels.extend([c] * len(src))
            rb.insert(start, len(order))
            live_chunks.append([start, len(order)])
            since_search += 1
            if since_search == args.search_every:
                rb.search()
                since_search = 0
        if since_search:
            rb.search()
            since_search = 0
        # Delete the oldest rows of every live chunk: delete_fraction of the
        # live set in all, spread over all classes and rounds.
        for ch in live_chunks:
            n_del = int(round((ch[1] - ch[0]) * args.delete_fraction))
            if n_del > 0:
                rb.delete(ch[0], ch[0] + n_del)
                ch[0] += n_del
        rb.search()

    data = x[np.array(order)]
    queries = q[: args.queries]
    name = "fashion-mnist-drift"
    write_outputs(args, name, data, queries, rb, labels, [
        "Fashion-MNIST drift runbook (big-ann-benchmarks NeurIPS'23 streaming format).",
        f"Written by bench/streaming/runbook_gen.py fashion --rounds {args.rounds} "
        f"--delete-fraction {args.delete_fraction} --search-every {args.search_every} "
        f"--queries {args.queries} --seed {args.seed}.",
        "Ids are rows of fashion-mnist-drift.fvecs (the train images in insertion order):",
        f"{args.rounds} rounds, each inserting 1/{args.rounds} of every class, class by class;",
        f"after each round {args.delete_fraction:.0%} of the live vectors are deleted "
        "(the oldest rows of every live chunk).",
        f"Queries: the first {args.queries} test images (fashion-mnist-drift_queries.fvecs).",
    ])


def kmeans(x, k, seed, iters=25):
    """Lloyd's k-means (FAISS when importable, else numpy)."""
    try:
        import faiss
        km = faiss.Kmeans(x.shape[1], k, niter=iters, seed=seed, verbose=False)
        km.train(x)
        _, a = km.index.search(x, 1)
        return a.ravel()
    except ImportError:
        rng = np.random.default_rng(seed)
        c = x[rng.choice(len(x), k, replace=False)].copy()
        for _ in range(iters):
            d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
            a = d.argmin(1)
            for j in range(k):
                if np.any(a == j):
                    c[j] = x[a == j].mean(0)
        return a


def gen_sift(args):
    rng = np.random.default_rng(args.seed)
    x = read_fvecs(args.sift)
    perm = rng.permutation(len(x))
    qrows, brows = perm[: args.queries], perm[args.queries:]
    queries, base = x[qrows], x[brows]
    assign = kmeans(base, args.clusters, args.seed)
    # Clusters in a random order, so the first batch is one arbitrary cluster.
    cluster_order = rng.permutation(args.clusters)
    order, labels, ranges = [], [], []
    rb = Runbook()
    since_search = 0
    for c in cluster_order:
        rows = np.flatnonzero(assign == c)
        if rows.size == 0:
            continue
        start = len(order)
        order.extend(rows.tolist())
        labels.extend([int(c)] * len(rows))
        rb.insert(start, len(order))
        ranges.append((start, len(order)))
        since_search += 1
        if since_search == args.search_every:
            rb.search()
            since_search = 0
    if since_search:
        rb.search()
    for start, end in ranges[: args.delete_clusters]:
        rb.delete(start, end)
        rb.search()
    data = base[np.array(order)]
    name = "sift5k-drift"
    write_outputs(args, name, data, queries, rb, labels, [
        "SIFT 5K drift runbook (big-ann-benchmarks NeurIPS'23 streaming format).",
        f"Written by bench/streaming/runbook_gen.py sift --clusters {args.clusters} "
        f"--delete-clusters {args.delete_clusters} --search-every {args.search_every} "
        f"--queries {args.queries} --seed {args.seed}.",
        f"Ids are rows of sift5k-drift.fvecs: SIFT 5K less {args.queries} held-out queries,",
        f"clustered by k-means (k = {args.clusters}) and inserted cluster by cluster;",
        f"then the first {args.delete_clusters} inserted clusters are deleted one by one.",
        "Queries: the held-out vectors (sift5k-drift_queries.fvecs).",
    ])


def write_outputs(args, name, data, queries, rb, labels, comment):
    os.makedirs(args.out_dir, exist_ok=True)
    write_fvecs(os.path.join(args.out_dir, name + ".fvecs"), data)
    write_fvecs(os.path.join(args.out_dir, name + "_queries.fvecs"), queries)
    with open(os.path.join(args.out_dir, name + "_rows.json"), "w") as f:
        json.dump({"name": name, "labels": [int(v) for v in labels]}, f)
    yaml_path = args.yaml or os.path.join(args.out_dir, name + ".yaml")
    rb.write(yaml_path, name, len(data), comment)
    n_search = sum(1 for s in rb.steps if s["operation"] == "search")
    print(f"{name}: {len(data)} vectors x {data.shape[1]}, {len(queries)} queries, "
          f"{len(rb.steps)} steps ({n_search} searches), final live {rb.live} -> {yaml_path}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="which", required=True)
    f = sub.add_parser("fashion")
    f.add_argument("--fashion-dir", default=FASHION_DIR)
    f.add_argument("--rounds", type=int, default=3)
    f.add_argument("--delete-fraction", type=float, default=0.3)
    f.add_argument("--search-every", type=int, default=2)
    f.add_argument("--queries", type=int, default=1000)
    s = sub.add_parser("sift")
    s.add_argument("--sift", default="tests/data/sift5k/sift5k_base.fvecs")
    s.add_argument("--clusters", type=int, default=10)
    s.add_argument("--delete-clusters", type=int, default=3)
    s.add_argument("--search-every", type=int, default=1)
    s.add_argument("--queries", type=int, default=500)
    for a in (f, s):
        a.add_argument("--out-dir", required=True)
        a.add_argument("--yaml", default="")
        a.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.which == "fashion":
        if args.rounds < 1 or not 0 <= args.delete_fraction < 1:
            sys.exit("runbook_gen: need --rounds >= 1 and 0 <= --delete-fraction < 1")
        gen_fashion(args)
    else:
        gen_sift(args)


if __name__ == "__main__":
    main()
