"""The laws against a naive reference of their equations, and recovery of known parameters by the fitter."""

from __future__ import annotations

import numpy as np
import pytest

from riverbed.predict import Curve, fit_curve_law
from riverbed.predict.laws import MPLTerms, TissueTerms, mpl_loss, tissue_loss

MPL_TRUE = dict(L0=2.0, A=0.5, alpha=0.45, B=0.4, C=0.3, beta=0.6, gamma=0.6)
TISSUE_TRUE = dict(L0=2.0, A=0.5, alpha=0.45, C=2e-4)


def _naive_mpl(lr, n, W, L0, A, alpha, B, C, beta, gamma):
    # Luo et al. eq. (4) written as a double loop: eta_0 = lr[W-1] (end of warmup), eta_tau = lr[W-1+tau].
    S = lr[:n].sum()
    ld = 0.0
    for k in range(max(W, 1), n):
        sk = lr[k:n].sum()
        ld += (lr[k - 1] - lr[k]) * (1 - (C * lr[k] ** (-gamma) * sk + 1) ** (-beta))
    return L0 + A * S ** (-alpha) - B * ld


def _naive_tissue(lr, n, W, L0, A, alpha, C, lam=0.999):
    m, s2 = 0.0, 0.0
    for i in range(max(W, 1), n):
        m = lam * m + (lr[i - 1] - lr[i])
        s2 += m
    return L0 + A * lr[:n].sum() ** (-alpha) - C * s2


def _schedules():
    W = 20
    warm = np.linspace(0.05, 1.0, W)
    cos = 0.1 + 0.45 * (1 + np.cos(np.pi * np.arange(480) / 480))
    const = np.ones(480)
    two = np.r_[np.ones(200), np.full(280, 0.3)]
    wsd = np.r_[np.ones(380), np.linspace(1, 0.05, 101)[1:]]
    return W, {"cosine": np.r_[warm, cos], "constant": np.r_[warm, const], "two-stage": np.r_[warm, two], "wsd": np.r_[warm, wsd]}


def test_mpl_matches_the_equation_term_by_term():
    W, sch = _schedules()
    for lr in sch.values():
        steps = [25, 150, 300, 499, 500]
        got = mpl_loss(lr, steps, W, **MPL_TRUE)
        want = [_naive_mpl(lr, n, W, **MPL_TRUE) for n in steps]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_tissue_matches_the_equation_term_by_term():
    W, sch = _schedules()
    for lr in sch.values():
        steps = [25, 150, 300, 500]
        np.testing.assert_allclose(tissue_loss(lr, steps, W, **TISSUE_TRUE), [_naive_tissue(lr, n, W, **TISSUE_TRUE) for n in steps], rtol=1e-12)


def test_binned_ld_sum_stays_close_to_the_exact_one():
    # 20000 decay steps binned into 256 bins: the O(points x bins) form vs the exact O(points x steps) one.
    lr = np.r_[np.linspace(0.01, 1, 100), 0.1 + 0.45 * (1 + np.cos(np.pi * np.arange(20000) / 20000))]
    steps = np.linspace(200, lr.size, 40).astype(int)
    exact = MPLTerms.build(lr, steps, 100, max_terms=10**6).loss(**MPL_TRUE)
    binned = MPLTerms.build(lr, steps, 100)  # default: 2048 bins
    assert binned.delta.size < 2100
    np.testing.assert_allclose(binned.loss(**MPL_TRUE), exact, rtol=1e-5)  # measured 4.4e-6
    coarse = MPLTerms.build(lr, steps, 100, max_terms=256)
    np.testing.assert_allclose(coarse.loss(**MPL_TRUE), exact, rtol=1e-4)  # measured 7.2e-5


def test_analytic_jacobians_match_finite_differences():
    W, sch = _schedules()
    steps = np.arange(30, 501, 13)
    for terms, p in ((MPLTerms.build(sch["wsd"], steps, W), MPL_TRUE), (TissueTerms.build(sch["wsd"], steps, W), TISSUE_TRUE)):
        x = np.array(list(p.values()))
        _, J = terms.loss_and_jac(*x)
        for i in range(x.size):
            h = 1e-6 * max(1.0, abs(x[i]))
            e = np.eye(x.size)[i] * h
            num = (terms.loss(*(x + e)) - terms.loss(*(x - e))) / (2 * h)
            np.testing.assert_allclose(J[:, i], num, rtol=1e-5, atol=1e-9)


def _curves(law: str, names: tuple[str, ...], scale: float = 3e-4) -> list[Curve]:
    W, sch = _schedules()
    out = []
    for name in names:
        lr = sch[name] * scale  # physical LR units: the fitter normalises them
        steps = np.arange(W + 5, lr.size + 1, 5)
        p = MPL_TRUE if law == "mpl" else TISSUE_TRUE
        u = lr / scale
        loss = (MPLTerms.build(u, steps, W).loss(**p) if law == "mpl" else TissueTerms.build(u, steps, W).loss(**p))
        out.append(Curve(name, lr, steps, loss, W))
    return out


@pytest.mark.parametrize("law,true", [("mpl", MPL_TRUE), ("tissue", TISSUE_TRUE)])
def test_fit_recovers_known_parameters_and_predicts_an_unseen_schedule(law, true):
    fit = fit_curve_law(_curves(law, ("cosine", "constant", "two-stage")), law)
    assert fit.lr_scale == pytest.approx(3e-4)
    for k, v in true.items():
        # Noise-free curves: the shape parameters are identified only as well as the curves constrain them.
        assert fit.params[k] == pytest.approx(v, rel=0.05 if law == "mpl" else 1e-3), k
    (held,) = _curves(law, ("wsd",))
    err = np.abs(fit.predict(held) - held.loss) / held.loss
    assert err.max() < 2e-4
    assert fit.mean_rel_error < 1e-4
