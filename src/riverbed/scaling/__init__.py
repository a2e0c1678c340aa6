"""riverbed.scaling."""
