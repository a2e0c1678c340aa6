"""Orchestration: riverbed's own trainer applied to a run tree. Training the main branch in
segments (``drive``), training decay branches forked from its checkpoints (``fork``), and the
merge that stands in for a decay branch (``emulate``); and the runs riverbed did not train:
adopting a foreign training output as a run tree (``adopt``), decay branches trained by the
user's own command (``command_branch``). Above ``riverbed.training`` and ``riverbed.runs``;
below the executors, which run the same functions as jobs."""
