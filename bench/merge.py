"""Checkpoint merge benchmark: the floor vs riverbed vs mergekit vs a naive state-dict average.

Generates K Llama-shaped, sharded, random bf16 Hugging Face checkpoints (cached under --dir),
warms the page cache, then runs every contender in its own process, in one run, sampling its
/proc/PID/status every 10 ms for peak RSS and peak anonymous memory (RssAnon: memory that is
not a memory-mapped file; page-cache pages of mapped inputs count in RSS but not there).

  (a) floor     read every input byte once (preadv, 16 MB buffer) + write one output, fsync'd
  (b) riverbed  `riverbed merge OUT IN1..INK --method sma` (streams; fsyncs: durable)
  (c) mergekit  `mergekit-yaml` linear merge (own venv: --mergekit-python); no fsync of its own
  (d) naive     load every full state dict (safetensors), average in fp32, save_file; no fsync

Each contender starts after `sync`, so no one pays for the previous writer's dirty pages. Times
are split into "to cache" (process start to output written, start-up included) and "fsync"
(riverbed's and the floor's own fsync, a timed `sync` after mergekit and naive, which do not
fsync); "durable" is their sum. Ratios are given for both.

  .venv/bin/python bench/merge.py --size-gb 1 --k 4
  .venv/bin/python bench/merge.py --size-gb 4 --k 4 --contenders floor,riverbed   # memory stays flat
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def llama_shape(size_gb: float, smoke: bool = False) -> dict:
    """A Llama config whose bf16 weights take about ``size_gb`` GB (hidden 1536, MHA; ``smoke``:
    hidden 64, vocab 256, a few hundred KB)."""
    d, ff, vocab = (64, 128, 256) if smoke else (1536, 4096, 32000)
    per_layer = 4 * d * d + 3 * d * ff + 2 * d
    target = size_gb * 1e9 / 2
    layers = max(1, round((target - 2 * vocab * d - d) / per_layer))
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d, "intermediate_size": ff,
        "num_hidden_layers": layers, "num_attention_heads": 4 if smoke else 12, "num_key_value_heads": 4 if smoke else 12,
        "vocab_size": vocab,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "hidden_act": "silu",
    }


def tensor_shapes(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    d, ff, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    out = [("model.embed_tokens.weight", (v, d))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (d,))]
        out += [(p + f"self_attn.{x}_proj.weight", (d, d)) for x in "qkvo"]
        out += [(p + "post_attention_layernorm.weight", (d,))]
        out += [(p + "mlp.gate_proj.weight", (ff, d)), (p + "mlp.up_proj.weight", (ff, d)), (p + "mlp.down_proj.weight", (d, ff))]
    return out + [("model.norm.weight", (d,)), ("lm_head.weight", (v, d))]


def generate(root: Path, k: int, size_gb: float, shard_bytes: int, smoke: bool = False) -> list[Path]:
    import torch
    from safetensors.torch import save_file

    cfg = llama_shape(size_gb, smoke)
    shapes = tensor_shapes(cfg)
    paths = []
    for i in range(k):
        path = root / f"ckpt{i}"
        paths.append(path)
        marker = path / "bench.json"
        if marker.exists() and json.loads(marker.read_text()) == {"cfg": cfg, "shard_bytes": shard_bytes, "i": i}:
            continue
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        groups, cur, size = [], [], 0
        for name, shape in shapes:
            n = 2 * int(torch.tensor(shape).prod())
            if cur and size + n > shard_bytes:
                groups.append(cur)
                cur, size = [], 0
            cur.append((name, shape))
            size += n
        groups.append(cur)
        weight_map = {}
        g = torch.Generator().manual_seed(1000 + i)
        for j, group in enumerate(groups):
            fname = f"model-{j + 1:05d}-of-{len(groups):05d}.safetensors"
            sd = {name: torch.randn(shape, generator=g, dtype=torch.bfloat16) * 0.02 for name, shape in group}
            save_file(sd, str(path / fname), metadata={"format": "pt"})
            weight_map.update({name: fname for name, _ in group})
            del sd
        total = sum(2 * int(torch.tensor(s).prod()) for _, s in shapes)
        (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
        (path / "config.json").write_text(json.dumps(cfg))
        marker.write_text(json.dumps({"cfg": cfg, "shard_bytes": shard_bytes, "i": i}))
        print(f"generated {path} ({total / 1e9:.2f} GB, {len(groups)} shards)", flush=True)
    return paths


FLOOR = r"""
import os, sys, time
out, files = sys.argv[1], sys.argv[2:]
buf = bytearray(16 << 20); mv = memoryview(buf)
t0 = time.perf_counter(); total = 0
for f in files:
    fd = os.open(f, os.O_RDONLY); pos = 0
    while (n := os.preadv(fd, [mv], pos)) > 0:
        pos += n
    total += pos; os.close(fd)
per = total // int(os.environ["K"])
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); done = 0
while done < per:
    done += os.write(fd, mv[: min(len(mv), per - done)])
t1 = time.perf_counter()
os.fsync(fd); os.close(fd)
print(f"fsync {time.perf_counter() - t1:.3f}")
"""

NAIVE = r"""
import json, sys, time, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
out, dirs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
t0 = time.perf_counter()
sds = []
for d in dirs:
    sd = {}
    for f in sorted(set(json.loads((d / "model.safetensors.index.json").read_text())["weight_map"].values())):
        sd.update(load_file(str(d / f)))
    sds.append(sd)
avg = {k: (sum(sd[k].float() for sd in sds) / len(sds)).to(torch.bfloat16) for k in sds[0]}
out.mkdir()
save_file(avg, str(out / "model.safetensors"), metadata={"format": "pt"})
print(f"inner {time.perf_counter() - t0:.3f}")
"""


def _status(pid: int) -> dict[str, int]:
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon"):
                    vals[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return vals


def measure(cmd: list[str], env: dict | None = None) -> dict:
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    peak_rss = peak_anon = 0
    while proc.poll() is None:
        s = _status(proc.pid)
        peak_rss = max(peak_rss, s.get("VmHWM", 0), s.get("VmRSS", 0))
        peak_anon = max(peak_anon, s.get("RssAnon", 0))
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    out = proc.stdout.read()
    t1 = time.perf_counter()
    subprocess.run(["sync"], check=True)
    return {"rc": proc.returncode, "wall": wall, "sync": time.perf_counter() - t1, "rss": peak_rss, "anon": peak_anon, "log": out}


def _parse(log: str, pattern: str) -> float:
    import re

    m = re.search(pattern, log)
    return float(m.group(1)) if m else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=1.0, help="size of each checkpoint in GB (bf16)")
    ap.add_argument("--k", type=int, default=4, help="number of checkpoints")
    ap.add_argument("--dir", type=Path, default=HERE / "out" / "merge", help="where checkpoints and outputs go")
    ap.add_argument("--shard-mb", type=int, default=400, help="input shard size in MB")
    ap.add_argument("--threads", type=int, default=None, help="riverbed --threads")
    ap.add_argument("--contenders", default="floor,riverbed,mergekit,naive")
    ap.add_argument("--mergekit-python", default="/tmp/mergekit-venv/bin/python")
    ap.add_argument("--smoke-shape", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows (seconds, GB/s, bytes) to this JSON file")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run at a toy size (make bench-smoke): checks the bench works, its figures mean nothing")
    args = ap.parse_args(argv)
    if args.smoke:  # every contender that needs no other install, on two toy checkpoints in a temporary folder
        tmp = tempfile.mkdtemp(prefix="riverbed-bench-merge-")
        try:
            return main(["--size-gb", "0.001", "--k", "2", "--shard-mb", "1", "--dir", tmp, "--contenders",
                         "floor,riverbed,naive", "--smoke-shape", *(["--json", str(args.json)] if args.json else [])])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    root = args.dir / f"{args.size_gb:g}GB{'-smoke' if args.smoke_shape else ''}"  # checkpoint i is the same whatever K
    inputs = generate(root, args.k, args.size_gb, args.shard_mb * 10**6, args.smoke_shape)
    files = sorted(str(p) for d in inputs for p in d.glob("*.safetensors"))
    in_bytes = sum(os.path.getsize(f) for f in files)
    for f in files:  # warm the page cache: every contender reads from memory
        with open(f, "rb") as fh:
            while fh.read(64 << 20):
                pass
    py = sys.executable
    outd = root / "merged"
    rows, failed = {}, []
    for name in args.contenders.split(","):
        shutil.rmtree(outd, ignore_errors=True)
        if name == "floor":
            r = measure([py, "-c", FLOOR, str(root / "floor.bin"), *files], env={"K": str(args.k)})
            (root / "floor.bin").unlink(missing_ok=True)
            r["sync"] = _parse(r["log"], r"fsync ([\d.]+)")  # its own fsync, inside wall
            r["wall"] -= r["sync"]
        elif name == "riverbed":
            cmd = [py, "-m", "riverbed.cli.main", "merge", str(outd), *map(str, inputs), "--method", "sma", "--no-progress"]
            r = measure(cmd + (["--threads", str(args.threads)] if args.threads else []))
            r["sync"] = _parse(r["log"], r"fsync\+rename ([\d.]+) s")  # its own fsync, inside wall
            r["wall"] -= r["sync"]
        elif name == "mergekit":
            mk = Path(args.mergekit_python).parent / "mergekit-yaml"
            if not mk.exists():
                print(f"mergekit: {mk} not found; install it in its own venv (pip install torch==2.13.0 mergekit)")
                continue
            cfg = root / "mergekit.yml"
            models = "\n".join(f"  - model: {p}\n    parameters:\n      weight: 1.0" for p in inputs)
            cfg.write_text(f"merge_method: linear\ndtype: bfloat16\nmodels:\n{models}\n")
            r = measure([str(mk), str(cfg), str(outd), "--quiet", "--no-copy-tokenizer", "-j", str(os.cpu_count())])
        elif name == "naive":
            r = measure([py, "-c", NAIVE, str(outd), *map(str, inputs)])
        else:
            raise SystemExit(f"unknown contender {name!r}")
        if r["rc"] != 0:
            print(f"{name} failed (rc {r['rc']}):\n{r['log'][-3000:]}")
            failed.append(name)
            continue
        r["durable"] = r["wall"] + r["sync"]  # wall excludes the fsync part here
        rows[name] = r
        print(f"{name}: {r['durable']:.2f} s", flush=True)
    shutil.rmtree(outd, ignore_errors=True)

    print(f"\nK={args.k} x {in_bytes / args.k / 1e9:.2f} GB bf16 sharded Llama-shaped checkpoints ({in_bytes / 1e9:.2f} GB read), {os.cpu_count()} CPUs, warm page cache")
    base = rows.get("riverbed")
    hdr = (f"{'contender':<10} {'to cache s':>10} {'fsync s':>8} {'durable s':>10} {'GB/s in':>8} {'peak RSS GB':>12} "
           f"{'peak anon GB':>13} {'cache vs riverbed':>18} {'durable vs riverbed':>20}")
    print(hdr)
    print("-" * len(hdr))
    for name, r in rows.items():
        rc = f"{r['wall'] / base['wall']:.2f}x" if base else "-"
        rd = f"{r['durable'] / base['durable']:.2f}x" if base else "-"
        print(f"{name:<10} {r['wall']:>10.2f} {r['sync']:>8.2f} {r['durable']:>10.2f} {in_bytes / r['durable'] / 1e9:>8.2f} "
              f"{r['rss'] / 1e9:>12.2f} {r['anon'] / 1e9:>13.2f} {rc:>18} {rd:>20}")
    print("to cache: process wall time until the output is written (page cache), start-up included; fsync: riverbed's and "
          "the floor's own fsync, a timed `sync` after the others; durable = to cache + fsync.")
    if args.json is not None:
        args.json.write_text(json.dumps({"k": args.k, "bytes_in": in_bytes, "failed": failed, "rows": {
            n: {"to_cache_s": r["wall"], "fsync_s": r["sync"], "durable_s": r["durable"], "peak_rss": r["rss"],
                "peak_anon": r["anon"], "gb_per_s_in": in_bytes / r["durable"] / 1e9} for n, r in rows.items()}}, indent=1))
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
