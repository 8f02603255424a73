"""CLI start-up: `prompter --version` and `prompter validate` against a bare interpreter.

The CLI imports only argparse at start; pydantic and the engine load when a command needs them.
Runs the three commands interleaved, N rounds, and prints median wall times and ratios.
Usage: python bench/bench_startup.py [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "pipeline.toml"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "prompter --version": [sys.executable, "-m", "prompter", "--version"],
    "prompter validate (example)": [sys.executable, "-m", "prompter", "validate", str(EXAMPLE)],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = medians["python -c pass"]
    if args.json:
        print(json.dumps({"rounds": args.rounds, "median_s": medians}, indent=2))
        return 0
    print(f"{args.rounds} interleaved rounds, Python {sys.version.split()[0]}\n")
    print("| command | median wall (ms) | vs `python -c pass` |")
    print("|---|---:|---:|")
    for name, median in medians.items():
        print(f"| `{name}` | {median * 1000:.0f} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
