"""Start-up: `riverbed --help` and `riverbed ls RUN` against a bare `python -c pass`, side by side.

    PYTHONPATH=src .venv/bin/python bench/startup.py            # 15 interleaved rounds

Each command is a fresh interpreter started the way the `riverbed` console script starts
(``from riverbed.cli.main import main``); the rounds run the contenders one after another, so
background load hits them alike; the median wall time of each and its excess over the floor
(the interpreter alone) are reported, with the target of 0.3 s. A last run of each lists the
heavy modules it imported (torch, scipy, matplotlib, pandas): a CLI start must import none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
HEAVY = ("torch", "scipy", "matplotlib", "pandas", "transformers")
ENTRY = "import sys; from riverbed.cli.main import main; sys.exit(main())"
PROBE = ("import sys, json\nfrom riverbed.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)")

TOML = """
[model]
preset = "tiny"

[train]
batch_size = 2
seq_len = 16
max_steps = 10
device = "cpu"
"""


def make_run(root: Path) -> Path:
    from riverbed.config import load_config_text
    from riverbed.runs import Run

    return Run.create(root / "run", load_config_text(TOML)).path


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--smoke", action="store_true", help="two rounds (make bench-smoke): checks the bench works")
    args = ap.parse_args(argv)
    rounds = 2 if args.smoke else args.rounds
    py = sys.executable
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="riverbed-startup-") as tmp:
        run = make_run(Path(tmp))
        contenders = {
            "python -c pass (floor)": [py, "-c", "pass"],
            "riverbed --help": [py, "-c", ENTRY, "--help"],
            "riverbed ls RUN": [py, "-c", ENTRY, "ls", str(run)],
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(rounds):
            for name, cmd in contenders.items():
                times[name].append(wall(cmd))
        heavy = {}
        for name, cmd in contenders.items():
            if cmd[2] != ENTRY:
                continue
            probe = subprocess.run([py, "-c", PROBE.format(heavy=HEAVY), *cmd[3:]], capture_output=True, text=True, check=True)
            heavy[name] = json.loads(probe.stderr.strip().splitlines()[-1])
    floor = statistics.median(times["python -c pass (floor)"])
    print(f"{os.cpu_count()} CPUs, load average {load_before:.2f} before / {os.getloadavg()[0]:.2f} after; median of {rounds} "
          f"interleaved rounds")
    print(f"{'command':<26}{'median s':>10}{'min s':>8}{'over floor s':>14}{'vs floor':>10}  heavy imports")
    ok = True
    for name, ts in times.items():
        med = statistics.median(ts)
        extra = "" if name not in heavy else (", ".join(heavy[name]) or "none")
        print(f"{name:<26}{med:>10.3f}{min(ts):>8.3f}{med - floor:>14.3f}{med / floor:>9.2f}x  {extra}")
        ok &= not heavy.get(name)
    print(f"target: under {TARGET_S} s on an idle machine; heavy modules imported at start: {'none' if ok else 'SOME'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
