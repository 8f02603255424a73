#!/usr/bin/env python3
"""Simulate fanning random DAGs out over CI jobs: the grouping `prompter ci generate` writes
against the lower bound and two baselines.

For each of S seeds (default 10) and each concurrency cap (default 20 and 60 jobs at once) it
draws a random DAG of 20-200 tasks (each depending on 0-3 earlier ones, half of them among the
20 before it, which makes longer chains), durations of 1-15 minutes, and a start-up per job of
30-120 s. All makespans come from the same event simulation (`prompter.fanout.jobs.
simulate_jobs`: a job waits for its needs, then for a free runner, then pays the start-up and
runs its tasks one at a time):

    grouping       `prompter.fanout.grouping.group_tasks` with `--max-jobs` (default 150)
    per task       one job per task
    one job        one job for everything
    lower bound    max(critical path + one start-up, total work / concurrency)

Gate: the median over DAGs of grouping / lower bound is at most --max-ratio (1.15), and on no
DAG is the grouping slower than the better baseline. Exit 0 within the gate, 1 not.

    .venv/bin/python bench/bench_fanout.py
    .venv/bin/python bench/bench_fanout.py --seeds 3 --max-tasks 40 --json
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from typing import Any

from common import EXIT_OK, EXIT_SLOW, emit, log
from prompter.fanout.grouping import MAX_JOBS, group_tasks
from prompter.fanout.jobs import Costs, estimate_makespan, lower_bound
from prompter.graph import DependencyGraph


def random_dag(rng: random.Random, n: int) -> DependencyGraph:
    deps = []
    for task in range(n):
        near = rng.random() < 0.5
        pool = list(range(max(0, task - 20), task)) if near else list(range(task))
        deps.append(sorted(rng.sample(pool, min(rng.randint(0, 3), len(pool)))))
    return DependencyGraph(deps)


def one_case(seed: int, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(seed * 1000 + concurrency)
    n = rng.randint(args.min_tasks, args.max_tasks)
    graph = random_dag(rng, n)
    weights = [rng.uniform(60, 900) for _ in range(n)]
    costs = Costs(overhead=rng.uniform(30, 120), concurrency=concurrency, slots=1)
    t0 = time.perf_counter()
    grouping = group_tasks(graph, weights, costs, max_jobs=args.max_jobs)
    seconds = time.perf_counter() - t0
    bound = lower_bound(graph, weights, costs)
    grouped = estimate_makespan(graph, weights, [list(g) for g in grouping.groups], costs)
    per_task = estimate_makespan(graph, weights, [[t] for t in range(n)], costs)
    one = estimate_makespan(graph, weights, [list(range(n))], costs)
    return {
        "seed": seed,
        "concurrency": concurrency,
        "tasks": n,
        "dependencies": graph.edge_count,
        "overhead_s": round(costs.overhead, 1),
        "jobs": len(grouping.groups),
        "needs": grouping.edge_count,
        "grouping_s": round(seconds, 3),
        "ratio": grouped / bound,
        "per_task_ratio": per_task / bound,
        "one_job_ratio": one / bound,
        "beats_baselines": grouped <= min(per_task, one) + 1e-6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--caps", default="20,60", help="jobs at once, comma-separated")
    parser.add_argument("--min-tasks", type=int, default=20)
    parser.add_argument("--max-tasks", type=int, default=200)
    parser.add_argument("--max-jobs", type=int, default=MAX_JOBS)
    parser.add_argument("--max-ratio", type=float, default=1.15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    cases = []
    for seed in range(1, args.seeds + 1):
        for cap in caps:
            case = one_case(seed, cap, args)
            log(f"seed {seed} cap {cap}: {case['tasks']} tasks, {case['jobs']} jobs, "
                f"ratio {case['ratio']:.3f}")  # fmt: skip
            cases.append(case)
    median = {
        key: statistics.median(c[key] for c in cases)
        for key in ("ratio", "per_task_ratio", "one_job_ratio")
    }
    losses = [c for c in cases if not c["beats_baselines"]]
    ok = median["ratio"] <= args.max_ratio and not losses
    table = "\n".join(
        [
            f"{len(cases)} DAGs of {args.min_tasks}-{args.max_tasks} tasks, caps {args.caps}, "
            f"at most {args.max_jobs} jobs; Python {platform.python_version()}.",
            "",
            "| makespan / lower bound | median | max |",
            "|---|---:|---:|",
            *(
                f"| {label} | {median[key]:.3f} | {max(c[key] for c in cases):.3f} |"
                for label, key in (
                    ("grouping", "ratio"),
                    ("one job per task", "per_task_ratio"),
                    ("one job for everything", "one_job_ratio"),
                )
            ),
            "",
            f"Grouping slower than the better baseline on {len(losses)} of {len(cases)} DAGs; "
            f"median {statistics.median(c['jobs'] for c in cases):g} jobs, "
            f"{statistics.median(c['needs'] for c in cases):g} needs; grouping time median "
            f"{statistics.median(c['grouping_s'] for c in cases):.2f} s, "
            f"max {max(c['grouping_s'] for c in cases):.2f} s.",
        ]
    )
    result = {"cases": cases, "median": median, "losses": len(losses), "ok": ok}
    emit(result, table, args.json)
    if not ok:
        log(f"over the gate: median {median['ratio']:.3f} (max {args.max_ratio}), "
            f"{len(losses)} DAGs slower than a baseline")  # fmt: skip
    return EXIT_OK if ok else EXIT_SLOW


if __name__ == "__main__":
    sys.exit(main())
