#!/usr/bin/env bash
# The core install without torch: a fresh venv with `pip install -e .` (no extras) must run
# merge, scaling, schedule and plan, and a torch-needing verb must exit 2 naming the extra.
# Called from .ci/run; BENCHMARKS.md has its measured duration.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
T0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/riverbed-torch-free.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export MPLBACKEND=Agg

BIN="$WORK/venv/bin"
# Fast path: a venv without its own pip, filled by an existing pip (>= 22.3 has --python);
# --no-compile skips byte-compiling scipy/matplotlib (half the install's CPU time).
HOST_PIP=("$PY" -m pip)
[ -x .venv/bin/python ] && HOST_PIP=(.venv/bin/python -m pip)
if "${HOST_PIP[@]}" --help 2>/dev/null | grep -q -- '--python <python>'; then
    "$PY" -m venv --without-pip "$WORK/venv"
    "${HOST_PIP[@]}" --python "$BIN/python" install -q --no-compile -e .
else
    "$PY" -m venv "$WORK/venv"
    "$BIN/pip" install -q --no-compile -e .
fi
T1=$(date +%s)
if "$BIN/python" -c 'import torch' 2>/dev/null; then
    echo "torch_free: torch is importable in the core install; it must be an extra" >&2
    exit 1
fi
RB="$BIN/riverbed"
cd "$WORK"

# merge: two tiny safetensors checkpoints, SMA -> exactly their mean
"$BIN/python" - <<'PY'
import numpy as np
from safetensors.numpy import save_file
for i, v in enumerate((1.0, 3.0)):
    save_file({"w": np.full((4, 3), v, np.float32)}, f"ck{i}.safetensors")
PY
"$RB" merge merged ck0.safetensors ck1.safetensors --no-progress
"$BIN/python" - <<'PY'
import glob
import numpy as np
from safetensors.numpy import load_file
files = glob.glob("merged/*.safetensors")
assert files, "merge wrote no safetensors"
w = {k: v for f in files for k, v in load_file(f).items()}["w"]
assert np.array_equal(w, np.full((4, 3), 2.0, np.float32)), w
PY

# scaling: a tiny CSV (one model size, data law), a fit with a plot, a prediction
"$BIN/python" - <<'PY'
d = [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9]
rows = ["params,tokens,eval/loss"] + [f"1e8,{x:g},{1.9 + 3000 / x ** 0.4:.6f}" for x in d]
open("losses.csv", "w").write("\n".join(rows) + "\n")
PY
"$RB" scaling fit losses.csv --law data --bootstrap 20 --no-progress -o fit.json --plot fit.png
test -s fit.json && test -s fit.png
"$RB" scaling predict fit.json --d 1e10

# schedule maths and plots, and plan
"$RB" schedule values --type wsd --warmup 10 --stable 50 --decay-steps 20 > values.tsv
test "$(wc -l < values.tsv)" -ge 80
"$RB" schedule plot --type wsd --warmup 10 --stable 50 --decay-steps 20 --plot sched.png
test -s sched.png
"$RB" plan --budgets 1000,2000,4000 --json > plan.json
"$BIN/python" -c 'import json; json.load(open("plan.json"))'

# a torch-needing verb: exit 2 and the extra named, nothing created
printf '[model]\npreset = "tiny"\n[train]\nmax_steps = 2\n' > tiny.toml
set +e
"$RB" train tiny.toml --run trained 2> train.err
rc=$?
set -e
if [ "$rc" -ne 2 ] || ! grep -q "pip install 'riverbed\[train\]'" train.err || [ -e trained ]; then
    echo "torch_free: riverbed train without torch: rc=$rc, stderr:" >&2
    cat train.err >&2
    exit 1
fi
T2=$(date +%s)
echo "torch_free: ok in $(( T2 - T0 )) s (venv + install $(( T1 - T0 )) s, verbs $(( T2 - T1 )) s): merge, scaling, schedule, plan without torch; train names the extra"
