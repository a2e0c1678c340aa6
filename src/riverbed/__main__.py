"""`python -m riverbed ...`: the same command line as the `riverbed` script."""

import sys

from riverbed.cli.main import main

sys.exit(main())
