"""riverbed.runs."""
