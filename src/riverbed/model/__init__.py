"""riverbed.model."""
