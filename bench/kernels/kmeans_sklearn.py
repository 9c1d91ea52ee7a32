#!/usr/bin/python3
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
#
# scikit-learn's Lloyd k-means on the data and initial centroids that
# kmeans_peers wrote (raw float32, row-major). Run with Debian's
# /usr/bin/python3 (python3-sklearn, numpy on OpenBLAS). Prints one line:
#   <fit seconds> <n_iter_> <inertia_> <BLAS implementation>
# and writes the final centroids (float32) to --out.
import argparse
import time

import numpy as np
from sklearn.cluster import KMeans

try:
    from threadpoolctl import threadpool_info
except ImportError:  # pragma: no cover
    threadpool_info = None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--init", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    x = np.fromfile(a.data, dtype=np.float32).reshape(a.n, a.d)
    init = np.fromfile(a.init, dtype=np.float32).reshape(a.k, a.d)
    km = KMeans(n_clusters=a.k, init=init, n_init=1, max_iter=a.iters, tol=0.0,
                algorithm="lloyd", copy_x=True)
    t0 = time.perf_counter()
    km.fit(x)
    t1 = time.perf_counter()
    blas = "unknown"
    if threadpool_info is not None:
        libs = [f"{i.get('internal_api')}:{i.get('num_threads')}" for i in threadpool_info()
                if i.get("user_api") == "blas"]
        blas = ",".join(libs) or "none"
    km.cluster_centers_.astype(np.float32).tofile(a.out)
    print(f"{t1 - t0:.6f} {km.n_iter_} {km.inertia_:.10g} {blas}")


if __name__ == "__main__":
    main()
