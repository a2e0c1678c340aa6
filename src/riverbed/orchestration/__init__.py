"""Orchestration: riverbed's own trainer applied to a run tree. Training the main branch in
segments (``drive``), training decay branches forked from its checkpoints (``fork``), and the
merge that stands in for a decay branch (``emulate``). Above ``riverbed.training`` and
``riverbed.runs``; below the executors, which run the same functions as jobs."""
