"""Orchestration: what drives training and the run tree together (adopting a foreign run,
decay branches trained by the user's own command)."""
