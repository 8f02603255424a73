"""Worktree isolation: per-task cost of worktree + commit + merge + removal on a big repository.

A repository of --files files (default 5,000, ~40 MiB of text in nested folders, one commit
plus some uncommitted changes). Per task, as `isolation = "worktree"` does it: a worktree from
the pool cleaned and moved to the integration tip (the first one is created), the task's edit
(one file), the check of the user's refs, commit, `merge-tree` merge into the tip, and the
worktree back into the pool. Side by side in the same rounds: creating a worktree from scratch
(`git worktree add` + remove) and the naive isolation, a full copy of the tree (`cp -a`).
Gate: the median per-task cost (worktree reused) is under 0.5 s; creation is paid once per
parallel slot.
Usage: python bench/bench_worktree.py [--files N] [--tasks T] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import anyio

from prompter.worktrees import Integration, Merged

GATE_S = 0.5


def make_repo(root: Path, files: int, rng: random.Random) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    for i in range(files):
        path = root / f"pkg{i % 50}" / f"mod{i // 50}" / f"file{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"line {j} {rng.random()}\n" for j in range(200)))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init"],
        cwd=root,
        check=True,
    )
    for i in range(0, files, files // 10):  # some uncommitted work, as a user has
        (root / f"pkg{i % 50}" / f"mod{i // 50}" / f"file{i}.py").write_text("changed\n")


async def isolated_tasks(repo: Path, tasks: int) -> tuple[list[float], float]:
    line = Integration(repo, "bench")
    started = time.perf_counter()
    await line.start()
    setup = time.perf_counter() - started
    per_task = []
    for t in range(tasks):
        t0 = time.perf_counter()
        tree = await line.checkout(f"task{t}", 1)
        (tree / f"pkg{t % 50}" / f"new{t}.py").write_text(f"task {t}\n")
        assert line.guard is not None and await line.guard.check(line.root) is None
        commit = await line.commit(f"task{t}", tree)
        assert commit is not None
        outcome = await line.merge(f"task{t}", commit)
        assert isinstance(outcome, Merged)
        line.release(tree)  # cleaned by the next checkout
        per_task.append(time.perf_counter() - t0)
    await line.cleanup()
    return per_task, setup


def copies(repo: Path, tasks: int, target: Path) -> list[float]:
    out = []
    for t in range(tasks):
        t0 = time.perf_counter()
        dest = target / f"copy{t}"
        subprocess.run(["cp", "-a", str(repo), str(dest)], check=True)
        shutil.rmtree(dest)
        out.append(time.perf_counter() - t0)
    return out


def worktree_add_only(repo: Path, tasks: int, target: Path) -> list[float]:
    out = []
    for t in range(tasks):
        t0 = time.perf_counter()
        dest = target / f"wt{t}"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(dest)], cwd=repo, check=True
        )
        subprocess.run(["git", "worktree", "remove", "--force", str(dest)], cwd=repo, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        make_repo(repo, args.files, random.Random(1))
        size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file()) / 2**20
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        rows: dict[str, list[float]] = {
            "prompter task, worktree reused": [],
            "prompter task, first (worktree created)": [],
            "git worktree add + remove": [],
            "cp -a copy of the tree": [],
        }
        setups = []
        for _ in range(2):  # interleaved rounds
            per_task, setup = anyio.run(isolated_tasks, repo, args.tasks)
            rows["prompter task, first (worktree created)"].append(per_task[0])
            rows["prompter task, worktree reused"] += per_task[1:]
            setups.append(setup)
            rows["git worktree add + remove"] += worktree_add_only(repo, 2, scratch)
            rows["cp -a copy of the tree"] += copies(repo, 2, scratch)
    medians = {k: statistics.median(v) for k, v in rows.items()}
    result = {
        "files": args.files,
        "repo_mib": round(size, 1),
        "tasks": args.tasks,
        "median_s": {k: round(v, 4) for k, v in medians.items()},
        "max_s": {k: round(max(v), 4) for k, v in rows.items()},
        "run_setup_s": round(statistics.median(setups), 3),
        "gate_s": GATE_S,
        "passed": medians["prompter task, worktree reused"] < GATE_S,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.files} files ({size:.1f} MiB), {args.tasks} tasks x 2 rounds")
        print("| per task | median (s) | max (s) |\n|---|---:|---:|")
        for k, times in rows.items():
            print(f"| {k} | {medians[k]:.3f} | {max(times):.3f} |")
        print(f"run setup (snapshot of the working tree as the base): {result['run_setup_s']} s")
        print(f"gate: median < {GATE_S} s: {'ok' if result['passed'] else 'FAILED'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
