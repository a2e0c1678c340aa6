"""riverbed.merging."""
