#!/usr/bin/env python3
"""Benchmark the graph scheduler's own cost per task, with no processes at all.

Drives `prompter.scheduler.GraphScheduler` over N in-process tasks (default 10,000) whose
`attempt_runner` returns a passing `AttemptRecord` at once, so everything measured is
scheduling: the ready queue (`Admission`), the dependency counters, the anyio task per attempt,
the `Ledger`'s records and events. Four variants, interleaved round by round:

    independent                   N tasks without dependencies; the Ledger's persist is a no-op
    random DAG                    N tasks, each depending on 0-3 others; persist is a no-op
    DAG + state store             the same DAG, persisted by the real `StateStore` as `prompter
                                  run` does: a journal line per record, an fdatasync per terminal
                                  record, the compaction at the end
    DAG + state store, fsync off  the same with the journal's fdatasync replaced by a no-op, to
                                  tell the disk's share from the CPU's

Reported: microseconds per task = wall time (scheduler construction + run; with a store also
opening and closing it) / N, and the same for CPU time. The requirement: at most 100 us of
scheduling per task, for the two variants without state I/O (the store variants are reported).

Exit status: 0 within budget, 1 a gated variant exceeds --max-us, 2 a correctness check failed
(a task ran before a dependency passed, or did not pass).

    .venv/bin/python bench/bench_scheduler.py                    # 10k tasks, 3 rounds
    .venv/bin/python bench/bench_scheduler.py --tasks 2000 --rounds 5 --json
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from common import EXIT_BROKEN, EXIT_OK, EXIT_SLOW, emit, log
from prompter import state as state_module
from prompter.admission import Limits
from prompter.attempts import AttemptContext, Feedback
from prompter.config import Settings, Task, Workflow
from prompter.fingerprints import fingerprints
from prompter.graph import DependencyGraph
from prompter.ledger import Ledger
from prompter.records import AttemptRecord, RunRecord, TaskRecord, TaskStatus
from prompter.scheduler import GraphScheduler
from prompter.state import StateStore

SLOTS = 4
MAX_DEPS = 3
LOCAL_WINDOW = 200  # half the dependencies come from nearby tasks, for longer chains

# -- workloads ---------------------------------------------------------------------------------


def random_deps(n: int, seed: int) -> list[list[int]]:
    """A random DAG in shuffled file order: each task depends on 0-3 others (seeded)."""
    rng = random.Random(seed)
    topo: list[list[int]] = []
    for t in range(n):
        k = min(rng.randint(0, MAX_DEPS), t)
        chosen: set[int] = set()
        while len(chosen) < k:
            if rng.random() < 0.5:
                chosen.add(rng.randrange(max(0, t - LOCAL_WINDOW), t))
            else:
                chosen.add(rng.randrange(t))
        topo.append(sorted(chosen))
    order = list(range(n))
    rng.shuffle(order)  # order[i] = topological node written at file position i
    position = [0] * n
    for i, t in enumerate(order):
        position[t] = i
    return [sorted(position[d] for d in topo[t]) for t in order]


def build_workflow(deps: Sequence[Sequence[int]], name: str = "bench") -> Workflow:
    """A graph-mode Workflow held in memory (no TOML): command agent, verify `true`."""
    settings = Settings(agent="command", agent_command=["true"], max_parallel_tasks=SLOTS)
    names = [f"task_{i:06d}" for i in range(len(deps))]
    context = {"settings": settings}
    tasks = tuple(
        Task.model_validate(
            {
                "name": names[i],
                "prompt": f"do {names[i]}",
                "verify_command": "true",
                "depends_on": [names[d] for d in ds],
            },
            context=context,
        )
        for i, ds in enumerate(deps)
    )
    return Workflow(
        path=Path(f"{name}.toml"),
        settings=settings,
        tasks=tasks,
        mode="graph",
        graph=DependencyGraph(deps),
    )


# -- the no-op runner --------------------------------------------------------------------------


class NoopRunner:
    """An `AttemptRunner` that passes every attempt at once and checks dependency order."""

    def __init__(self, workflow: Workflow) -> None:
        self.index = workflow.index
        self.deps = workflow.graph.deps
        self.done = bytearray(len(workflow.tasks))
        self.out_of_order: list[str] = []
        self.calls = 0

    async def __call__(
        self,
        ctx: AttemptContext,
        task: Task,
        number: int,
        feedback: Feedback | None,
        resume_session: str | None,
    ) -> AttemptRecord:
        i = self.index[task.name]
        if not all(self.done[d] for d in self.deps[i]):
            self.out_of_order.append(task.name)
        self.done[i] = 1
        self.calls += 1
        now = time.time()
        return AttemptRecord(number=number, started_at=now, finished_at=now, ok=True)


def context(tmp: Path) -> AttemptContext:
    return AttemptContext(
        workdir=tmp,
        logs_dir=tmp / "logs",
        check_interval=0.0,
        agents={},
    )


@dataclass
class Drive:
    seconds: float  # wall: construction + run (+ store open/close when there is a store)
    cpu_seconds: float  # this process's CPU time over the same span
    problems: list[str] = field(default_factory=list)
    bytes_written: int = 0
    journal_bytes: int = 0  # the journal's size just before the closing compaction
    snapshot_bytes: int = 0


def drive(
    workflow: Workflow,
    prints: dict[str, str],
    store_dir: Path | None = None,
    *,
    fsync: bool = True,
) -> Drive:
    """Run every task of `workflow` through GraphScheduler with the no-op runner; time it."""
    n = len(workflow.tasks)
    runner = NoopRunner(workflow)
    weights = [1.0] * n
    limits = Limits(SLOTS, cpu=float("inf"), memory=float("inf"))
    tmp = Path(tempfile.gettempdir())
    store: StateStore | None = None
    saved_sync = state_module._sync
    if store_dir is not None and not fsync:
        state_module._sync = lambda fd: None  # journal fdatasync off: isolates its cost
    gc.collect()
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        if store_dir is None:
            ledger = Ledger("bench", prints, lambda record, durable: None)
        else:
            store = StateStore(store_dir / "state.json")
            store.open()
            store.begin_run(RunRecord(run_id="bench", workflow="bench", started_at=time.time()))
            live = store

            def persist(record: TaskRecord, durable: bool) -> None:
                live.record(record, durable=durable)

            ledger = Ledger("bench", prints, persist)
        scheduler = GraphScheduler(
            workflow,
            range(n),
            context(tmp),
            ledger,
            limits,
            weights,
            random.Random(0),
            attempt_runner=runner,
        )
        anyio.run(scheduler.run)
        journal = 0
        if store is not None:
            store.end_run(
                RunRecord(
                    run_id="bench",
                    workflow="bench",
                    started_at=0.0,
                    finished_at=time.time(),
                    status="passed",
                )
            )
            journal = store._journal_size
            store.close()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        state_module._sync = saved_sync
    result = Drive(seconds, cpu)
    if store is not None:
        result.bytes_written = store.bytes_written
        result.journal_bytes = journal
        result.snapshot_bytes = store.path.stat().st_size
    passed = sum(1 for r in ledger.records.values() if r.status is TaskStatus.PASSED)
    if passed != n or runner.calls != n:
        result.problems.append(f"{passed} of {n} tasks passed ({runner.calls} attempts)")
    if runner.out_of_order:
        result.problems.append(
            f"{len(runner.out_of_order)} tasks ran before a dependency passed, "
            f"e.g. {runner.out_of_order[0]}"
        )
    if store is not None:
        loaded = StateStore(store.path).load()
        if len(loaded.tasks) != n or any(
            r.status is not TaskStatus.PASSED for r in loaded.tasks.values()
        ):
            result.problems.append("the state file does not hold every task as passed")
    return result


# -- main --------------------------------------------------------------------------------------

VARIANTS = ("independent", "random DAG", "DAG + state store, fsync off", "DAG + state store")
GATED = ("independent", "random DAG")


def run_variant(
    name: str, flat: Workflow, dag: Workflow, prints: dict[str, dict[str, str]], tmp: Path
) -> Drive:
    if name == "independent":
        return drive(flat, prints["flat"])
    if name == "random DAG":
        return drive(dag, prints["dag"])
    store_dir = Path(tempfile.mkdtemp(dir=tmp))
    try:
        return drive(dag, prints["dag"], store_dir, fsync="fsync off" not in name)
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)


def profile(name: str, run: Callable[[], Drive], top: int, log: Callable[[str], None]) -> None:
    """One more run of a variant under cProfile; the top functions by own time to stderr."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    log(f"cProfile of one `{name}` run:\n{out.getvalue()}")


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"{result['tasks']:,} no-op tasks ({result['dag_edges']:,} dependencies in the DAG, "
        f"{result['dag_waves']} waves), {SLOTS} slots; {result['rounds']} interleaved rounds, "
        f"Python {result['python']}.",
        "",
        "| variant | median µs/task (wall) | min–max µs/task | median CPU µs/task | tasks/s "
        "| gate |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, m in result["variants"].items():
        if name in GATED:
            ok = m["median_us"] <= result["max_us"]
            gate = f"≤ {result['max_us']:g} µs {'✓' if ok else '✗'}"
        else:
            gate = "reported"
        rows.append(
            f"| {name} | **{m['median_us']:.1f}** | {m['min_us']:.1f}–{m['max_us']:.1f} "
            f"| {m['cpu_median_us']:.1f} | {1e6 / m['median_us']:,.0f} | {gate} |"
        )
    rows += [
        "",
        "µs/task = wall time of GraphScheduler construction + run / tasks. With the state store "
        "it also covers opening the store, a journal line per record (2 per task) and the closing "
        "compaction; `fsync off` replaces the journal's fdatasync (one per terminal record) with "
        "a no-op to separate the disk from the CPU cost.",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks (default 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="DAG seed (default 1)")
    parser.add_argument("--max-us", type=float, default=100.0, help="gate, µs/task (100)")
    parser.add_argument(
        "--profile",
        choices=VARIANTS,
        metavar="VARIANT",
        help="afterwards, profile one run of VARIANT with cProfile (top functions to stderr)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")

    log(f"building workflows ({args.tasks} tasks, seed {args.seed}) ...")
    dag = build_workflow(random_deps(args.tasks, args.seed), "dag")
    flat = build_workflow([[] for _ in range(args.tasks)], "flat")
    prints = {"dag": fingerprints(dag), "flat": fingerprints(flat)}
    warm = build_workflow(random_deps(200, args.seed), "warm")
    # As `prompter run` does after loading a workflow: the long-lived objects leave the GC's view.
    gc.collect()
    gc.freeze()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        warm_prints = {"dag": fingerprints(warm), "flat": fingerprints(warm)}
        for name in VARIANTS:  # untimed: imports, code paths, the first store files
            run_variant(name, warm, warm, warm_prints, tmp)
        for r in range(args.rounds):
            for name in VARIANTS:
                done = run_variant(name, flat, dag, prints, tmp)
                if done.problems:
                    for p in done.problems:
                        log(f"FAIL: {name}: {p}")
                    return EXIT_BROKEN
                wall[name].append(done.seconds)
                cpu[name].append(done.cpu_seconds)
                us = done.seconds / args.tasks * 1e6
                log(f"  round {r + 1}/{args.rounds}: {name:<30} {done.seconds:6.2f}s {us:7.1f} µs")
        if args.profile:
            name = args.profile
            profile(name, lambda: run_variant(name, flat, dag, prints, tmp), 25, log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    summary: dict[str, dict[str, Any]] = {}
    for name, secs in wall.items():
        us = [s / args.tasks * 1e6 for s in secs]
        summary[name] = {
            "median_us": statistics.median(us),
            "min_us": min(us),
            "max_us": max(us),
            "cpu_median_us": statistics.median(cpu[name]) / args.tasks * 1e6,
            "runs_s": secs,
            "cpu_runs_s": cpu[name],
        }
    over = [name for name in GATED if summary[name]["median_us"] > args.max_us]
    result: dict[str, Any] = {
        "tasks": args.tasks,
        "rounds": args.rounds,
        "seed": args.seed,
        "slots": SLOTS,
        "python": platform.python_version(),
        "dag_edges": dag.graph.edge_count,
        "dag_waves": len(dag.graph.waves()),
        "variants": summary,
        "max_us": args.max_us,
        "pass": not over,
    }
    emit(result, markdown(result), args.json)
    for name in over:
        log(f"FAIL: {name}: {summary[name]['median_us']:.1f} µs/task (limit {args.max_us:g})")
    if not over:
        log(f"OK: scheduling within {args.max_us:g} µs/task")
    return EXIT_SLOW if over else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
