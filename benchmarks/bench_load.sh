#!/usr/bin/env bash
# Data-loading benchmark (`wam-pipe bench load`): per-file COCO reference vs pre-resized files vs shards vs the
# decode ceiling, on the real COCO subset and on a larger synthetic set. Results go to benchmarks/RESULTS.md by hand
# (section "Data loading (wam-pipe bench load)"), with the machine notes printed at the end.
#
# Usage: benchmarks/bench_load.sh [WORKERS] [EPOCHS] [SYNTH_IMAGES]    (defaults: 2 5 2000)
# Needs ../shared/data/coco_tiny for the first two runs; writes only under ${TMPDIR:-/tmp}/wam-bench-load.
set -euo pipefail

cd "$(dirname "$0")/.."
WORKERS=${1:-2}
EPOCHS=${2:-5}
SYNTH_IMAGES=${3:-2000}
WAM=${WAM:-.venv/bin/wam-pipe}
WORK=${TMPDIR:-/tmp}/wam-bench-load
COCO=../shared/data/coco_tiny
mkdir -p "$WORK"

PY=${PY:-.venv/bin/python}

run() {  # run LABEL ARGS...: one bench; its JSON is kept in $WORK/LABEL.json and summarised here
    local label=$1
    shift
    echo "== $label"
    "$WAM" bench load "$@" --workers "$WORKERS" --epochs "$EPOCHS" --json > "$WORK/$label.json"
    "$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
first, every, cpu = r["first_batch_s"], r["img_per_s_all"], r["cpu_ms_per_img"]
for arm, rate in r["img_per_s"].items():
    print(f"  {arm:26s} {rate:8.1f} img/s  first batch {first[arm]:6.3f} s  CPU {cpu[arm]} ms/img  all {every[arm]}")
print("  wall-clock ratios", r["ratios"])
print("  CPU-cost ratios  ", r["cpu_ratios"])' "$WORK/$label.json"
}

if [ -d "$COCO" ]; then
    for cache in warm cold; do
        run "coco_tiny_$cache" --images "$COCO/train2017" --annotations "$COCO/annotations/instances_train2017.json" \
            --cache "$cache"
    done
fi

# COCO-like sizes (400-640 px); the synthetic set is written once and reused (a no-op when present).
"$WAM" data synth --out "$WORK/synth" --images "$SYNTH_IMAGES" --min-size 400 --max-size 640
for cache in warm cold; do
    run "synth_${SYNTH_IMAGES}_$cache" --images "$WORK/synth/images" --annotations "$WORK/synth/annotations.json" \
        --cache "$cache" --workdir "$WORK/synth_build"
done

echo "== machine"
uname -srm
grep -m1 "model name" /proc/cpuinfo || true
nproc
uptime
