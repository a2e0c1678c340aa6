"""riverbed.schedules."""
