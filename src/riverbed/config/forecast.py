"""``[forecast]``: while the main branch trains, the loss a decay started now would reach (light: no torch, no scipy).

Present = on. At each evaluation of the main branch the law is refitted (warm-started from the
previous fit) on the main branch's eval curve so far, with the run's finished decay branches, and
it predicts the final loss of a ``shape`` decay of ``decay`` x the current step starting now.
A constant-LR main branch alone cannot tell a law how much a decay gains, so the forecast needs
either a finished decay branch of the run or ``prior``, a law file (``riverbed predict fit``) whose
decay parameters it keeps while refitting the rest on the main branch. Until the fit is usable
(``min_points`` eval points after the warmup, a decay to calibrate on, a fit that converged) it
logs nothing.

>>> ForecastConfig(decay=0.2, shape="1-sqrt").law
'valley'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from riverbed.errors import ConfigError
from riverbed.schedules.shapes import DECAY_SHAPES

#: The laws of riverbed.predict.laws (literal so that reading a config does not load scipy).
FORECAST_LAWS = ("valley", "mpl", "tissue", "momentum")


@dataclass(frozen=True)
class ForecastConfig:
    """``[forecast]`` section of a run config."""

    law: str = "valley"
    """The law to fit (riverbed.predict.laws; default the predictor's default)."""
    decay: float = 0.2
    """Length of the forecast decay as a fraction of the current step (0.2: a decay of 20 % of the steps so far)."""
    shape: str = "1-sqrt"
    """Decay shape (riverbed schedule shapes)."""
    min_ratio: float = 0.0
    """Final LR multiplier of the forecast decay."""
    prior: str | None = None
    """A law file whose decay parameters calibrate the forecast until the run has a finished decay branch."""
    min_points: int = 8
    """Main-branch eval points after the warmup before a forecast is made."""
    max_nfev: int = 60
    """Function evaluations per warm-started refit (the first fit from scratch gets the fitter's default)."""

    def __post_init__(self) -> None:
        if self.law not in FORECAST_LAWS:
            raise ConfigError(f"forecast.law={self.law!r}: expected one of {', '.join(FORECAST_LAWS)}")
        for name in ("decay", "min_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"forecast.{name}={v!r}: expected a number")
        if self.shape not in DECAY_SHAPES:
            raise ConfigError(f"forecast.shape={self.shape!r}: expected one of {', '.join(DECAY_SHAPES)}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"forecast.decay={self.decay!r}: expected a fraction of the steps so far in (0, 1]")
        if not 0 <= self.min_ratio < 1:
            raise ConfigError(f"forecast.min_ratio={self.min_ratio!r}: expected a number in [0, 1)")
        for name, lo in (("min_points", 4), ("max_nfev", 5)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"forecast.{name}={v!r}: expected an integer >= {lo}")
        if self.prior is not None and not isinstance(self.prior, str):
            raise ConfigError(f"forecast.prior={self.prior!r}: expected the path of a law file")
