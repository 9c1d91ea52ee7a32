#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, with the
# built programs and the peers bundled in .device/ (see docs/benchmarks.md):
#   bench/gpu/run_device.sh test    # GPU tests + compute-sanitizer
#   bench/gpu/run_device.sh key     # the key shape, quiver and peers
#   bench/gpu/run_device.sh grid    # the benchmark grid
#   bench/gpu/run_device.sh v2      # wgmma assign: SASS check, tests, key shape v2 vs v1 vs flashlib
#   DEV=build-v3/dev bench/gpu/run_device.sh v3  # vector reduce: tests, key shape fp16 + TF32 vs flashlib, ncu
#   DEV=build-v3/dev bench/gpu/run_device.sh v3final  # tests + key shape vs flashlib, no ncu
#   bench/gpu/run_device.sh v4      # TF32 wgmma assign: SASS, tests, key shape TF32 v4 vs v1 vs flashlib, ncu
# Results go to $OUT (or ./out). DEV (default .device) is the bundle folder.
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
DEV=${DEV:-.device}
export LD_LIBRARY_PATH=$PWD/$DEV/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH
export PYTHONUNBUFFERED=1
B=$DEV/bin/kmeans_gpu_bench
DATA=/tmp/km
mkdir -p $DATA
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

q() {  # quiver: N K D precision input [extra...]
  local n=$1 k=$2 d=$3 p=$4 i=$5; shift 5
  local f=$DATA/x_1x${n}x${d}.f32
  [ -f "$f" ] || f=""
  timeout 120 $B ${f:+--data $f} --n $n --k $k --d $d --precision $p --input $i --iters 10 "$@" \
    | tee -a "$OUT/quiver.jsonl"
}

for stage in "$@"; do
case $stage in
test)
  .device/bin/quiver_gpu_tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -40
  compute-sanitizer --tool memcheck --error-exitcode 1 .device/bin/quiver_gpu_tests \
    --gtest_filter='KMeansGpu.L2MatchesCpu:KMeansGpu.StreamedEqualsResident:KMeansGpu.EmptyCluster*:KMeansGpu.Batched*:KMeansGpu.DataOnDevice:KMeansGpu.KLarger*:AssignKernel.*' \
    > "$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer exit $?"; grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/sanitizer.log" | tail -5
  ;;
key)
  python3 bench/gpu/kmeans_peers.py --peers .device --data-dir $DATA --out "$OUT/peers.jsonl" \
    --ceilings --shape 1048576,1024,128 --precision tf32 --precision fp16
  for p in fp16 bf16; do q 1048576 1024 128 $p f16; done
  q 1048576 1024 128 tf32 f32
  q 1048576 1024 128 fp32 f32
  ;;
grid)
  shapes="65536,256,128 65536,1024,128 65536,4096,128 1048576,256,128 1048576,4096,128 1048576,65536,128 1048576,1024,768 8388608,1024,128 8388608,4096,128"
  python3 bench/gpu/kmeans_peers.py --peers .device --data-dir $DATA --out "$OUT/peers.jsonl" \
    $(for s in $shapes; do echo --shape $s; done) --precision fp16 --precision tf32 --compile-at-new-n
  for s in $shapes; do IFS=, read n k d <<< "$s"
    q $n $k $d fp16 f16; q $n $k $d tf32 f32
  done
  python3 bench/gpu/kmeans_peers.py --peers .device --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 131072,1024,128,32 --precision fp16
  $B --data $DATA/x_32x131072x128.f32 --n 131072 --k 1024 --d 128 --batch 32 \
    --precision fp16 --input f16 --iters 10 | tee -a "$OUT/quiver.jsonl"
  ;;
profile)
  # Kernel time of one iteration at the key shape (fp16), by ncu.
  f=$DATA/x_1x1048576x128.f32
  [ -f $f ] || python3 bench/gpu/kmeans_peers.py --data-dir $DATA --write-only --shape 1048576,1024,128
  ncu --launch-skip 14 --launch-count 14 --section SpeedOfLight $B --data $f --n 1048576 \
    --k 1024 --d 128 --precision fp16 --input f16 --iters 3 > "$OUT/ncu_key.txt" 2>&1
  grep -E "^  [a-z_]+.*\(|Duration|Compute \(SM\) Throughput|Memory Throughput" "$OUT/ncu_key.txt" | head -60
  ;;
v2)
  # wgmma assignment (v2): SASS check, GPU tests, key shape v2 vs v1 vs flashlib, one call.
  command -v cuobjdump >/dev/null && echo "HGMMA in wgmma_assign_kernel: $(cuobjdump -sass \
    .device/bin/kmeans_gpu_bench | awk '/Function :/{f=/wgmma_assign/} f&&/HGMMA/' | wc -l)"
  timeout 300 .device/bin/quiver_gpu_tests 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|OK \]" | tail -30
  python3 bench/gpu/kmeans_peers.py --peers .device --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --impl flashlib
  for rep in 1 2; do
    echo "== v2"; q 1048576 1024 128 fp16 f16
    echo "== v1"; QUIVER_ASSIGN=v1 q 1048576 1024 128 fp16 f16
  done
  q 1048576 1024 128 bf16 f16
  python3 bench/gpu/kmeans_peers.py --peers .device --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --impl flashlib
  ncu --kernel-name regex:"wgmma_assign|reduce_sorted" --launch-count 2 --section SpeedOfLight $B \
    --data $DATA/x_1x1048576x128.f32 --n 1048576 --k 1024 --d 128 --precision fp16 --input f16 \
    --iters 2 > "$OUT/ncu_v2.txt" 2>&1
  grep -oE "(wgmma_assign_kernel|reduce_sorted_kernel)<[^>]*>|Duration.*|Compute \(SM\) Throughput.*|Memory Throughput.*" "$OUT/ncu_v2.txt"; : grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput" "$OUT/ncu_v2.txt"
  ;;
v3)
  # Vector sorted-segment reduce (v3): tests (+ memcheck of the reduce), key shape fp16 and TF32,
  # quiver (v3, and QUIVER_REDUCE=v1) vs flashlib in the same call, ncu of the update kernels and
  # a detailed ncu of the assign kernel.
  timeout 300 $DEV/bin/quiver_gpu_tests 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|OK \]" | tail -40
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 1 $DEV/bin/quiver_gpu_tests \
    --gtest_filter='ReduceSorted.*:KMeansGpu.L2MatchesCpu:KMeansGpu.EmptyCluster*:KMeansGpu.StreamedEqualsResident' \
    > "$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer exit $?"; grep -E "ERROR SUMMARY" "$OUT/sanitizer.log" | tail -3
  python3 bench/gpu/kmeans_peers.py --peers $DEV --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --precision tf32 --impl flashlib
  for rep in 1 2; do
    echo "== v3 fp16"; q 1048576 1024 128 fp16 f16
    echo "== v1-reduce fp16"; QUIVER_REDUCE=v1 q 1048576 1024 128 fp16 f16
  done
  echo "== v3 tf32"; q 1048576 1024 128 tf32 f32
  echo "== v1-reduce tf32"; QUIVER_REDUCE=v1 q 1048576 1024 128 tf32 f32
  python3 bench/gpu/kmeans_peers.py --peers $DEV --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --precision tf32 --impl flashlib
  f=$DATA/x_1x1048576x128.f32
  timeout 120 ncu --launch-skip 11 --launch-count 11 --section SpeedOfLight --section LaunchStats \
    --section Occupancy $B --data $f --n 1048576 --k 1024 --d 128 --precision fp16 --input f16 \
    --iters 3 > "$OUT/ncu_iter.txt" 2>&1
  grep -E "^  [A-Za-z_].*\(|Duration|Compute \(SM\) Throughput|Memory Throughput|Registers Per|Achieved Occ" "$OUT/ncu_iter.txt" | head -80
  timeout 150 ncu --kernel-name regex:"wgmma_assign" --launch-count 1 --set full $B --data $f \
    --n 1048576 --k 1024 --d 128 --precision fp16 --input f16 --iters 1 > "$OUT/ncu_assign.txt" 2>&1
  grep -E "Duration|Throughput|Pipe|Stall|Warp Cycles|Issue Slot|Bank|L2 Hit|Shared|Eligible|Issued Warp|No Eligible" "$OUT/ncu_assign.txt" | head -60
  ;;
v3final)
  # Final check of v3: all GPU tests, memcheck of the reduce paths, key shape fp16 and TF32,
  # quiver vs flashlib in the same call.
  timeout 300 $DEV/bin/quiver_gpu_tests 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|OK \]" | tail -40
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 1 $DEV/bin/quiver_gpu_tests \
    --gtest_filter='ReduceSorted.*:KMeansGpu.OddShapes:KMeansGpu.EmptyCluster*:KMeansGpu.Batched*' \
    > "$OUT/sanitizer.log" 2>&1
  echo "compute-sanitizer exit $?"; grep -E "ERROR SUMMARY" "$OUT/sanitizer.log" | tail -3
  python3 bench/gpu/kmeans_peers.py --peers $DEV --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --precision tf32 --impl flashlib
  for rep in 1 2; do
    echo "== v3 fp16"; q 1048576 1024 128 fp16 f16
    echo "== v3 tf32"; q 1048576 1024 128 tf32 f32
  done
  echo "== v1-reduce fp16"; QUIVER_REDUCE=v1 q 1048576 1024 128 fp16 f16
  python3 bench/gpu/kmeans_peers.py --peers $DEV --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --precision tf32 --impl flashlib
  ;;
v4)
  # TF32 on wgmma (v4): SASS check, the GPU tests, key shape TF32 (wgmma and QUIVER_ASSIGN=v1) and
  # fp16 next to flashlib in one call, then ncu of the TF32 assign kernel.
  command -v cuobjdump >/dev/null && cuobjdump -sass $DEV/bin/kmeans_gpu_bench | awk '
    /Function :/{f=/wgmma_assign/; if (f) {n++; name[n]=$3}} f&&/HGMMA/{h[n]++} f&&/LDL|STL/{l[n]++}
    END{for (i=1;i<=n;i++) printf "%s HGMMA %d local %d\n", substr(name[i],1,90), h[i], l[i]}'
  command -v cuobjdump >/dev/null && cuobjdump -sass $DEV/bin/kmeans_gpu_bench | awk '
    /Function :/{f=/wgmma_assign/} f' > "$OUT/wgmma_assign.sass"
  timeout 300 $DEV/bin/quiver_gpu_tests 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "^\[  (PASSED|FAILED) |FAILED|OK \]" | tail -45
  python3 bench/gpu/kmeans_peers.py --peers $DEV --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --precision tf32 --impl flashlib
  for rep in 1 2; do
    echo "== v4 tf32"; q 1048576 1024 128 tf32 f32
    echo "== v1 tf32"; QUIVER_ASSIGN=v1 q 1048576 1024 128 tf32 f32
    echo "== v4 fp16"; q 1048576 1024 128 fp16 f16
  done
  python3 bench/gpu/kmeans_peers.py --peers $DEV --data-dir $DATA --out "$OUT/peers.jsonl" \
    --shape 1048576,1024,128 --precision fp16 --precision tf32 --impl flashlib
  f=$DATA/x_1x1048576x128.f32
  timeout 150 ncu --kernel-name regex:"wgmma_assign" --launch-count 1 --set full $B --data $f \
    --n 1048576 --k 1024 --d 128 --precision tf32 --input f32 --iters 1 > "$OUT/ncu_assign_tf32.txt" 2>&1
  grep -E "Duration|Throughput|Pipe|Stall|Warp Cycles|Issue Slot|Bank|L2 Hit|Shared|Eligible|Issued Warp|No Eligible" "$OUT/ncu_assign_tf32.txt" | head -60
  ;;
ooc)
  # 67M x 128 fp32 (34 GB) from pinned host memory, streamed vs resident (TF32), and streamed with
  # fp16 products. Run with `key` (its --ceilings measures the pinned H2D bandwidth).
  $B --n 67108864 --k 8192 --d 128 --precision tf32 --input f32 --iters 3 --host --stream \
    --chunk 4194304 | tee -a "$OUT/quiver.jsonl"
  $B --n 67108864 --k 8192 --d 128 --precision tf32 --input f32 --iters 3 | tee -a "$OUT/quiver.jsonl"
  $B --n 67108864 --k 8192 --d 128 --precision fp16 --input f32 --iters 3 --host --stream \
    --chunk 4194304 | tee -a "$OUT/quiver.jsonl"
  ;;
esac
done
