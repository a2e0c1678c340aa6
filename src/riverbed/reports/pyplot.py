"""The one way riverbed gets matplotlib and writes a figure: headless (Agg), written atomically.

matplotlib is a slow import that only the plotting paths need, so it is imported inside
:func:`pyplot` and nowhere at module top.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from riverbed.io.atomic import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib  # lazy: heavy, and only needed when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: loads matplotlib, which only drawing needs

    return plt


def save(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110, format: str | None = None, **savefig: Any) -> Path:
    """Write ``fig`` to ``path`` atomically (``format``: from the suffix unless given, PNG when
    there is none) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=format or path.suffix.lstrip(".") or "png", dpi=dpi, **savefig)
    pyplot().close(fig)
    return path
