"""riverbed: make the trajectory of LLM pre-training useful.

One constant-LR main branch (WSD), short decay branches forked from any checkpoint,
WSD-S, checkpoint averaging (PMA) and scaling laws fitted from the branch endpoints.
"""

from __future__ import annotations

__version__ = "0.1.0"

from riverbed.errors import RiverbedError

__all__ = ["RiverbedError", "__version__"]
