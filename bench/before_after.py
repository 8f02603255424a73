#!/usr/bin/env python3
"""Run one benchmark against two commits, interleaved, and compare its figures side by side.

A refactor must not make anything slower, and on a noisy machine that is only visible when the
two versions run alternately in the same minutes. For R rounds (default 3) this runs
`bench/BENCH --json ARGS` from a checkout of each commit in turn (the order alternates from round
to round), each with its own `src` first on `PYTHONPATH`, so each side runs its own benchmark
script against its own code. Every number in the JSON each run prints is a figure; those whose
path matches `--keys` (a regular expression, default: all) are shown as the median over the
rounds for each side and the ratio after / before.

    .venv/bin/python bench/before_after.py 24eaf6d HEAD bench_scheduler.py -- --tasks 2000
    .venv/bin/python bench/before_after.py green-15 main bench_validate.py --keys 'median' -- \\
        --tasks 20000 --rounds 1

The checkouts are git worktrees under --out (default bench/out/before_after), made once per
commit and reused; they share this repository's object store.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def checkout(ref: str, out: Path) -> Path:
    """A detached worktree of `ref` under `out`, named by its commit id (reused if there)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = out / commit[:12]
    if not (tree / "src").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
            check=True,
            capture_output=True,
        )
    return tree


def figures(value: Any, path: str = "") -> dict[str, float]:
    """Every number in a JSON value, by its path (`a.b.0.c`)."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, int | float):
        return {path: float(value)}
    items: Any = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    found: dict[str, float] = {}
    for key, item in items:
        found.update(figures(item, f"{path}.{key}" if path else str(key)))
    return found


def run_once(tree: Path, bench: str, args: list[str], python: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run(
        [python, str(tree / "bench" / bench), "--json", *args],
        check=False,  # a failing benchmark's exit is reported with its output below
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    try:
        return figures(json.loads(done.stdout))
    except json.JSONDecodeError:
        sys.exit(f"{bench} at {tree.name} printed no JSON (exit {done.returncode}):\n{done.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="commit or ref measured first in round 1")
    parser.add_argument("after", help="commit or ref compared with it")
    parser.add_argument("bench", help="script name under bench/, e.g. bench_scheduler.py")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--keys", default="", help="regex: show figures whose path matches")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "before_after")
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this)")
    parser.epilog = "Arguments after `--` go to the benchmark."
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    opts = parser.parse_args(argv[:split])
    opts.args = argv[split + 1 :]

    trees = {"before": checkout(opts.before, opts.out), "after": checkout(opts.after, opts.out)}
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for round_ in range(opts.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for side in order:
            runs[side].append(run_once(trees[side], opts.bench, opts.args, opts.python))
            print(f"round {round_ + 1}: {side} done", file=sys.stderr)

    keys = re.compile(opts.keys)
    paths = [p for p in runs["before"][0] if keys.search(p) and p in runs["after"][0]]
    title = f"{opts.bench} {' '.join(opts.args)}: {opts.before} vs {opts.after}"
    print(f"{title}, {opts.rounds} rounds")
    print(f"{'figure':<60} {'before':>12} {'after':>12} {'after/before':>13}")
    for path in paths:
        before = statistics.median(run[path] for run in runs["before"] if path in run)
        after = statistics.median(run[path] for run in runs["after"] if path in run)
        ratio = f"{after / before:.3f}" if before else "-"
        print(f"{path:<60} {before:>12.4g} {after:>12.4g} {ratio:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
