#!/usr/bin/env bash
# Screenshot of TensorBoard on a run, for docs/tracking.md and the README:
#   docs/make_tensorboard_screenshot.sh runs/quickstart [docs/tensorboard.png] [TAG_REGEX]
# The Scalars dashboard, unsmoothed, filtered to the curves a reader looks at first (TAG_REGEX; default: the training
# loss, the per-epoch bit accuracy, mIoU and PSNR, and the evaluations' bit accuracy and mIoU).
# Needs Debian's chromium (apt-get install chromium). Serves on 127.0.0.1 only and stops the server at the end.
set -euo pipefail
run_dir=${1:?usage: $0 RUN_DIR [OUT.png]}
out=${2:-$(dirname "$0")/tensorboard.png}
tags=${3:-'^(train/loss|epoch/(bit_acc|miou|psnr)|eval/(bit_acc|miou))$'}
filter=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$tags")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m tensorboard.main --logdir "$run_dir/tb" --host 127.0.0.1 --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -sf "http://127.0.0.1:$port/data/plugin/scalars/tags" | grep -q loss && break
  sleep 1
done
profile=$(mktemp -d)
# --virtual-time-budget lets the page fetch and draw its charts before the picture is taken.
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$profile" \
  --hide-scrollbars --window-size=1400,1000 --virtual-time-budget=20000 \
  --screenshot="$out" "http://127.0.0.1:$port/#scalars&_smoothingWeight=0&tagFilter=$filter" >/dev/null 2>&1
rm -rf "$profile"
echo "wrote $out"
