"""Probes against closed forms: an exact quadratic, and the bigram logit-table model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from riverbed.data.bigram import BigramLanguage
from riverbed.data.batches import heldout_batches
from riverbed.landscape import LogitTable, Objective, dense_hessian, interpolate, lanczos, merge_taylor, model_objective, plane, sharpness
from riverbed.landscape.logit_table import context_weights
from riverbed.landscape.objective import flatten
from riverbed.landscape.probes import line_alphas
from riverbed.training.evaluate import evaluate, optimal_loss

CPU = torch.device("cpu")


def _quadratic(n1=6, n2=4, seed=0):
    """0.5 t^T A t + b^T t + c over two tensors (t = their concatenation), A symmetric indefinite."""
    g = torch.Generator().manual_seed(seed)
    n = n1 + n2
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    ev = torch.tensor([9.0, 7.0, 5.5, 4.0, 3.0, 1.0, 0.5, 0.0, -0.5, -2.0], dtype=torch.float64)[:n]
    a = q @ torch.diag(ev) @ q.T
    b = torch.randn(n, generator=g, dtype=torch.float64)

    def f(p):
        t = torch.cat([p["u"].reshape(-1), p["v"].reshape(-1)])
        return 0.5 * t @ a @ t + b @ t + 3.0

    def point(s):
        gg = torch.Generator().manual_seed(s)
        return {"u": torch.randn(2, 3, generator=gg, dtype=torch.float64), "v": torch.randn(n2, generator=gg, dtype=torch.float64)}

    return Objective([f]), ev, point


def test_merge_taylor_identity_holds_to_rounding_on_a_quadratic():
    obj, _, point = _quadratic()
    ckpts = [point(s) for s in range(1, 5)]
    for weights in (None, [0.1, 0.2, 0.3, 0.4]):
        r = merge_taylor(obj, ckpts, weights)
        assert r.predicted_gain == pytest.approx(r.measured_gain, abs=1e-12, rel=1e-12)
        assert r.predicted_vs_last == pytest.approx(r.measured_vs_last, abs=1e-12, rel=1e-12)
        assert r.hvps == 4 and np.allclose(np.array(r.cross), np.array(r.cross).T, atol=1e-12)
    # A non-quadratic term breaks the identity: the test can fail.
    bent = Objective([lambda p: obj.terms[0](p) + (p["u"] ** 4).sum()])
    r = merge_taylor(bent, ckpts)
    assert abs(r.predicted_gain - r.measured_gain) > 1e-3


def test_lanczos_recovers_a_known_spectrum():
    obj, ev, point = _quadratic()
    s = sharpness(obj, point(1), top=4, max_hvps=40, tol=1e-8)
    assert s.converged and s.eigenvalues == pytest.approx([9.0, 7.0, 5.5, 4.0], abs=1e-9)
    assert max(s.residuals) < 1e-7 and s.hvps <= 40
    assert obj.hvp_count == s.hvps


def test_lanczos_reports_non_convergence_when_the_budget_runs_out():
    d = torch.linspace(1.0, 2.0, 400, dtype=torch.float64)  # clustered: needs many steps
    s = lanczos(lambda v: d * v, 400, top=3, max_hvps=8, tol=1e-8)
    assert not s.converged and s.hvps == 8 and s.to_json()["status"] == "did not converge"
    assert max(s.residuals) > 1e-8


def test_lanczos_on_an_operator_smaller_than_the_request():
    a = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    s = lanczos(lambda v: a @ v, 2, top=5, max_hvps=20)
    assert s.converged and s.eigenvalues == pytest.approx([3.0, 1.0])


def _bigram_batches(vocab=8, seed=0):
    lang = BigramLanguage.generate(vocab=vocab, deterministic=0.5, max_successors=4, seed=seed)
    toks = lang.sample(3000, seed=1)
    return lang, heldout_batches(toks, 16, 4, 3)


def test_logit_table_at_the_true_logits_reaches_the_optimal_loss():
    lang, batches = _bigram_batches()
    table = torch.log(torch.from_numpy(lang.probs).clamp_min(1e-30)).float()
    model = LogitTable(lang.vocab, table)
    loss = evaluate(model, batches, device=CPU)
    assert loss == pytest.approx(optimal_loss(lang, batches), abs=1e-5)
    assert abs(loss - lang.entropy_rate) < 0.1  # a 3 x 4 x 16-token sample of the stationary chain
    worse = evaluate(LogitTable(lang.vocab), batches, device=CPU)  # uniform: log V
    assert worse == pytest.approx(np.log(lang.vocab), abs=1e-6) and worse > loss


def test_logit_table_hessian_matches_the_closed_form_and_lanczos_finds_its_top():
    lang, batches = _bigram_batches()
    g = torch.Generator().manual_seed(0)
    table = torch.randn(lang.vocab, lang.vocab, generator=g)
    model = LogitTable(lang.vocab, table)
    obj = model_objective(model, batches, device=CPU)
    params = {"table": table.clone()}
    h = dense_hessian(table, context_weights(batches, lang.vocab))
    v = torch.randn(lang.vocab ** 2, generator=g, dtype=torch.float64)
    hv = flatten(obj.hvp(params, {"table": v.reshape(lang.vocab, lang.vocab).float()}))
    assert torch.allclose(hv, h @ v, atol=1e-5)
    dense = torch.linalg.eigvalsh(h).flip(0)[:5]
    s = sharpness(obj, params, top=5, max_hvps=60, tol=1e-5)
    assert s.converged
    assert s.eigenvalues == pytest.approx(dense.tolist(), rel=1e-4, abs=1e-6)
    jvp = model_objective(model, batches, device=CPU, method="jvp")
    assert torch.allclose(flatten(jvp.hvp(params, {"table": v.reshape(8, 8).float()})), hv, atol=1e-6)


def test_interpolation_between_identical_checkpoints_is_flat():
    obj, _, point = _quadratic()
    p = point(3)
    r = interpolate(obj, p, p, points=5, extrapolate=0.5)
    assert max(r.losses) - min(r.losses) <= 1e-14 * abs(r.losses[0])  # float64 rounding of 1.5 p - 0.5 p
    assert r.alphas[0] == -0.5 and r.alphas[-1] == 1.5


def test_interpolation_on_a_quadratic_is_the_closed_form_parabola():
    obj, _, point = _quadratic()
    a, b = point(1), point(2)
    r = interpolate(obj, a, b, points=11)
    la, lb, lm = obj.loss(a), obj.loss(b), r.losses[5]
    # f(t) quadratic in t: f(t) = la + (lb - la) t + 2 (la + lb - 2 lm) t (t - 1) ... check at every point
    for t, f in zip(r.alphas, r.losses):
        pred = la * (1 - t) * (1 - 2 * t) + lb * t * (2 * t - 1) + 4 * lm * t * (1 - t)  # Lagrange through 0, .5, 1
        assert f == pytest.approx(pred, rel=1e-12, abs=1e-12)


def test_line_alphas_keeps_both_ends_exact():
    assert line_alphas(21, 0.0)[0] == 0.0 and line_alphas(21, 0.0)[-1] == 1.0 and len(line_alphas(21, 0.5)) == 41
    with pytest.raises(ValueError):
        line_alphas(1, 0.0)


def test_plane_coordinates_and_losses():
    obj, _, point = _quadratic()
    a, b, c = point(1), point(2), point(3)
    r = plane(obj, a, b, c, grid=3, marks={"far": point(4)})
    pts = {p.name: p for p in r.points}
    dist = float((flatten(b) - flatten(a)).norm())
    assert (pts["A"].x, pts["A"].y) == (0.0, 0.0) and pts["B"].x == pytest.approx(dist) and abs(pts["B"].y) < 1e-12
    assert max(pts[n].off_plane for n in "ABC") < 1e-12 and pts["far"].off_plane > 0.1
    assert pts["C"].loss == pytest.approx(obj.loss(c))
    assert len(r.losses) == 3 and len(r.losses[0]) == 3
    with pytest.raises(ValueError, match="collinear"):
        plane(obj, a, b, {k: 2 * b[k] - a[k] for k in a})
