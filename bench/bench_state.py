#!/usr/bin/env python3
"""Benchmark the state I/O of a run: bytes written must grow linearly with the task count.

For each size (default 1k, 2k, 5k, 10k tasks) a random DAG is driven through
`GraphScheduler` with an in-process runner that passes every attempt at once (as in
`bench_scheduler.py`), persisted by the real `StateStore`, exactly as `prompter run` wires it:
`begin_run`, one journal line per record change (running; then the attempt together with
the passed status: 2 per task, an fdatasync on the terminal one), `end_run`, and the
compaction into `state.json` when the store closes. Reported per size:
`StateStore.bytes_written` (journal appends + the snapshot), its split, bytes per task, and
wall time per task.

The requirement: bytes/task at the largest size within 1.2x of bytes/task at the smallest, i.e.
total I/O linear in the number of tasks (rewriting the state on every event would be
quadratic; the table shows what that would have written, estimated from the snapshot size).

Exit status: 0 linear, 1 bytes/task grows beyond --max-growth, 2 a correctness check failed.

    .venv/bin/python bench/bench_state.py                        # 1k, 2k, 5k, 10k tasks
    .venv/bin/python bench/bench_state.py --sizes 1000,20000 --json
"""

from __future__ import annotations

import argparse
import gc
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_scheduler import build_workflow, drive, random_deps
from common import EXIT_BROKEN, EXIT_OK, EXIT_SLOW, emit, log
from prompter.fingerprints import fingerprints

EVENTS_PER_TASK = 2  # running; the attempt with the passed status


def naive_bytes(tasks: int, snapshot_bytes: int) -> float:
    """What rewriting the whole state on every event would write (estimate).

    The k-th task's events each rewrite a state of about k records, each record costing what it
    costs in the final snapshot: EVENTS_PER_TASK * sum_k k * (snapshot / tasks).
    """
    per_record = snapshot_bytes / tasks
    return EVENTS_PER_TASK * per_record * tasks * (tasks + 1) / 2


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"Random DAGs of no-op tasks, real `StateStore` (fdatasync on), seed {result['seed']}, "
        f"Python {result['python']}.",
        "",
        "| tasks | bytes written | journal | snapshot | **bytes/task** | vs smallest "
        "| µs/task | rewrite-per-event estimate |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result["sizes"]:
        rows.append(
            f"| {m['tasks']:,} | {m['bytes_written']:,} | {m['journal_bytes']:,} "
            f"| {m['snapshot_bytes']:,} | **{m['bytes_per_task']:,.1f}** | {m['growth']:.3f}x "
            f"| {m['us_per_task']:.0f} | {m['naive_bytes'] / 2**20:,.0f} MiB |"
        )
    rows += [
        "",
        f"bytes written = `StateStore.bytes_written` after the store closed: journal lines "
        f"(2 per task and 2 per run) plus the compacted snapshot. Gate: bytes/task at "
        f"{result['sizes'][-1]['tasks']:,} tasks within {result['max_growth']:g}x of bytes/task "
        f"at {result['sizes'][0]['tasks']:,}. The last column is what rewriting the whole state "
        "on every event would write (estimated from the snapshot size): quadratic.",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000,2000,5000,10000", help="task counts (default 1000,2000,5000,10000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="DAG seed (default 1)")
    parser.add_argument(
        "--max-growth", type=float, default=1.2, help="allowed bytes/task growth (default 1.2)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: expected numbers separated by commas, got {args.sizes!r}")
    if not sizes or sizes[0] < 1:
        parser.error("--sizes: at least one size, each at least 1")

    tmp = Path(tempfile.mkdtemp(prefix="bench-state-"))
    rows: list[dict[str, Any]] = []
    try:
        warm = build_workflow(random_deps(200, args.seed), "warm")  # untimed: imports, paths
        drive(warm, fingerprints(warm), tmp / "warm")
        for n in sizes:
            workflow = build_workflow(random_deps(n, args.seed), f"state{n}")
            prints = fingerprints(workflow)
            gc.collect()
            gc.freeze()  # as `prompter run` does after loading the workflow
            store_dir = tmp / f"n{n}"
            done = drive(workflow, prints, store_dir)
            shutil.rmtree(store_dir, ignore_errors=True)
            gc.unfreeze()
            if done.problems:
                for p in done.problems:
                    log(f"FAIL: {n} tasks: {p}")
                return EXIT_BROKEN
            if done.bytes_written != done.journal_bytes + done.snapshot_bytes:
                log(
                    f"FAIL: {n} tasks: bytes_written {done.bytes_written} != journal "
                    f"{done.journal_bytes} + snapshot {done.snapshot_bytes}"
                )
                return EXIT_BROKEN
            rows.append(
                {
                    "tasks": n,
                    "bytes_written": done.bytes_written,
                    "journal_bytes": done.journal_bytes,
                    "snapshot_bytes": done.snapshot_bytes,
                    "bytes_per_task": done.bytes_written / n,
                    "seconds": done.seconds,
                    "us_per_task": done.seconds / n * 1e6,
                    "naive_bytes": naive_bytes(n, done.snapshot_bytes),
                }
            )
            log(
                f"  {n:>7} tasks: {done.bytes_written:>12,} bytes, "
                f"{done.bytes_written / n:8.1f} bytes/task, {done.seconds:6.2f}s"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[0]["bytes_per_task"]
    for row in rows:
        row["growth"] = row["bytes_per_task"] / base
    growth = rows[-1]["growth"]
    ok = growth <= args.max_growth
    result: dict[str, Any] = {
        "seed": args.seed,
        "python": platform.python_version(),
        "sizes": rows,
        "growth": growth,
        "max_growth": args.max_growth,
        "pass": ok,
    }
    emit(result, markdown(result), args.json)
    if ok:
        log(f"OK: bytes/task grew {growth:.3f}x from {sizes[0]} to {sizes[-1]} tasks")
    else:
        log(f"FAIL: bytes/task grew {growth:.3f}x (limit {args.max_growth:g}x)")
    return EXIT_OK if ok else EXIT_SLOW


if __name__ == "__main__":
    sys.exit(main())
