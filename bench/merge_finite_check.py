"""Cost of the NaN/inf check in the streaming merge: the same merge with and without it.

Writes K random bf16 checkpoints (``--mb`` MB each) to a temporary directory, warms the page
cache, then alternates ``riverbed.merge(...)`` with the check (the default) and with
``allow_nonfinite=True`` (no check), ``--repeats`` times each, and prints the best times and
their ratio. Outputs are deleted between runs; fsync is part of both.

  PYTHONPATH=src .venv/bin/python bench/merge_finite_check.py --mb 256 --k 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256, help="size of each checkpoint in MB (bf16)")
    ap.add_argument("--k", type=int, default=4, help="number of checkpoints")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run at a toy size (make bench-smoke): checks the bench works, its figures mean nothing")
    args = ap.parse_args()
    if args.smoke:
        args.mb, args.k, args.repeats = 4, 2, 1

    import torch
    from safetensors.torch import save_file

    import riverbed

    root = Path(tempfile.mkdtemp(prefix="riverbed-bench-"))
    try:
        n = args.mb * 10**6 // 2 // 16
        paths = []
        for i in range(args.k):
            g = torch.Generator().manual_seed(i)
            sd = {f"w{j}": torch.randn(n, generator=g).to(torch.bfloat16) for j in range(16)}
            p = root / f"in{i}"
            p.mkdir()
            save_file(sd, str(p / "model.safetensors"))
            paths.append(p)
        for p in paths:  # warm the page cache
            (p / "model.safetensors").read_bytes()
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for check in (True, False):
                out = root / "out"
                t0 = time.perf_counter()
                riverbed.merge(out, paths, allow_nonfinite=not check, threads=args.threads, verbose=False, progress=False)
                times[check].append(time.perf_counter() - t0)
                shutil.rmtree(out)
        on, off = min(times[True]), min(times[False])
        print(f"{args.k} x {args.mb} MB bf16, best of {args.repeats}: with check {on:.3f} s, without {off:.3f} s, "
              f"ratio {on / off:.3f} (median ratio {np.median(times[True]) / np.median(times[False]):.3f})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
