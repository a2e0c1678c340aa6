"""riverbed.data."""
