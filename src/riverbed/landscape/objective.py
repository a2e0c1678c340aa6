"""The held-out loss as a function of named parameter tensors: values, gradients and Hessian-vector products.

Every probe works on an :class:`Objective`, the mean of a few scalar terms of a parameter dict
(one term per fixed held-out batch of a run, or one closed-form term in tests). The model
objective measures values with riverbed.training.evaluate (the very number training logs) and
differentiates a ``torch.func.functional_call`` of the same model on the same batches.

Hessian-vector products use double backward by default (measured ~2x faster than
``torch.func.jvp`` of ``grad`` on the tiny model; ``method="jvp"`` is kept as a cross-check).
Both need the math SDPA kernel: the fused CPU/GPU attention kernels have no double-backward or
forward-mode derivative, so HVPs run under ``sdpa_kernel(SDPBackend.MATH)``.

>>> import torch
>>> a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
>>> obj = Objective([lambda p: 0.5 * p["w"] @ a @ p["w"]])
>>> obj.hvp({"w": torch.zeros(2)}, {"w": torch.tensor([1.0, 1.0])})["w"].tolist()
[2.0, 1.0]
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from riverbed.training.evaluate import evaluate

Params = dict[str, torch.Tensor]
Term = Callable[[Params], torch.Tensor]
HVP_METHODS = ("double-backward", "jvp")


# ---- vector arithmetic on parameter dicts (one name order: the first dict's) ------------------

def combine(parts: Sequence[Params], coeffs: Sequence[float]) -> Params:
    """sum_i coeffs[i] * parts[i], tensor by tensor (float64 accumulation, back to each dtype)."""
    out = {}
    for name, t0 in parts[0].items():
        acc = torch.zeros(t0.shape, dtype=torch.float64, device=t0.device)
        for p, c in zip(parts, coeffs):
            acc.add_(p[name].to(torch.float64), alpha=float(c))
        out[name] = acc.to(t0.dtype)
    return out


def dot(a: Params, b: Params) -> float:
    return math.fsum(float((a[n].double() * b[n].double()).sum()) for n in a)


def flatten(p: Params) -> torch.Tensor:
    """One float64 vector (names in ``p``'s order)."""
    return torch.cat([t.detach().reshape(-1).to(torch.float64) for t in p.values()])


def unflatten(v: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for name, t in like.items():
        n = t.numel()
        out[name] = v[i:i + n].reshape(t.shape).to(device=t.device, dtype=t.dtype)
        i += n
    return out


@contextlib.contextmanager
def _hvp_kernels() -> Iterator[None]:
    with sdpa_kernel(SDPBackend.MATH):
        yield


class Objective:
    """Mean of ``terms`` (differentiable scalars of a parameter dict).

    ``measure`` (optional) computes the same value without gradients by another route (for a
    model: riverbed.training.evaluate on the loaded weights); :meth:`loss` uses it when given.
    ``hvp_count`` counts Hessian-vector products (one per call, whatever the number of terms).
    """

    def __init__(self, terms: Sequence[Term], *, measure: Callable[[Params], float] | None = None,
                 method: str = "double-backward") -> None:
        if not terms:
            raise ValueError("Objective needs at least one term")
        if method not in HVP_METHODS:
            raise ValueError(f"hvp method must be one of {HVP_METHODS}, got {method!r}")
        self.terms = list(terms)
        self._measure = measure
        self.method = method
        self.hvp_count = 0
        self.grad_count = 0

    def loss(self, params: Params) -> float:
        if self._measure is not None:
            return float(self._measure(params))
        with torch.no_grad():
            return math.fsum(float(t(params)) for t in self.terms) / len(self.terms)

    def grad(self, params: Params) -> Params:
        self.grad_count += 1
        leaves = {n: t.detach().requires_grad_(True) for n, t in params.items()}
        out = {n: torch.zeros_like(t) for n, t in params.items()}
        with _hvp_kernels():
            for term in self.terms:
                gs = torch.autograd.grad(term(leaves), list(leaves.values()), allow_unused=True)
                for n, g in zip(leaves, gs):
                    if g is not None:
                        out[n] += g / len(self.terms)
        return out

    def hvp(self, params: Params, v: Params) -> Params:
        """H(params) @ v for the mean of the terms."""
        self.hvp_count += 1
        out = {n: torch.zeros_like(t) for n, t in params.items()}
        with _hvp_kernels():
            for term in self.terms:
                hv = self._hvp_jvp(term, params, v) if self.method == "jvp" else self._hvp_double(term, params, v)
                for n in out:
                    if hv.get(n) is not None:
                        out[n] += hv[n].detach() / len(self.terms)
        return out

    @staticmethod
    def _hvp_double(term: Term, params: Params, v: Params) -> dict[str, torch.Tensor | None]:
        leaves = {n: t.detach().requires_grad_(True) for n, t in params.items()}
        gs = torch.autograd.grad(term(leaves), list(leaves.values()), create_graph=True, allow_unused=True)
        gv = sum((g * v[n]).sum() for n, g in zip(leaves, gs) if g is not None)
        if not torch.is_tensor(gv) or not gv.requires_grad:  # the loss is linear in every parameter
            return {n: torch.zeros_like(t) for n, t in params.items()}
        hs = torch.autograd.grad(gv, list(leaves.values()), allow_unused=True)
        return dict(zip(leaves, hs))

    @staticmethod
    def _hvp_jvp(term: Term, params: Params, v: Params) -> dict[str, torch.Tensor | None]:
        from torch.func import grad, jvp  # lazy: optional dependency (torch)

        detached = {n: t.detach() for n, t in params.items()}
        _, hv = jvp(grad(term), (detached,), ({n: v[n].detach() for n in detached},))
        return dict(hv)


def model_objective(model: torch.nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                    device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                    chunk: int = 0, method: str = "double-backward") -> Objective:
    """The held-out loss of ``model`` on ``batches`` (mean of per-batch mean token losses, as training logs it)."""
    from torch.func import functional_call  # lazy: optional dependency (torch)

    batches = [(x.to(device), y.to(device)) for x, y in batches]

    def term_for(x: torch.Tensor, y: torch.Tensor) -> Term:
        # The term is differentiated twice, so no autocast: float32 second derivatives.
        return lambda p: functional_call(model, p, (x, y)).loss

    def measure(params: Params) -> float:
        load_params(model, params)
        return evaluate(model, batches, device=device, autocast=autocast, chunk=chunk)

    model.eval()  # no dropout here, but probes never train the module they probe
    return Objective([term_for(x, y) for x, y in batches], measure=measure, method=method)


@torch.no_grad()
def load_params(model: torch.nn.Module, params: Params) -> None:
    """Copy ``params`` into the model's parameters of the same names (every one must be given)."""
    for name, p in model.named_parameters():
        p.copy_(params[name])


def model_params(model: torch.nn.Module) -> Params:
    """A detached copy of the model's parameters (tied tensors once: named_parameters dedups them)."""
    return {n: p.detach().clone() for n, p in model.named_parameters()}
