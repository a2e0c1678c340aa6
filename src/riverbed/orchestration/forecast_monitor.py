"""The ``[forecast]`` monitor (riverbed.predict.forecast has the engine; train_main adds it when the section is
present): at every
evaluation of the main branch, the loss a decay started now would reach, with its interval, once the law
refitted on the run so far is usable; nothing before.

Rows: ``{"kind": "forecast", "step", "tokens", "flops", "forecast_loss", "forecast_lo", "forecast_hi",
"forecast_end", "forecast_decay_steps", "forecast_law", "forecast_calibration", "forecast_refit_s",
"eval_s"}`` in metrics.jsonl (and TensorBoard as ``forecast/...``); the progress bar shows the forecast.
``forecast_refit_s`` is the refit's cost, ``eval_s`` the evaluation's own (measured on the same step).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from riverbed.checkpoints import layout
from riverbed.config.forecast import ForecastConfig
from riverbed.errors import ConfigError, RiverbedError
from riverbed.predict.curves import Curve
from riverbed.predict.fit import LawFit
from riverbed.predict.forecast import Forecaster
from riverbed.predict.runs import branch_curve
from riverbed.runs import Run
from riverbed.runs.metrics import read_metrics
from riverbed.training.callbacks import Callback, TrainContext


def load_prior(cfg: ForecastConfig) -> LawFit | None:
    """The ``prior`` law file, or None; ConfigError names the key and the file."""
    if cfg.prior is None:
        return None
    try:
        text = Path(cfg.prior).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"forecast.prior={cfg.prior!r}: cannot read the law file ({exc.strerror})") from None
    try:
        fit = LawFit.from_json(text, where=f"forecast.prior {cfg.prior}")
    except RiverbedError as exc:
        raise ConfigError(str(exc)) from None
    if fit.law != cfg.law:
        raise ConfigError(f"forecast.prior={cfg.prior!r}: a {fit.law} fit, but forecast.law is {cfg.law!r}")
    return fit


class ForecastMonitor(Callback):
    """Trainer callback: ``train_branch(..., callbacks=[ForecastMonitor(cfg.forecast)])``."""

    def __init__(self, cfg: ForecastConfig, branch: str = layout.MAIN) -> None:
        self.cfg = cfg
        self.branch = branch
        self.prior = load_prior(cfg)
        self.forecaster: Forecaster | None = None
        self._t_step = time.perf_counter()
        self._decays: dict[tuple[str, int], Curve] = {}

    def on_step_end(self, ctx: TrainContext) -> None:
        self._t_step = time.perf_counter()  # the evaluation, if due, runs right after this hook

    def _start(self, ctx: TrainContext) -> Forecaster:
        c = self.cfg
        f = Forecaster(ctx.schedule, float(ctx.cfg.optim.lr), law=c.law, decay=c.decay, shape=c.shape, min_ratio=c.min_ratio,
                       min_points=c.min_points, max_nfev=c.max_nfev, prior=self.prior)
        path = layout.metrics_path(ctx.run_dir, ctx.branch)
        if path.exists():  # a resumed branch: its eval points so far
            for r in read_metrics(path):
                if r.get("kind") == "eval" and isinstance(r.get("eval_loss"), (int, float)) and int(r["step"]) < ctx.step:
                    f.add(int(r["step"]), float(r["eval_loss"]))
        return f

    def decay_curves(self, run_dir: Path) -> list[Curve]:
        """The run's finished decay branches forked from this branch (none outside a run tree)."""
        try:
            run = Run.open(run_dir)
            out = []
            for b in run.branches:
                if b.fork is None or b.parent != self.branch or b.final is None:
                    continue
                key = (b.name, b.final.step)
                if key not in self._decays:
                    self._decays[key] = branch_curve(run, b)
                out.append(self._decays[key])
            return out
        except RiverbedError:
            return []

    def on_eval(self, ctx: TrainContext, metrics: Mapping[str, float]) -> None:
        if ctx.branch != self.branch or not ctx.is_main:
            return
        eval_s = time.perf_counter() - self._t_step
        if self.forecaster is None:
            self.forecaster = self._start(ctx)
        self.forecaster.add(ctx.step, float(metrics["eval_loss"]))
        fc = self.forecaster.forecast(ctx.step, self.decay_curves(Path(ctx.run_dir)))
        if fc is None:
            return  # no usable fit yet: silent
        ctx.log({**fc.row(), "flops": ctx.flops, "eval_s": eval_s})
        ctx.bar_extra["decay now"] = f"{fc.loss:.4f} [{fc.lo:.4f}, {fc.hi:.4f}]"
