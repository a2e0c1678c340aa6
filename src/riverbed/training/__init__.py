"""riverbed.training."""
