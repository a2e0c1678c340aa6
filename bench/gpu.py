"""The GPU figures in one run: the 124m preset's tokens/s and MFU, a 4 x 1 GB merge, FSDP2.

Run it through ``bench/gpu.sh`` (one command, under 10 minutes on one H100/H200-class GPU):

  1. throughput: the 124m preset (GPT-2 small's shape) in bf16 on one GPU -- riverbed's
     ``train_branch`` with its bookkeeping, the bare PyTorch loop on the same model and
     batches, and that bare loop under ``torch.compile`` (riverbed's trainer has no compile
     switch: the third row says what one would buy) -- as tokens/s and model FLOP utilisation
     (``ModelConfig.flops_per_token`` x tokens/s / the GPU's dense bf16 peak), beside the
     ~40-50 % MFU that nanoGPT and llm.c reach at this size;
  2. merge: ``bench/merge.py --size-gb 1 --k 4 --contenders floor,riverbed`` on this
     machine's disk (``--merge-dir``): riverbed's durable merge time against the floor (read
     every input once, write and fsync one output);
  3. FSDP2: ``torchrun --nproc_per_node=G riverbed train`` of the same preset with
     ``train.parallel = "fsdp"`` on the G GPUs present; tokens/s from ``metrics.jsonl`` after
     the first rows, MFU against G x peak.

Figures go to ``--out`` (JSON, rewritten after every section, so a run cut short keeps what it
measured) and to the terminal. ``--smoke`` (``bench/gpu.sh --dry``) runs every section on the
CPU at toy sizes (the tiny preset, a compile with the "eager" backend, two small checkpoints,
FSDP2 over one gloo process): seconds, to keep the script working where there is no GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by a substring of the device name.
#: Vendor data sheets; SXM parts where the name does not say.
PEAK_BF16_TFLOPS = (("H200", 989.4), ("GH200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("H800", 989.4), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1),
                    ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0))

#: What nanoGPT / llm.c reach at GPT-2 small's size on an A100/H100, the anchor of the MFU row.
ANCHOR_MFU = (0.40, 0.50)


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


def load_average() -> float:
    return os.getloadavg()[0]


def throughput(args: argparse.Namespace, device: str, peak: float | None) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    import train_throughput as tt  # the loops of bench/train_throughput.py: one owner

    from riverbed.config import OptimConfig, RunConfig, TrainConfig
    from riverbed.data import DataConfig, load_dataset
    from riverbed.model import ModelConfig

    torch.manual_seed(0)
    data = load_dataset(DataConfig())
    model = ModelConfig.preset(args.preset, max_seq_len=max(args.seq, ModelConfig.preset(args.preset).max_seq_len))
    if data.vocab_size > model.vocab_size:
        model = replace(model, vocab_size=data.vocab_size)
    cfg = RunConfig(model=model, data=DataConfig(), optim=OptimConfig(lr=6e-4), schedule={"type": "warmup-stable", "warmup": 2},
                    train=TrainConfig(batch_size=args.batch, seq_len=args.seq, ckpt_every=0, eval_every=0, eval_batches=1,
                                      log_every=max(args.steps, 1), device=device, dtype=args.dtype, threads=args.threads,
                                      tensorboard=False))
    dev = torch.device(device)
    fpt = model.flops_per_token(args.seq)
    rows = {}
    for name, fn in (("riverbed", lambda: tt.riverbed_loop(cfg, data, dev, args.warmup, args.steps, False)),
                     ("bare", lambda: tt.bare_loop(cfg, data, dev, args.warmup, args.steps)),
                     ("bare+compile", lambda: tt.bare_loop(cfg, data, dev, args.warmup, args.steps, compile_backend=args.compile_backend))):
        runs = [fn()[0] for _ in range(args.repeats)]
        tps = statistics.median(runs)
        rows[name] = {"tokens_per_s": tps, "mfu": None if peak is None else tps * fpt / (peak * 1e12)}
        mfu = "" if peak is None else f", MFU {rows[name]['mfu']:.1%}"
        print(f"  {name:<13} {tps:12,.0f} tokens/s{mfu}", flush=True)
    base = rows["bare"]["tokens_per_s"]
    return {"preset": args.preset, "params": model.n_params(), "flops_per_token": fpt, "batch": args.batch, "seq": args.seq,
            "dtype": args.dtype, "steps": args.steps, "repeats": args.repeats, "compile_backend": args.compile_backend,
            "rows": rows, "riverbed_vs_bare": rows["riverbed"]["tokens_per_s"] / base,
            "compile_vs_bare": rows["bare+compile"]["tokens_per_s"] / base, "anchor_mfu": list(ANCHOR_MFU)}


def merge(args: argparse.Namespace, py: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="riverbed-gpu-merge-", dir=args.merge_dir) as tmp:
        out = Path(tmp) / "merge.json"
        cmd = [py, str(HERE / "merge.py"), "--json", str(out)]
        size = ["--size-gb", "0.001", "--k", "2", "--shard-mb", "1", "--smoke-shape"] if args.smoke else [
            "--size-gb", str(args.merge_gb), "--k", "4"]
        cmd += [*size, "--contenders", "floor,riverbed", "--dir", tmp]
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0 or not out.is_file():
            raise SystemExit(f"merge bench failed (rc {rc}): {' '.join(cmd)}")
        res = json.loads(out.read_text())
    rows = res["rows"]
    res["riverbed_vs_floor"] = rows["riverbed"]["durable_s"] / rows["floor"]["durable_s"]
    return res


FSDP_TOML = """
[model]
preset = "{preset}"

[optim]
lr = 6e-4

[schedule]
type = "warmup-stable"
warmup = 2

[train]
batch_size = {batch}
seq_len = {seq}
max_steps = {steps}
ckpt_every = 0
eval_every = 0
log_every = 1
tensorboard = false
device = "{device}"
dtype = "{dtype}"
parallel = "fsdp"
"""


def fsdp(args: argparse.Namespace, device: str, gpus: int, peak: float | None, py: str) -> dict:
    nproc = max(gpus, 1)
    steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory(prefix="riverbed-gpu-fsdp-") as tmp:
        cfg = Path(tmp) / "fsdp.toml"
        cfg.write_text(FSDP_TOML.format(preset=args.preset, batch=args.batch * nproc, seq=args.seq, steps=steps,
                                        device=device, dtype=args.dtype))
        run = Path(tmp) / "run"
        cmd = [py, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "riverbed.cli.main",
               "--", "train", str(cfg), "--run", str(run), "--no-progress"]
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, check=False, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}).returncode
        wall = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"FSDP run failed (rc {rc}): {' '.join(cmd)}")
        rows = [json.loads(line) for p in run.rglob("metrics.jsonl") for line in p.read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in rows if r.get("kind") == "train" and r.get("step", 0) > args.warmup and r.get("tokens_per_s")]
    if not rates:
        raise SystemExit(f"FSDP run wrote no train rows after step {args.warmup}")
    from riverbed.model import ModelConfig

    model = ModelConfig.preset(args.preset, max_seq_len=max(args.seq, ModelConfig.preset(args.preset).max_seq_len))
    tps = statistics.median(rates)
    mfu = None if peak is None else tps * model.flops_per_token(args.seq) / (nproc * peak * 1e12)
    print(f"  fsdp x{nproc:<7} {tps:12,.0f} tokens/s" + ("" if mfu is None else f", MFU {mfu:.1%}"), flush=True)
    return {"processes": nproc, "tokens_per_s": tps, "mfu": mfu, "rows_used": len(rates), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "gpu.json", help="where the figures go (JSON)")
    ap.add_argument("--preset", default="124m")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step (per GPU under FSDP)")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of every rate (compilation included)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=4, help="CPU threads per process")
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak per GPU (default: from the device name)")
    ap.add_argument("--merge-gb", type=float, default=1.0, help="size of each of the 4 merged checkpoints")
    ap.add_argument("--merge-dir", default=None, help="a folder on the disk to measure (default: the temporary folder)")
    ap.add_argument("--sections", default="throughput,merge,fsdp")
    ap.add_argument("--smoke", action="store_true", help="dry run on the CPU at toy sizes (bench/gpu.sh --dry): seconds")
    args = ap.parse_args(argv)

    import torch

    py = sys.executable
    if args.smoke:
        args.preset, args.batch, args.seq, args.dtype, args.warmup, args.steps = "tiny", 2, 32, "float32", 1, 2
        args.repeats, args.threads, args.compile_backend = 1, 1, "eager"
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        raise SystemExit("no CUDA GPU visible: run on a GPU machine, or use --smoke (bench/gpu.sh --dry) for the CPU dry run")
    device = "cuda" if cuda else "cpu"
    gpus = torch.cuda.device_count() if cuda else 0
    name = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
    peak = args.peak_tflops or (peak_tflops(name) if cuda else None)
    torch.set_num_threads(args.threads)
    report = {"format": "riverbed.bench.gpu/1", "dry": args.smoke, "device": name, "gpus": gpus, "peak_bf16_tflops": peak,
              "torch": torch.__version__, "load_average_start": load_average(), "command": " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["load_average_now"] = load_average()
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, args.out)

    print(f"device {name} x{gpus}, dense bf16 peak {peak} TFLOP/s, torch {torch.__version__}, load {load_average():.2f}")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    for section in sections:
        t0 = time.perf_counter()
        print(f"== {section}", flush=True)
        if section == "throughput":
            report["throughput"] = throughput(args, device, peak)
        elif section == "merge":
            report["merge"] = merge(args, py)
            print(f"  riverbed / floor (durable): {report['merge']['riverbed_vs_floor']:.2f}x")
        elif section == "fsdp":
            report["fsdp"] = fsdp(args, device, gpus, peak, py)
        else:
            raise SystemExit(f"unknown section {section!r}")
        report.setdefault("section_wall_s", {})[section] = time.perf_counter() - t0
        save()
    if "throughput" in report:
        t = report["throughput"]
        print(f"riverbed / bare loop: {t['riverbed_vs_bare']:.3f}x; torch.compile / bare: {t['compile_vs_bare']:.3f}x"
              + ("" if peak is None else f"; riverbed MFU {t['rows']['riverbed']['mfu']:.1%} (nanoGPT / llm.c: 40-50 %)"))
    print(f"figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
