"""riverbed.reports."""
