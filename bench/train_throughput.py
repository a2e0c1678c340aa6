"""Training throughput: riverbed's trainer vs a bare PyTorch loop vs transformers' Llama.

All three train the same model shape on the same batches with the same maths (AdamW with the
same decay split, gradient clipping, the LR set every step), on the same number of threads, in
one process. Warmup steps are excluded; each contender runs ``--repeats`` times, interleaved
(round-robin) so that background load hits them alike; the median is reported.

* riverbed: ``train_branch`` with its real bookkeeping (metrics row every ``--log-every``
  steps, progress bar, lazy loss/grad-norm, callbacks) -- timed from inside by a callback;
  setup, the final evaluation and checkpoint are outside the timed window.
* bare: the same model and batches in a 15-line loop (the floor: no bookkeeping at all).
* hf: ``transformers.LlamaForCausalLM`` of the same dimensions (SDPA attention), same loop.

    python bench/train_throughput.py --sizes 1m 5m --threads 2
    python bench/train_throughput.py --sizes 124m --device cuda --dtype bfloat16 --batch 16 --seq 1024 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from riverbed.training.callbacks import Callback


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _autocast(device: torch.device, dtype: str):
    if dtype == "bfloat16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _optimizer(model: torch.nn.Module, cfg) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def bare_loop(cfg, data, device, warmup: int, steps: int, hf: bool = False, compile_backend: str | None = None) -> float:
    """Tokens/s of the plainest correct loop over the same batches (``hf``: transformers' Llama;
    ``compile_backend``: the model under ``torch.compile`` with that backend, e.g. "inductor")."""
    from riverbed.data import get_batch
    from riverbed.model import build_model

    m, t = cfg.model, cfg.train
    if hf:
        from transformers import LlamaConfig, LlamaForCausalLM

        hcfg = LlamaConfig(vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.d_ff,
                           num_hidden_layers=m.n_layers, num_attention_heads=m.n_heads, num_key_value_heads=m.n_kv_heads,
                           max_position_embeddings=m.max_seq_len, rope_theta=m.rope_theta, rms_norm_eps=m.norm_eps,
                           tie_word_embeddings=m.tie_embeddings, attn_implementation="sdpa")
        torch.manual_seed(0)
        model = LlamaForCausalLM(hcfg).to(device)

        def loss_of(x, y):
            logits = model(input_ids=x).logits
            return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
    else:
        model = build_model(m, seed=t.seed, device=device)
        fwd = model if compile_backend is None else torch.compile(model, backend=compile_backend)

        def loss_of(x, y):
            return fwd(x, y).loss

    opt = _optimizer(model, cfg.optim)
    sched = cfg.schedule_object()
    autocast = _autocast(device, t.dtype)
    micro = t.batch_size // t.grad_accum
    start = cpu = 0.0
    for s in range(warmup + steps):
        if s == warmup:
            _sync(device)
            start, cpu = time.perf_counter(), time.process_time()
        for g in opt.param_groups:
            g["lr"] = cfg.optim.lr * sched.multiplier(s)
        x, y = get_batch(data.train, s, t.batch_size, t.seq_len, t.seed)
        x, y = x.to(device), y.to(device)
        for i in range(t.grad_accum):
            with autocast():
                loss = loss_of(x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]) / t.grad_accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    n = steps * t.tokens_per_step
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


class _Timer(Callback):
    """Times steps warmup+1 .. warmup+steps from inside riverbed's loop (a callback)."""

    def __init__(self, warmup: int, steps: int, device: torch.device) -> None:
        self.warmup, self.last, self.device = warmup, warmup + steps, device
        self.start = self.end = self.cpu_start = self.cpu_end = 0.0

    def on_step_end(self, ctx) -> None:
        if ctx.step in (self.warmup, self.last):
            _sync(self.device)
            if ctx.step == self.warmup:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()
            else:
                self.end, self.cpu_end = time.perf_counter(), time.process_time()


def riverbed_loop(cfg, data, device, warmup: int, steps: int, progress: bool) -> float:
    from riverbed.training import train_branch

    timer = _Timer(warmup, steps, device)
    with tempfile.TemporaryDirectory() as run:
        train_branch(cfg, run, "main", until_step=warmup + steps, callbacks=[timer], progress=progress, data=data)
    n = steps * cfg.train.tokens_per_step
    return n / (timer.end - timer.start), n / (timer.cpu_end - timer.cpu_start)


def bookkeeping_us(cfg, steps: int = 20000) -> float:
    """Microseconds per step of the loop's own bookkeeping (LR from the schedule, counters, lazy
    loss / grad-norm, a metrics row's .item() every log_every steps), without the model: the
    part of riverbed's step that a bare loop does not pay, measured without compute noise."""
    from riverbed.training.callbacks import TrainContext
    from riverbed.training.distributed import DistInfo, mean_
    from riverbed.training.optim import build_optimizer, set_lr

    model = torch.nn.Linear(4, 4)
    opt = build_optimizer(model, cfg.optim)
    sched = cfg.schedule_object()
    ctx = TrainContext(cfg=cfg, run_dir=".", branch="main", model=model, optimizer=opt, schedule=sched,
                       logger=None, dist=DistInfo(), evaluator=None)
    loss, norm, tps = torch.tensor(1.0), torch.tensor(2.0), cfg.train.tokens_per_step
    start = time.perf_counter()
    for s in range(steps):
        ctx.lr = cfg.optim.lr * float(sched.multiplier(s)) * ctx.lr_scale
        set_lr(opt, ctx.lr)
        total = torch.zeros(())
        total += loss
        ctx.step, ctx.tokens, ctx.flops = s + 1, (s + 1) * tps, (s + 1) * tps * 6.0
        ctx._set_step_tensors(mean_(total.div_(cfg.train.grad_accum), ctx.dist), norm)
        if ctx.step % cfg.train.log_every == 0:
            _ = (ctx.train_loss, ctx.grad_norm)
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["1m", "5m"], help="ModelConfig presets")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak (dense) for model FLOP utilisation")
    p.add_argument("--no-hf", action="store_true")
    p.add_argument("--progress", action="store_true", help="show riverbed's progress bar (off: keeps the table clean)")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run at a toy size (make bench-smoke): checks the bench works, its figures mean nothing")
    args = p.parse_args()
    if args.smoke:
        args.sizes, args.threads, args.batch, args.seq, args.warmup, args.steps, args.repeats = ["tiny"], 1, 2, 32, 1, 2, 1

    from rich.console import Console
    from rich.table import Table

    from riverbed.config import OptimConfig, RunConfig, TrainConfig
    from riverbed.data import DataConfig, load_dataset
    from riverbed.model import ModelConfig

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        import transformers  # noqa: F401

        have_hf = not args.no_hf
    except ImportError:
        have_hf = False
    table = Table(title=f"training tokens/s ({device.type}, {args.dtype}, {args.threads} threads, batch {args.batch}x{args.seq}, "
                        f"median of {args.repeats}x{args.steps} steps after {args.warmup} warmup; cpu = per CPU-second)")
    for col in ("model", "params", "bare loop", "riverbed", "riverbed / bare", "(cpu) riverbed / bare", "HF Llama",
                "HF / bare", "MFU riverbed"):
        table.add_column(col, justify="right")
    data = load_dataset(DataConfig())
    for size in args.sizes:
        model = ModelConfig.preset(size, max_seq_len=max(args.seq, ModelConfig.preset(size).max_seq_len))
        if data.vocab_size > model.vocab_size:
            model = replace(model, vocab_size=data.vocab_size)
        cfg = RunConfig(model=model, data=DataConfig(), optim=OptimConfig(lr=1e-3),
                        schedule={"type": "warmup-stable", "warmup": 2},
                        train=TrainConfig(batch_size=args.batch, seq_len=args.seq, grad_accum=args.grad_accum,
                                          ckpt_every=0, eval_every=0, eval_batches=1, log_every=args.log_every,
                                          device=args.device, dtype=args.dtype, threads=args.threads, tensorboard=False))
        runs: dict[str, list[tuple[float, float]]] = {"bare": [], "riverbed": [], "hf": []}
        for r in range(args.repeats):
            runs["bare"].append(bare_loop(cfg, data, device, args.warmup, args.steps))
            runs["riverbed"].append(riverbed_loop(cfg, data, device, args.warmup, args.steps, args.progress))
            if have_hf:
                runs["hf"].append(bare_loop(cfg, data, device, args.warmup, args.steps, hf=True))
            print(f"{size} repeat {r + 1} (wall, cpu tokens/s): "
                  + "  ".join(f"{k} {v[-1][0]:,.0f} {v[-1][1]:,.0f}" for k, v in runs.items() if v), flush=True)
        book = bookkeeping_us(cfg)
        print(f"{size}: riverbed bookkeeping {book:.0f} us/step = {book * 1e-6 * statistics.median(w for w, _ in runs['bare']) / cfg.train.tokens_per_step:.4%} of a bare step", flush=True)
        med = {k: statistics.median(w for w, _ in v) for k, v in runs.items() if v}
        cpu = {k: statistics.median(c for _, c in v) for k, v in runs.items() if v}
        mfu = ""
        if args.peak_tflops:
            mfu = f"{med['riverbed'] * model.flops_per_token(args.seq) / (args.peak_tflops * 1e12):.1%}"
        table.add_row(size, f"{model.n_params():,}", f"{med['bare']:,.0f}", f"{med['riverbed']:,.0f}",
                      f"{med['riverbed'] / med['bare']:.3f}x", f"{cpu['riverbed'] / cpu['bare']:.3f}x",
                      f"{med['hf']:,.0f}" if "hf" in med else "n/a",
                      f"{med['hf'] / med['bare']:.3f}x" if "hf" in med else "n/a", mfu)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
