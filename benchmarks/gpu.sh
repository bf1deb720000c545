#!/usr/bin/env bash
# The one-GPU speed check of issue 6 (see benchmarks/gpu_check.py for the sections): on one H200, under 8 minutes,
# with no network. Results: gpu_check.json (everything), gpu_check.md (the tables) and log.txt in $OUT when set (the
# device machine's result folder), else /tmp/wam-gpu-check/results; both are rewritten after every section, so a run cut
# short keeps what it measured. Data and per-section files go to /tmp (--work). On the device tool: timeout_s 540.
#
# Usage: benchmarks/gpu.sh [gpu_check.py options]       e.g.  benchmarks/gpu.sh --pipeline pipelines/train.yaml
#        benchmarks/gpu.sh --smoke --device cpu          every code path at tiny size on a CPU (what the tests run)
#
# The GPU image has torch, torchvision, numpy, PIL, yaml, tqdm and matplotlib, but not wam-pipe's config and data
# packages. Bring them in .whl/ (ignored by git), fetched on a machine with network access, from the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     hydra-zen==0.17.2 hydra-core==1.3.8 omegaconf==2.3.1 webdataset==1.0.2 braceexpand==0.1.7 pycocotools==2.0.11
#   python3 -m pip download --no-deps --no-binary=:all: -d .whl antlr4-python3-runtime==4.9.3   # source only
# and carry `.whl` with the run. This script installs them into /tmp/wam-site (never into the image) when imports
# fail; the source package is pure Python and builds offline.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PY:-}" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import hydra_zen, omegaconf, webdataset, pycocotools, yaml" 2>/dev/null; then
    if ls .whl/* >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
            --target /tmp/wam-site .whl/* || exit 3
        export PYTHONPATH="$PYTHONPATH:/tmp/wam-site"
    fi
    if ! "$PY" -c "import hydra_zen, omegaconf, webdataset, pycocotools, yaml"; then
        echo "gpu.sh: missing Python packages (above); carry them as wheels in .whl/ (see the header)" >&2
        exit 3
    fi
fi

# The whole check must end inside 8 minutes: gpu_check.py spends at most BUDGET seconds on its sections, and this
# hard limit stops it (and its section processes) 15 s after that in any case.
BUDGET=${BUDGET:-450}
timeout -k 5 $((BUDGET + 15)) "$PY" benchmarks/gpu_check.py --budget "$BUDGET" "$@"
