"""Cost and accuracy of `riverbed probe sharpness --top 5` (Lanczos on Hessian-vector products).

Two models on held-out batches of the bigram language (riverbed.data.bigram):

* ``--probe`` (default: the 'tiny' Llama-style preset on a 64-token bigram vocabulary): the cost
  of the top-5 Lanczos run in HVPs and seconds, against the *floor* of that many plain
  forward+backward passes over the same held-out batches (median of ``--repeats`` timings).
* a model small enough to form its Hessian densely (a 1-layer d_model 8 decoder, vocabulary 16):
  the same Lanczos run against ``torch.autograd.functional.hessian`` of the same loss (an
  independent route: reverse-over-reverse on a flat vector) + ``eigvalsh``; eigenvalue error and
  the time ratio. The bigram logit table (closed-form Hessian, riverbed.landscape.logit_table)
  is checked the same way.

    python bench/probes.py                  # CPU
    python bench/probes.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from riverbed.data.batches import heldout_batches
from riverbed.data.bigram import BigramLanguage
from riverbed.landscape import LogitTable, dense_hessian, model_objective, sharpness
from riverbed.landscape.logit_table import context_weights
from riverbed.model import ModelConfig, build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _batches(vocab: int, seq: int, batch: int, n: int, device: torch.device):
    lang = BigramLanguage.generate(vocab=vocab, deterministic=0.5, max_successors=min(16, vocab), seed=0)
    toks = lang.sample(max(20_000, 4 * seq * batch * n), seed=2)
    return [(x.to(device), y.to(device)) for x, y in heldout_batches(toks, seq, batch, n)]


def _trained(model: torch.nn.Module, batches, steps: int) -> None:
    """A few AdamW steps on the batches: the probe should not sit at the random init."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for s in range(steps):
        x, y = batches[s % len(batches)]
        model(x, y).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def fb_seconds(model: torch.nn.Module, batches, device: torch.device, repeats: int) -> float:
    """One forward+backward over every held-out batch (the cost unit of one HVP's floor)."""
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        for x, y in batches:
            model(x, y).loss.backward()
        _sync(device)
        times.append(time.perf_counter() - t)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def interleaved_ratio(model: torch.nn.Module, obj, params, batches, device: torch.device, rounds: int) -> tuple[float, float, float]:
    """Median over rounds of (one HVP) / (one forward+backward), timed back to back in each round so
    that background load hits both alike; also the median ms of each."""
    hv_t, fb_t = [], []
    for _ in range(rounds + 1):
        _sync(device)
        t = time.perf_counter()
        obj.hvp(params, params)
        _sync(device)
        t1 = time.perf_counter()
        for x, y in batches:
            model(x, y).loss.backward()
        _sync(device)
        hv_t.append(t1 - t)
        fb_t.append(time.perf_counter() - t1)
        model.zero_grad(set_to_none=True)
    pairs = list(zip(hv_t[1:], fb_t[1:]))
    return statistics.median(h / f for h, f in pairs), statistics.median(hv_t[1:]), statistics.median(fb_t[1:])


def lanczos_cost(model: torch.nn.Module, batches, device: torch.device, repeats: int, top: int):
    obj = model_objective(model, batches, device=device)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    sharpness(obj, params, top=1, max_hvps=3)  # warm-up (kernels, autograd caches)
    runs = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        s = sharpness(obj, params, top=top)
        _sync(device)
        runs.append((time.perf_counter() - t, s))
    secs = statistics.median(r[0] for r in runs)
    return secs, runs[0][1], obj, params


def dense_reference(model: torch.nn.Module, batches) -> tuple[torch.Tensor, float]:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def f(flat: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split(sizes), shapes))))
        return sum(functional_call(model, parts, (x, y)).loss for x, y in batches) / len(batches)

    t = time.perf_counter()
    with sdpa_kernel(SDPBackend.MATH):
        h = torch.autograd.functional.hessian(f, flat0)
    ev = torch.linalg.eigvalsh(h.double()).flip(0)
    return ev, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval-batches", type=int, default=4)
    ap.add_argument("--smoke", action="store_true", help="a seconds-long run at a toy size (make bench-smoke): checks the bench works, its figures mean nothing")
    args = ap.parse_args()
    if args.smoke:
        args.threads, args.repeats, args.seq, args.batch, args.eval_batches = 1, 1, 16, 2, 1
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    # ---- cost against the forward+backward floor --------------------------------------------
    cfg = ModelConfig.preset(args.preset, vocab_size=args.vocab, max_seq_len=args.seq)
    model = build_model(cfg, seed=0, device=dev)
    batches = _batches(args.vocab, args.seq, args.batch, args.eval_batches, dev)
    _trained(model, batches, 30)
    fb = fb_seconds(model, batches, dev, args.repeats)
    with sdpa_kernel(SDPBackend.MATH):  # the attention kernel HVPs must use: its share of the gap
        fb_math = fb_seconds(model, batches, dev, args.repeats)
    secs, s, obj, params = lanczos_cost(model, batches, dev, args.repeats, args.top)
    ratio, hv_med, fb_med = interleaved_ratio(model, obj, params, batches, dev, 4 * args.repeats)
    print(f"probe model: preset {args.preset}, {cfg.n_params():,} params, held-out {args.eval_batches} x {args.batch} x {args.seq} tokens, "
          f"{args.device}, {args.threads} threads")
    print(f"  sharpness --top {args.top}: {s.hvps} HVPs ({s.iterations} Lanczos steps), {secs:.3f} s, "
          f"{'converged' if s.converged else 'DID NOT CONVERGE'}; top eigenvalue {s.eigenvalues[0]:.5g}")
    print(f"  floor: {s.hvps} forward+backward passes = {s.hvps * fb:.3f} s ({fb * 1e3:.2f} ms each)")
    print(f"  (forward+backward with the math attention kernel HVPs need: {fb_math * 1e3:.2f} ms each)")
    print(f"  ratio: {secs / (s.hvps * fb):.2f}x the floor ({secs / s.hvps * 1e3:.2f} ms per HVP = {secs / s.hvps / fb:.2f} forward+backward)")
    print(f"  interleaved (load-robust): one HVP = {ratio:.2f} forward+backward (median of {4 * args.repeats} rounds; "
          f"{hv_med * 1e3:.1f} ms vs {fb_med * 1e3:.1f} ms)")

    # ---- accuracy and cost against a dense Hessian ---------------------------------------------
    small = ModelConfig.preset("tiny", vocab_size=16, d_model=8, n_layers=1, n_heads=2, n_kv_heads=1, d_ff=16, max_seq_len=32)
    m2 = build_model(small, seed=0, device=dev)
    b2 = _batches(16, 32, 4, 2, dev)
    _trained(m2, b2, 30)
    secs2, s2, _, _ = lanczos_cost(m2, b2, dev, args.repeats, args.top)
    ev, dense_s = dense_reference(m2, b2)
    ref = ev[:args.top].tolist()
    err = max(abs(a - b) / abs(b) for a, b in zip(s2.eigenvalues, ref))
    n2 = sum(p.numel() for p in m2.parameters())
    print(f"dense reference: 1-layer d_model 8 decoder, {n2} params (Hessian {n2} x {n2})")
    print(f"  lanczos: {s2.hvps} HVPs, {secs2:.3f} s; dense hessian + eigvalsh: {dense_s:.3f} s; "
          f"lanczos / dense = {secs2 / dense_s:.3f}")
    print(f"  top-{args.top} eigenvalues lanczos {[round(x, 5) for x in s2.eigenvalues]}")
    print(f"                     dense   {[round(x, 5) for x in ref]}")
    print(f"  max relative eigenvalue error {err:.2e}; max residual {max(s2.residuals):.2e}")

    # ---- the logit table: closed-form Hessian ---------------------------------------------------
    v = 32
    b3 = [(x.cpu(), y.cpu()) for x, y in _batches(v, 32, 8, 2, torch.device("cpu"))]
    table = torch.randn(v, v, generator=torch.Generator().manual_seed(0))
    lt = LogitTable(v, table)
    obj = model_objective(lt, b3, device=torch.device("cpu"))
    t = time.perf_counter()
    s3 = sharpness(obj, {"table": table.clone()}, top=args.top)
    lt_s = time.perf_counter() - t
    t = time.perf_counter()
    ev3 = torch.linalg.eigvalsh(dense_hessian(table, context_weights(b3, v))).flip(0)[:args.top]
    closed_s = time.perf_counter() - t
    err3 = max(abs(a - b) / abs(b) for a, b in zip(s3.eigenvalues, ev3.tolist()))
    print(f"logit table V={v} ({v * v} params): lanczos {s3.hvps} HVPs {lt_s:.3f} s vs closed form + eigvalsh {closed_s:.3f} s; "
          f"max relative eigenvalue error {err3:.2e}")


if __name__ == "__main__":
    main()
