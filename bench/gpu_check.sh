#!/usr/bin/env bash
# Run on a machine with a GPU (about 3-5 minutes): throughput of every model, time to 99%, ratio to the lecture loop.
# Usage: bash bench/gpu_check.sh [extra args for bench/gpu_check.py]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
PYTHONUNBUFFERED=1 exec "$PY" bench/gpu_check.py "$@"
