"""riverbed.experiments."""
