"""Working-tree snapshots: what a run pays once at its start (the worktree line's base, the start
of changes.patch) and once at its end (shared isolation's end of changes.patch).

A repository of --files files (default 20,000 small text files in 200 folders, one commit, some
uncommitted edits and untracked files, as a user has). Side by side in interleaved rounds:
`worktrees.snapshot_tree`, which starts its private index from a copy of the user's index (its
stat data spares re-reading unchanged files), and the way it was done before, a private index
filled by `git read-tree HEAD` (no stat data: `git add -A` hashes every file again). Both must
give the same tree (else exit 2). Gate: the copy is at least 2x faster (median).
Usage: python bench/bench_snapshot.py [--files N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

from common import EXIT_BROKEN, EXIT_OK, EXIT_SLOW, log
from prompter.worktrees import snapshot_tree

GATE_RATIO = 2.0


def make_repo(root: Path, files: int) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for i in range(files):
        path = root / f"d{i % 200}" / f"f{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {i}\n" * 50)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    commit = ["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init"]
    subprocess.run(commit, cwd=root, check=True)
    for i in range(0, files, max(1, files // 20)):  # the user's uncommitted work
        (root / f"d{i % 200}" / f"f{i}.txt").write_text("changed\n")
        (root / f"d{i % 200}" / f"new{i}.txt").write_text("untracked\n")


def read_tree_snapshot(repo: Path) -> str:
    """The previous way: a private index from `read-tree HEAD`, then `add -A`, `write-tree`."""
    index = repo / ".git" / f"bench-index-{os.getpid()}"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    try:
        for args in (["read-tree", "HEAD"], ["add", "-A", "--", "."]):
            subprocess.run(["git", *args], cwd=repo, env=env, check=True)
        done = subprocess.run(
            ["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True, text=True
        )
    finally:
        index.unlink(missing_ok=True)
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {"snapshot_tree (index copy)": [], "read-tree HEAD": []}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        make_repo(repo, args.files)
        subprocess.run(["git", "status", "-s"], cwd=repo, check=True, capture_output=True)
        trees = set()
        for _ in range(args.rounds):  # interleaved: both see the same machine load
            t0 = time.perf_counter()
            trees.add(anyio.run(snapshot_tree, repo, (), "bench-snapshot"))
            rows["snapshot_tree (index copy)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            trees.add(read_tree_snapshot(repo))
            rows["read-tree HEAD"].append(time.perf_counter() - t0)
    if len(trees) != 1:
        log(f"the two ways gave different trees: {sorted(trees)}")
        return EXIT_BROKEN
    medians = {k: statistics.median(v) for k, v in rows.items()}
    ratio = medians["read-tree HEAD"] / medians["snapshot_tree (index copy)"]
    result = {
        "files": args.files,
        "rounds": args.rounds,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "max_s": {k: round(max(v), 4) for k, v in rows.items()},
        "speedup": round(ratio, 2),
        "gate": GATE_RATIO,
        "passed": ratio >= GATE_RATIO,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.files} files, {args.rounds} interleaved rounds")
        print("| snapshot | median (s) | max (s) |\n|---|---:|---:|")
        for k, times in rows.items():
            print(f"| {k} | {medians[k]:.3f} | {max(times):.3f} |")
        verdict = "ok" if result["passed"] else "FAILED"
        print(f"index copy {ratio:.1f}x faster; gate >= {GATE_RATIO}x: {verdict}")
    return EXIT_OK if result["passed"] else EXIT_SLOW


if __name__ == "__main__":
    raise SystemExit(main())
