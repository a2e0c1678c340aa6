"""DCP merge benchmark: riverbed streaming K torch distributed checkpoints vs the write floor vs
converting them first (``dcp_to_torch_save``, then merging the ``.pt`` files).

Generates K Llama-shaped random bf16 state dicts saved with ``torch.distributed.checkpoint.save``
(one process: one ``.distcp`` file per checkpoint, each tensor a torch.save archive at an offset),
warms the page cache, then runs, side by side in one run, each in its own process (start-up
included), sampling /proc/PID/status every 10 ms for peak RSS and anonymous memory:

  (a) floor     read every .distcp byte once + write one output of one checkpoint's size, fsync'd
  (b) riverbed  `riverbed merge OUT DCP1..DCPK --method sma` (streams the .distcp files by offset)
  (c) convert   `dcp_to_torch_save` of each checkpoint (one process), then `riverbed merge OUT
                1.pt..K.pt --method sma` (torch.load mmap): what a user without DCP support does
  (d) st        `riverbed merge` of the same weights saved as safetensors (written once, untimed):
                what the DCP reader costs over riverbed's native format

Times as in bench/merge.py: "to cache" (until the output is written), "fsync" (the contender's
own), "durable" = their sum; the converted .pt files are not fsync'd (they are temporary).

  .venv/bin/python bench/merge_dcp.py --size-gb 0.5 --k 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from merge import FLOOR, _parse, llama_shape, measure, tensor_shapes  # noqa: E402  (bench/merge.py: the same model and harness)

CONVERT = r"""
import sys, warnings
warnings.simplefilter("ignore")
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    dcp_to_torch_save(src, dst)
"""


def generate(root: Path, k: int, size_gb: float, smoke: bool = False) -> list[Path]:
    import torch
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import save_file

    cfg = llama_shape(size_gb, smoke)
    shapes = tensor_shapes(cfg)
    paths = []
    for i in range(k):
        path = root / f"step-{1000 * (i + 1)}"
        paths.append(path)
        marker = root / f"{path.name}.json"
        if marker.exists() and json.loads(marker.read_text()) == {"cfg": cfg, "i": i} and (path / ".metadata").is_file() \
                and (root / f"{path.name}.safetensors").is_file():
            continue
        shutil.rmtree(path, ignore_errors=True)
        g = torch.Generator().manual_seed(1000 + i)
        sd = {name: torch.randn(shape, generator=g, dtype=torch.bfloat16) * 0.02 for name, shape in shapes}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
            dcp.save(sd, checkpoint_id=str(path))
        save_file(sd, str(root / f"{path.name}.safetensors"))
        del sd
        marker.write_text(json.dumps({"cfg": cfg, "i": i}))
        print(f"generated {path} ({sum(f.stat().st_size for f in path.iterdir()) / 1e9:.2f} GB)", flush=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=0.5, help="size of each checkpoint in GB (bf16)")
    ap.add_argument("--k", type=int, default=4, help="number of checkpoints")
    ap.add_argument("--dir", type=Path, default=HERE / "out" / "merge_dcp", help="where checkpoints and outputs go")
    ap.add_argument("--smoke", action="store_true",
                    help="two toy checkpoints in a temporary folder (make bench-smoke): checks the bench works")
    args = ap.parse_args(argv)
    if args.smoke:
        args.k, args.size_gb, args.dir = 2, 0.001, Path(tempfile.mkdtemp(prefix="riverbed-bench-dcp-"))
        try:
            return _run(args, smoke=True)
        finally:
            shutil.rmtree(args.dir, ignore_errors=True)
    return _run(args)


def _run(args: argparse.Namespace, smoke: bool = False) -> int:
    root = args.dir / f"{args.size_gb:g}GB"
    inputs = generate(root, args.k, args.size_gb, smoke)
    files = sorted(str(p) for d in inputs for p in d.glob("*.distcp"))
    in_bytes = sum(os.path.getsize(f) for f in files)
    for f in files + [f"{p}.safetensors" for p in inputs]:  # warm the page cache: every contender reads from memory
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass
    py = sys.executable
    outd, pts = root / "merged", [root / f"converted{i}.pt" for i in range(args.k)]
    rows = {}
    r = measure([py, "-c", FLOOR, str(root / "floor.bin"), *files], env={"K": str(args.k)})
    (root / "floor.bin").unlink(missing_ok=True)
    r["sync"] = _parse(r["log"], r"fsync ([\d.]+)")
    r["wall"] -= r["sync"]
    rows["floor"] = r
    merge = [py, "-m", "riverbed.cli.main", "merge", str(outd)]
    for name in ("riverbed", "convert", "st"):
        shutil.rmtree(outd, ignore_errors=True)
        if name == "riverbed":
            r = measure([*merge, *map(str, inputs), "--method", "sma", "--no-progress"])
        elif name == "st":
            r = measure([*merge, *(f"{p}.safetensors" for p in inputs), "--method", "sma", "--no-progress"])
        else:
            c = measure([py, "-c", CONVERT, *(str(x) for pair in zip(inputs, pts) for x in pair)])
            r = measure([*merge, *map(str, pts), "--order", "given", "--method", "sma", "--no-progress"])
            if c["rc"] != 0:
                r = c
            r["convert"] = c["wall"] + c["sync"]
            r["rss"], r["anon"] = max(r["rss"], c["rss"]), max(r["anon"], c["anon"])
        r["sync"] = _parse(r["log"], r"fsync\+rename ([\d.]+) s")
        r["wall"] = r["wall"] - r["sync"] + r.get("convert", 0.0)
        if r["rc"] != 0:
            print(f"{name} failed (rc {r['rc']}):\n{r['log'][-3000:]}")
            return 1
        rows[name] = r
    for p in pts:
        p.unlink(missing_ok=True)
    shutil.rmtree(outd, ignore_errors=True)
    for r in rows.values():
        r["durable"] = r["wall"] + r["sync"]

    print(f"\nK={args.k} x {in_bytes / args.k / 1e9:.2f} GB bf16 Llama-shaped DCP checkpoints ({in_bytes / 1e9:.2f} GB read), "
          f"{os.cpu_count()} CPUs, warm page cache, load average {os.getloadavg()[0]:.1f}")
    base = rows["riverbed"]
    hdr = (f"{'contender':<10} {'convert s':>9} {'to cache s':>10} {'fsync s':>8} {'durable s':>10} {'GB/s in':>8} "
           f"{'peak RSS GB':>12} {'peak anon GB':>13} {'durable vs riverbed':>20}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in rows.items():
        conv = f"{r['convert']:.2f}" if "convert" in r else "-"
        print(f"{name:<10} {conv:>9} {r['wall']:>10.2f} {r['sync']:>8.2f} {r['durable']:>10.2f} {in_bytes / r['durable'] / 1e9:>8.2f} "
              f"{r['rss'] / 1e9:>12.2f} {r['anon'] / 1e9:>13.2f} {r['durable'] / base['durable']:>19.2f}x")
    print("to cache: wall time until the output is written (page cache), start-up included (convert: conversion + merge); "
          "fsync: the contender's own; durable = to cache + fsync.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
