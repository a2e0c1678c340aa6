"""A decay command that fails: prints a line, exits 3."""

import sys

print("loading the fork from", sys.argv[1])
print("CUDA out of memory (pretend)")
sys.exit(3)
