#!/usr/bin/env python3
"""Benchmark the makespan of graph mode: `prompter run` on random DAGs against the lower bound.

For each of S seeds (default 10) it generates a random DAG of 30-40 tasks (each depending on 0-3
earlier ones, written in shuffled file order) with random durations drawn from 0.2-1.5 s, then
scaled so that the lower bound max(critical path, total work / slots) is --target seconds
(default 2.5). Every task's agent is `sleep <its duration>` (a task-level `agent_command`) and its
verify command is `true`; 4 slots. The lower bound counts the sleeps only, so every other cost
(process start-up, verify, bookkeeping) counts against the schedule.

Variants, run one after another for each seed (the order rotates from seed to seed):

    prompter   `prompter run WF --progress none --fresh --report-dir D`, a real run. Its state
               is seeded first with one earlier record per task whose duration is the task's
               sleep, as if an earlier run had measured them, so the critical-path priority
               uses the known durations. Makespan = the run's own record (`finished_at -
               started_at` of this run in state.json: from scheduling start to the last task's
               end; the interpreter start-up and the workflow load before it are excluded and
               reported separately as "process wall").
    barrier    a level-by-level schedule run by this script: the tasks of wave k (graph.waves())
               start only when all of wave k-1 have finished; within a wave, file order, at
               most 4 at once.
    fifo       an event-driven ready queue run by this script with no priority: ready tasks
               start in the order they became ready (file order among ties), at most 4 at once.

The two comparison variants run in this process on anyio with `prompter.processes.run_process`,
each task being exactly what prompter runs for it: `sleep <duration>`, then `/bin/sh -c true`,
each in its own process group with output through a pipe. They write no logs or state, so any
bookkeeping cost is prompter's alone. Makespan = from the driver's start to the last task's end.
`--variants` can add `greedy`: prompter's own policy (`prompter.admission.Admission` with the
known durations) run by this script's driver, to tell the policy from the implementation.

For every variant the script also *simulates* the policy with exact durations and no overhead,
so the table separates what the policy loses from what execution adds.

The requirement: the median over seeds of prompter's makespan / lower bound is at most 1.10.

Exit status: 0 within budget, 1 the median ratio exceeds --max-ratio, 2 a correctness check
failed (a run failed, a task did not pass, or a task started before a dependency finished).

    .venv/bin/python bench/bench_makespan.py                     # 10 seeds, ~2 minutes
    .venv/bin/python bench/bench_makespan.py --seeds 5 --target 2 --json
    .venv/bin/python bench/bench_makespan.py --variants prompter,greedy,barrier,fifo
"""

from __future__ import annotations

import argparse
import heapq
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from common import DEFAULT_OUT, EXIT_BROKEN, EXIT_OK, EXIT_SLOW, emit, find_prompter, log
from prompter.admission import Admission, Demand, Limits
from prompter.config import load_workflow
from prompter.fingerprints import fingerprints
from prompter.graph import DependencyGraph
from prompter.processes import run_process
from prompter.records import TaskRecord, TaskStatus
from prompter.state import StateStore

SLOTS = 4
MIN_TASKS, MAX_TASKS = 30, 40
MAX_DEPS = 3
MIN_S, MAX_S = 0.2, 1.5
VARIANTS = ("prompter", "greedy", "barrier", "fifo")
DEFAULT_VARIANTS = ("prompter", "barrier", "fifo")
EPS = 0.005  # seconds: clock tolerance when checking that a task started after its dependencies

# -- workloads ---------------------------------------------------------------------------------


@dataclass
class Dag:
    seed: int
    deps: list[list[int]]  # file order
    durations: list[float]  # seconds, after scaling
    graph: DependencyGraph = field(init=False)

    def __post_init__(self) -> None:
        self.graph = DependencyGraph(self.deps)

    @property
    def critical_path(self) -> float:
        return self.graph.critical_path(self.durations).length

    @property
    def work(self) -> float:
        return sum(self.durations)

    @property
    def lower_bound(self) -> float:
        return max(self.critical_path, self.work / SLOTS)


def generate(seed: int, target: float) -> Dag:
    """30-40 tasks, 0-3 dependencies each, durations U(0.2, 1.5) s scaled to `target`."""
    rng = random.Random(seed)
    n = rng.randint(MIN_TASKS, MAX_TASKS)
    topo = [sorted(rng.sample(range(t), min(rng.randint(0, MAX_DEPS), t))) for t in range(n)]
    order = list(range(n))
    rng.shuffle(order)  # order[i] = topological node written at file position i
    position = [0] * n
    for i, t in enumerate(order):
        position[t] = i
    deps = [sorted(position[d] for d in topo[t]) for t in order]
    raw = [rng.uniform(MIN_S, MAX_S) for _ in range(n)]
    unscaled = Dag(seed, deps, raw)
    scale = target / unscaled.lower_bound
    return Dag(seed, deps, [max(0.01, round(d * scale, 3)) for d in raw])


def task_name(i: int) -> str:
    return f"task_{i:02d}"


def write_workflow(dag: Dag, path: Path) -> None:
    lines = [
        f"# Generated by bench/bench_makespan.py: seed {dag.seed}, {len(dag.deps)} tasks.",
        "[settings]",
        f"max_parallel_tasks = {SLOTS}",
        'agent = "command"',
        'agent_command = ["true"]',
        "retry_delay = 0",
        # The workflow is written inside this repository: without this, `auto` would give each
        # task a git worktree, and the benchmark would measure git instead of the engine.
        'isolation = "shared"',
        "",
    ]
    for i, (deps, duration) in enumerate(zip(dag.deps, dag.durations, strict=True)):
        lines += [
            "[[tasks]]",
            f'name = "{task_name(i)}"',
            'prompt = "wait"',
            f'agent_command = ["sleep", "{duration:.3f}"]',
            'verify_command = "true"',
            "max_attempts = 1",
            "depends_on = [" + ", ".join(f'"{task_name(d)}"' for d in deps) + "]",
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def seed_history(workflow_path: Path, dag: Dag, state_path: Path) -> None:
    """Write a state in which an earlier run measured each task at exactly its duration."""
    prints = fingerprints(load_workflow(workflow_path))
    store = StateStore(state_path)
    store.open()  # creates the directory
    try:
        for i, duration in enumerate(dag.durations):
            name = task_name(i)
            store.record(
                TaskRecord(
                    name=name,
                    fingerprint=prints[name],
                    status=TaskStatus.PASSED,
                    run_id="seeded-history",
                    started_at=1_000.0,
                    finished_at=1_000.0 + duration,
                ),
                durable=False,
            )
    finally:
        store.close()


# -- policies, simulated -----------------------------------------------------------------------


def simulate(dag: Dag, variant: str) -> float:
    """Makespan of the variant's policy with exact durations and zero overhead."""
    graph, d = dag.graph, dag.durations
    if variant == "barrier":
        total = 0.0
        for wave in graph.waves():
            free = [0.0] * SLOTS  # list-schedule the wave in file order
            for i in wave:
                heapq.heapreplace(free, free[0] + d[i])
            total += max(free)
        return total
    n = len(d)
    waiting = [len(x) for x in graph.deps]
    queue = Queue(dag, variant)
    for i in range(n):
        if waiting[i] == 0:
            queue.add(i)
    running: list[tuple[float, int]] = []
    now = 0.0
    while True:
        for i in queue.take(SLOTS - len(running)):
            heapq.heappush(running, (now + d[i], i))
        if not running:
            return now
        now, i = heapq.heappop(running)
        queue.finish(i)
        for child in graph.dependents[i]:
            waiting[child] -= 1
            if waiting[child] == 0:
                queue.add(child)


class Queue:
    """The ready queue of a list-scheduling variant: `fifo`, or `greedy`/`prompter`."""

    def __init__(self, dag: Dag, variant: str) -> None:
        self.fifo: deque[int] | None = None
        self.admission: Admission | None = None
        if variant == "fifo":
            self.fifo = deque()
        else:  # prompter's policy: priority, then remaining critical path, then file order
            n = len(dag.durations)
            limits = Limits(SLOTS, cpu=float("inf"), memory=float("inf"))
            remaining = dag.graph.bottom_levels(dag.durations)
            self.admission = Admission(limits, [Demand()] * n, [0] * n, remaining)

    def add(self, i: int) -> None:
        if self.fifo is not None:
            self.fifo.append(i)
        else:
            assert self.admission is not None
            self.admission.add_ready(i)

    def take(self, free: int) -> list[int]:
        if self.fifo is not None:
            return [self.fifo.popleft() for _ in range(min(free, len(self.fifo)))]
        assert self.admission is not None
        return self.admission.take()

    def finish(self, i: int) -> None:
        if self.admission is not None:
            self.admission.finish(i)


# -- policies, executed ------------------------------------------------------------------------


@dataclass
class Execution:
    makespan: float  # seconds, as defined per variant in the module docstring
    process_wall: float | None = None  # prompter only: the whole `prompter run` process
    problems: list[str] = field(default_factory=list)


def check_order(dag: Dag, start: Sequence[float], finish: Sequence[float]) -> list[str]:
    for i, deps in enumerate(dag.deps):
        for dep in deps:
            if start[i] < finish[dep] - EPS:
                return [f"{task_name(i)} started before its dependency {task_name(dep)} finished"]
    return []


async def _drive(dag: Dag, variant: str, workdir: Path) -> Execution:
    graph = dag.graph
    n = len(dag.durations)
    start = [0.0] * n
    finish = [0.0] * n
    failures: list[str] = []
    t0 = time.perf_counter()

    async def run_task(i: int) -> None:
        start[i] = time.perf_counter() - t0
        agent = await run_process(["sleep", f"{dag.durations[i]:.3f}"], cwd=workdir)
        verify = await run_process(["/bin/sh", "-c", "true"], cwd=workdir)
        if not (agent.ok and verify.ok):
            failures.append(f"{task_name(i)}: agent {agent.returncode}, verify {verify.returncode}")
        finish[i] = time.perf_counter() - t0

    if variant == "barrier":
        for wave in graph.waves():
            limiter = anyio.CapacityLimiter(SLOTS)

            async def limited(i: int, limiter: anyio.CapacityLimiter = limiter) -> None:
                async with limiter:
                    await run_task(i)

            async with anyio.create_task_group() as tg:
                for i in wave:  # anyio hands the limiter out in the order of asking
                    tg.start_soon(limited, i)
    else:
        queue = Queue(dag, variant)
        waiting = [len(d) for d in graph.deps]
        running = 0
        async with anyio.create_task_group() as tg:

            def dispatch() -> None:
                nonlocal running
                for i in queue.take(SLOTS - running):
                    running += 1
                    tg.start_soon(task, i)

            async def task(i: int) -> None:
                nonlocal running
                await run_task(i)
                running -= 1
                queue.finish(i)
                for child in graph.dependents[i]:
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        queue.add(child)
                dispatch()

            for i in range(n):
                if waiting[i] == 0:
                    queue.add(i)
            dispatch()
    makespan = time.perf_counter() - t0
    return Execution(makespan, problems=failures + check_order(dag, start, finish))


def execute(dag: Dag, variant: str, workdir: Path) -> Execution:
    return anyio.run(_drive, dag, variant, workdir)


def run_prompter(prompter: list[str], workflow: Path, dag: Dag, report_dir: Path) -> Execution:
    shutil.rmtree(report_dir, ignore_errors=True)
    seed_history(workflow, dag, report_dir / "state.json")
    argv = [*prompter, "run", str(workflow), "--progress", "none", "--fresh"]
    argv += ["--report-dir", str(report_dir)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")[-2000:]
        return Execution(0.0, wall, [f"`prompter run` exited {done.returncode}: {err}"])
    state = json.loads((report_dir / "state.json").read_text(encoding="utf-8"))
    runs = [r for r in state["runs"] if r["run_id"] != "seeded-history"]
    run = runs[-1]
    makespan = run["finished_at"] - run["started_at"]
    n = len(dag.durations)
    start = [0.0] * n
    finish = [0.0] * n
    problems = []
    for i in range(n):
        record = state["tasks"].get(task_name(i))
        if not record or record["status"] != "passed" or record["run_id"] != run["run_id"]:
            problems.append(f"{task_name(i)} did not pass in this run")
            continue
        start[i], finish[i] = record["started_at"], record["finished_at"]
    if not problems:
        problems = check_order(dag, start, finish)
    return Execution(makespan, wall, problems)


# -- main --------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "max": max(values), "min": min(values)}


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"{result['seeds']} random DAGs of {result['tasks_min']}–{result['tasks_max']} tasks "
        f"(0–3 dependencies each), sleeps of 0.2–1.5 s scaled to a lower bound of "
        f"{result['target']:g} s, {SLOTS} slots; critical path / (work / slots) median "
        f"{result['cp_share']:.2f}. Python {result['python']}.",
        "",
        "| variant | what runs | measured makespan / LB, median | max "
        "| simulated (policy only), median | max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    what = {
        "prompter": "`prompter run` (known durations)",
        "greedy": "driver, prompter's Admission policy",
        "barrier": "driver, wave by wave",
        "fifo": "driver, ready order, no priority",
    }
    for name, m in result["variants"].items():
        rows.append(
            f"| {name} | {what[name]} | **{m['measured']['median']:.3f}** "
            f"| {m['measured']['max']:.3f} | {m['simulated']['median']:.3f} "
            f"| {m['simulated']['max']:.3f} |"
        )
    if "prompter" in result["variants"]:
        p = result["variants"]["prompter"]["process_wall"]
        rows.append(
            f"| prompter, process wall | whole `prompter run` process, start-up included "
            f"| {p['median']:.3f} | {p['max']:.3f} | | |"
        )
    rows += [
        "",
        "LB = max(critical path, work / slots) of the sleeps. Makespan: prompter's run record "
        "(scheduling start to last task end); the driver's start to last task end for the "
        f"others. Gate: prompter's median ≤ {result['max_ratio']:g}.",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="random DAGs (default 10)")
    parser.add_argument("--first-seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument(
        "--target", type=float, default=2.5, help="lower bound of each DAG, seconds (default 2.5)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: prompter,barrier,fifo)",
    )
    parser.add_argument(
        "--max-ratio", type=float, default=1.10, help="gate on prompter's median (default 1.10)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work dir (bench/out)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this)")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if args.seeds < 1 or args.target <= 0:
        parser.error("--seeds must be at least 1 and --target positive")

    out: Path = (args.out / "makespan").resolve()
    out.mkdir(parents=True, exist_ok=True)
    prompter = find_prompter(args.python)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    measured: dict[str, list[float]] = {v: [] for v in variants}
    simulated: dict[str, list[float]] = {v: [] for v in variants}
    process_wall: list[float] = []
    per_seed: list[dict[str, Any]] = []

    # Untimed warm-up: imports, .pyc files, the page cache for `sleep` and `sh`.
    warm = generate(0, 0.2)
    write_workflow(warm, out / "warm.toml")
    for variant in variants:
        if variant == "prompter":
            run_prompter(prompter, out / "warm.toml", warm, out / "report-warm")
        else:
            execute(warm, variant, out)

    for k, seed in enumerate(seeds):
        dag = generate(seed, args.target)
        workflow = out / f"dag-seed{seed}.toml"
        write_workflow(dag, workflow)
        lb = dag.lower_bound
        row: dict[str, Any] = {
            "seed": seed,
            "tasks": len(dag.deps),
            "edges": dag.graph.edge_count,
            "critical_path": dag.critical_path,
            "work": dag.work,
            "lower_bound": lb,
        }
        order = variants[k % len(variants) :] + variants[: k % len(variants)]
        for variant in order:
            if variant == "prompter":
                done = run_prompter(prompter, workflow, dag, out / "report")
            else:
                done = execute(dag, variant, out)
            if done.problems:
                for p in done.problems:
                    log(f"FAIL: seed {seed}, {variant}: {p}")
                return EXIT_BROKEN
            policy = "greedy" if variant == "prompter" else variant
            sim = simulate(dag, policy) / lb
            measured[variant].append(done.makespan / lb)
            simulated[variant].append(sim)
            row[variant] = {"makespan": done.makespan, "ratio": done.makespan / lb, "sim": sim}
            extra = ""
            if done.process_wall is not None:
                process_wall.append(done.process_wall / lb)
                row[variant]["process_wall"] = done.process_wall
                extra = f", process wall {done.process_wall / lb:.3f}"
            log(
                f"  seed {seed:>2} ({len(dag.deps)} tasks, LB {lb:.2f}s): {variant:<8} "
                f"{done.makespan:6.2f}s = {done.makespan / lb:.3f} LB "
                f"(simulated {sim:.3f}{extra})"
            )
        per_seed.append(row)

    summary: dict[str, Any] = {}
    for variant in variants:
        summary[variant] = {
            "measured": spread(measured[variant]),
            "simulated": spread(simulated[variant]),
        }
        if variant == "prompter":
            summary[variant]["process_wall"] = spread(process_wall)
    cp_share = statistics.median(r["critical_path"] / (r["work"] / SLOTS) for r in per_seed)
    gate = summary["prompter"]["measured"]["median"] if "prompter" in summary else None
    ok = gate is None or gate <= args.max_ratio
    result: dict[str, Any] = {
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "target": args.target,
        "slots": SLOTS,
        "tasks_min": min(r["tasks"] for r in per_seed),
        "tasks_max": max(r["tasks"] for r in per_seed),
        "cp_share": cp_share,
        "python": platform.python_version(),
        "variants": summary,
        "per_seed": per_seed,
        "max_ratio": args.max_ratio,
        "pass": ok,
    }
    emit(result, markdown(result), args.json)
    if gate is None:
        log("prompter not among --variants: no gate")
    else:
        verdict = "OK" if ok else "FAIL"
        log(f"{verdict}: prompter's median makespan {gate:.3f}x LB (limit {args.max_ratio:g})")
    return EXIT_OK if ok else EXIT_SLOW


if __name__ == "__main__":
    sys.exit(main())
