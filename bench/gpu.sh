#!/usr/bin/env bash
# The GPU figures in one command (under 10 minutes on one H100/H200-class GPU):
#   bench/gpu.sh                      # 124m tokens/s + MFU (eager, torch.compile), 4 x 1 GB merge, FSDP2
#   bench/gpu.sh --merge-dir /scratch # measure the merge on that disk
#   bench/gpu.sh --dry                # the same script on the CPU at toy sizes (seconds; CI runs it)
# Figures: bench/out/gpu.json (or --out FILE), rewritten after every section. See bench/gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
if [[ "${1:-}" == "--dry" ]]; then
    shift
    exec "$PY" bench/gpu.py --smoke "$@"
fi
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total,clocks.max.sm,power.limit --format=csv
fi
uptime
exec timeout 900 "$PY" bench/gpu.py "$@"
