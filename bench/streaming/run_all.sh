#!/bin/bash
# Copyright (c) quiver authors. Licensed under the Apache License 2.0.
#
# The streaming benchmark end to end: generates the two drift runbooks, runs
# quiver (maintenance on, add-only, full rebuild before every search) and
# FAISS IVFFlat add-only on each, with the same nlist and nprobe, then plots.
#
#   bench/streaming/run_all.sh            # from the repository root
#   BUILD=build-stream WORK=/tmp/qs bench/streaming/run_all.sh
#
# Needs: streaming_runner built in $BUILD (ninja -C $BUILD streaming_runner),
# Debian's /usr/bin/python3 with python3-faiss, python3-numpy, python3-yaml,
# python3-matplotlib, and libopenblas0-pthread (see /work/shared/peers/README.md).
# Data files and ground truth go to $WORK; results to bench/results/streaming_*.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-stream}
WORK=${WORK:-/tmp/quiver_streaming}
RESULTS=${RESULTS:-bench/results}
PY=/usr/bin/python3
RUNNER=$BUILD/bench/streaming/streaming_runner
LATENCY_QUERIES=${LATENCY_QUERIES:-2000}
[ -x "$RUNNER" ] || { echo "run_all: build $RUNNER first (ninja -C $BUILD streaming_runner)" >&2; exit 1; }
mkdir -p "$WORK" "$RESULTS"

$PY bench/streaming/runbook_gen.py fashion --out-dir "$WORK" \
  --yaml bench/streaming/runbooks/fashion_mnist_drift.yaml
$PY bench/streaming/runbook_gen.py sift --out-dir "$WORK" \
  --yaml bench/streaming/runbooks/sift5k_drift.yaml

# name  yaml  nlist  nprobe  target partition size of the maintained variant
# The maintainer splits a partition at 3 x target (Options defaults), so its
# partitions average well above the target: half of (peak live / nlist)
# brings its partition count at the peak closest to the others' nlist.
RUNBOOKS=(
  "fashion-mnist-drift bench/streaming/runbooks/fashion_mnist_drift.yaml 64 4 342"
  "sift5k-drift bench/streaming/runbooks/sift5k_drift.yaml 16 8 140"
)
for entry in "${RUNBOOKS[@]}"; do
  read -r name yaml nlist nprobe target <<<"$entry"
  common=(--runbook "$yaml" --data "$WORK/$name.fvecs" --queries "$WORK/${name}_queries.fvecs"
          --nlist "$nlist" --nprobe "$nprobe" --gt-cache "$WORK/gt")
  for variant in addonly rebuild maintained; do
    extra=()
    [ "$variant" = maintained ] &&
      extra=(--latency-queries "$LATENCY_QUERIES" --target-partition-size "$target")
    "$RUNNER" "${common[@]}" --variant "$variant" --db "$WORK/db_$variant" \
      --out "$RESULTS/streaming_${name}_$variant" "${extra[@]}"
  done
  # One BLAS thread: FAISS parallelises its scan with OpenMP, and OpenBLAS's
  # spinning threads would compete with it on a small machine.
  OPENBLAS_NUM_THREADS=1 $PY bench/streaming/faiss_runner.py "${common[@]}" \
    --out "$RESULTS/streaming_${name}_faiss"
done
$PY bench/streaming/plot_streaming.py --results "$RESULTS"
