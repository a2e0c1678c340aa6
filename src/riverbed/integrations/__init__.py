"""riverbed.integrations."""
