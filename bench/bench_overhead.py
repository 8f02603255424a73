#!/usr/bin/env python3
"""Benchmark prompter's per-task overhead: `prompter run` against `xargs -P` on trivial tasks.

Generates a graph-mode workflow of N independent tasks (default 1,000) whose agent command is
`true` and whose verify command is `true`, with 4 slots: `prompter run` starts 2N processes,
N `true` (the agent) and N `/bin/sh -c true` (the verify command), at most 4 at a time. The
baseline starts the same number of processes with the same parallelism and nothing else:

    xargs -P 4 -n 1 /bin/sh -c  < (2N lines of `true`)   # 2N `sh -c true`, 4 at a time

For R interleaved rounds (default 4) it runs, each as a fresh subprocess:

    xargs -P 4                       the baseline (gate: `prompter run` at most 1.5x its time)
    asyncio floor                    a 20-line asyncio script starting the same 2N processes the
                                     way prompter does (own session, output through a pipe), 4
                                     tasks at once: what a runner on asyncio's subprocess API pays
    asyncio floor, pidfd watcher     the same with asyncio's pidfd child watcher (Python < 3.12
                                     defaults to a thread per child)
    posix_spawn floor                the least a Python program can do for them: posix_spawn, a
                                     pidfd and a pipe per process, nothing else
    prompter run                     `prompter run WF --progress none --fresh --report-dir D`
                                     with D deleted first (untimed): a first run, creating a log
                                     file per task and a new state; started in the workflow's
                                     folder, so children start with posix_spawn
    prompter run, report dir kept    the same right after it: log files exist, state is loaded
    prompter run, other directory    a first run started from the parent folder: posix_spawn
                                     cannot change directory, so every child goes through Popen
                                     (as in worktree isolation)
    prompter validate                start-up + loading the workflow: the fixed part of the run
    posix_spawn floor + prompter's   the floor inside a process that also does what every
      fixed costs                    `prompter run` does once (start-up, imports, loading the
                                     workflow, writing the reports of 1,000 tasks) and nothing
                                     per task: a lower bound for any design of prompter in Python

Each `prompter` command runs as `python -c` calling prompter's `main()` and printing its own CPU
time (RUSAGE_SELF) when it exits: the table shows that apart from its children's, and the result
ends with the CPU budget the gate leaves prompter on this machine.

Exit status: 0 within budget, 1 the ratio exceeds --max-ratio, 2 a correctness check failed
(a command failed, or the state file does not hold every task as passed).

    .venv/bin/python bench/bench_overhead.py                       # 1000 tasks, 4 rounds
    .venv/bin/python bench/bench_overhead.py --profile             # plus one cProfile'd run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import DEFAULT_OUT, EXIT_BROKEN, EXIT_OK, EXIT_SLOW, Run, emit, log, run

BASELINE = "xargs -P 4"
RUN = "prompter run"
RERUN = "prompter run, report dir kept"
VALIDATE = "prompter validate"
FLOOR = "asyncio floor"
FLOOR_PIDFD = "asyncio floor, pidfd watcher"
FLOOR_SPAWN = "posix_spawn floor"
FLOOR_FIXED = "posix_spawn floor + prompter's fixed costs"
ELSEWHERE = "prompter run, other directory"

# The least a Python asyncio program does for the same processes: per task, spawn `true` then
# `/bin/sh -c true` as prompter does (own session, stdin /dev/null, stdout+stderr to a pipe
# read to EOF), at most SLOTS tasks at once. argv: TASKS SLOTS [pidfd].
_FLOOR = """
import asyncio, os, subprocess, sys
tasks, slots, pidfd = int(sys.argv[1]), int(sys.argv[2]), len(sys.argv) > 3
async def spawn(*argv):
    p = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    await p.stdout.read()
    return await p.wait()
async def main():
    if pidfd and sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)
    free = asyncio.Semaphore(slots)
    async def task():
        async with free:
            assert await spawn("true") == 0
            assert await spawn("/bin/sh", "-c", "true") == 0
    await asyncio.gather(*(task() for _ in range(tasks)))
asyncio.run(main())
"""

# The least any Python program does for the same processes: posix_spawn with the output on a
# pipe, a pidfd to learn of the exit, read to EOF, reap; SLOTS tasks at once. argv: TASKS SLOTS.
_FLOOR_SPAWN = """
import asyncio, os, sys
tasks, slots = int(sys.argv[1]), int(sys.argv[2])
env = dict(os.environ)
async def spawn(argv):
    loop = asyncio.get_running_loop()
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.posix_spawnp(argv[0], argv, env, setsid=True, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)])
    os.close(w)
    pidfd = os.pidfd_open(pid)
    exited = loop.create_future()
    loop.add_reader(pidfd, exited.set_result, None)
    await exited
    loop.remove_reader(pidfd)
    os.close(pidfd)
    while os.read(r, 65536):
        pass
    os.close(r)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
async def main():
    todo = iter(range(tasks))
    async def worker():
        for _ in todo:
            assert await spawn(["true"]) == 0
            assert await spawn(["/bin/sh", "-c", "true"]) == 0
    await asyncio.gather(*(worker() for _ in range(slots)))
asyncio.run(main())
"""

# The least prompter could take for this run whatever its design: the posix_spawn floor plus
# what every `prompter run` does once (interpreter start-up, imports, loading and validating the
# workflow, writing junit.xml, summary.md and report.html from the state of 1,000 passed tasks),
# with no per-task work of its own (no records, journal, logs or scheduling). argv: TASKS SLOTS
# WORKFLOW STATE (a state the gated run left).
_FLOOR_FIXED = (
    """
import sys, tempfile
from pathlib import Path
import prompter.cli, prompter.run, prompter.progress  # what `prompter run` imports
from prompter.config import load_workflow
from prompter.report.writer import reports_after_run
workflow = load_workflow(Path(sys.argv[3]))
"""
    + _FLOOR_SPAWN
    + """
with tempfile.TemporaryDirectory() as reports:
    written, error = reports_after_run(Path(sys.argv[4]), Path(reports), workflow)
    assert error is None and len(written) == 3, error  # junit.xml, summary.md, report.html
"""
)


# `prompter` itself, reporting its own CPU time (without the children it waited for) on stderr
# when it exits, so the CPU of the processes and prompter's share can be told apart.
_OWN_CPU = "own-cpu-s:"
_PROMPTER_OWN_CPU = f"""
import resource, sys
from prompter.cli import main
try:
    code = main()
finally:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("{_OWN_CPU}", usage.ru_utime + usage.ru_stime, file=sys.stderr)
sys.exit(code)
"""


def own_cpu(stderr: str) -> float | None:
    """The own CPU time a `_PROMPTER_OWN_CPU` run reported, if it did."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(_OWN_CPU):
            return float(line.split()[1])
    return None


def write_workflow(path: Path, tasks: int, slots: int) -> None:
    lines = [
        "# Generated by bench/bench_overhead.py: independent tasks, agent and verify `true`.",
        "[settings]",
        f"max_parallel_tasks = {slots}",
        'agent = "command"',
        'agent_command = ["true"]',
        "retry_delay = 0",
        # The workflow is written inside this repository: without this, `auto` would give each
        # task a git worktree, and the benchmark would measure git instead of the engine.
        'isolation = "shared"',
        "",
    ]
    for i in range(tasks):
        lines += [
            "[[tasks]]",
            f'name = "task_{i:05d}"',
            'prompt = "nothing to do"',
            'verify_command = "true"',
            "depends_on = []",
            "",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def check_state(report_dir: Path, tasks: int) -> str | None:
    """None if the run's state holds every task as passed, else what is wrong."""
    path = report_dir / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"cannot read {path}: {exc}"
    statuses = [t.get("status") for t in state.get("tasks", {}).values()]
    passed = statuses.count("passed")
    if passed != tasks:
        return f"{path}: {passed} of {tasks} tasks passed"
    return None


def profile_run(
    python: str, argv: list[str], out: Path, report_dir: Path, top: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One more `prompter run` under cProfile, started where the gated run starts (its children
    then take the same spawn path); the top functions by own time."""
    import pstats

    prof = out / "overhead.prof"
    shutil.rmtree(report_dir, ignore_errors=True)
    done = run([python, "-m", "cProfile", "-o", str(prof), "-m", "prompter", *argv], cwd=out)
    if done.code != 0:
        log(f"profiled run exited {done.code}:\n{done.stderr[-2000:]}")
        return []
    stats = pstats.Stats(str(prof))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (file, line, func), (_cc, calls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}({func})",
                "calls": calls,
                "own_s": tt,
                "cum_s": ct,
            }
        )
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    log(
        f"cProfile of `prompter {' '.join(argv)}` ({done.seconds:.2f}s under the profiler, "
        f"{total:.2f}s profiled); saved to {prof}"
    )
    log(f"  {'own s':>7} {'own %':>6} {'cum s':>7} {'calls':>8}  function")
    for r in rows[:top]:
        log(
            f"  {r['own_s']:7.3f} {100 * r['own_s'] / total:5.1f}% {r['cum_s']:7.3f} "
            f"{r['calls']:8d}  {r['function']}"
        )
    return rows[:top]


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"{result['tasks']:,} independent tasks (agent `true`, verify `true`), "
        f"{result['slots']} slots, {2 * result['tasks']:,} processes per command; "
        f"{result['rounds']} interleaved rounds, Python {result['python']}.",
        "",
        "| command | median wall (s) | min–max (s) | median CPU (s) | prompter's own CPU (s) "
        "| per task (ms) | wall ratio | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def num(x: float | None, fmt: str, missing: str = "n/a") -> str:
        return missing if x is None else format(x, fmt)

    for name, m in result["commands"].items():
        per_task = "" if name == VALIDATE else f"{1000 * m['median'] / result['tasks']:.2f}"
        rows.append(
            f"| `{name}` | {m['median']:.2f} | {m['min']:.2f}–{m['max']:.2f} "
            f"| {num(m['cpu_median'], '.2f')} | {num(m.get('own_cpu_median'), '.2f', '')} "
            f"| {per_task} "
            f"| **{m['ratio']:.2f}x** | {num(m['cpu_ratio'], '.2f')}x |"
        )
    rows += [
        "",
        f"Wall ratio = median wall / median `{BASELINE}` wall (the gate: `{RUN}` at most "
        f"{result['max_ratio']:g}x). CPU = user+sys of the command and every process it waited "
        f"for. `{VALIDATE}` is the fixed start-up and load cost included in `{RUN}`; the "
        "floors start the same processes from minimal Python scripts; `report dir kept` re-runs "
        "with the log files of the run before in place (a first run creates one per task); "
        "`other directory` is a first run whose children cannot use posix_spawn; "
        f"`{FLOOR_FIXED}` is the floor plus what every run does once (start-up, imports, the "
        "workflow load, the reports) and nothing per task.",
    ]
    room = result.get("per_task_room_us")
    if room is not None:
        rows += [
            "",
            f"Room for per-task work: at {result['max_ratio']:g}x `{BASELINE}` the gate leaves "
            f"**{room:.0f} µs per task** above `{FLOOR_FIXED}` (median walls) for everything a "
            "run does per task besides starting its processes: the records, the state journal, "
            "the log file, the scheduling.",
        ]
    b = result.get("cpu_budget")
    if b:
        rows += [
            "",
            f"CPU budget: at {result['max_ratio']:g}x `{BASELINE}`, {b['cores']} cores give "
            f"{b['children_cpu'] + b['own_cpu_allowed']:.2f} s of CPU; the run's processes take "
            f"{b['children_cpu']:.2f} s of it, which leaves prompter at most "
            f"**{b['own_cpu_allowed']:.2f} s** of its own (if no core were ever idle). It used "
            f"**{b['own_cpu']:.2f} s**, {num(b['startup_own_cpu'], '.2f')} s of it for start-up "
            "and loading the workflow.",
        ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks (default 1000)")
    parser.add_argument("--slots", type=int, default=4, help="parallelism (default 4)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work dir (bench/out)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--max-ratio", type=float, default=1.5, help="allowed run / xargs (default 1.5)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="afterwards, one `prompter run` under cProfile"
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        help="the runs' report directory (default OUT/overhead/report); on a tmpfs such as "
        "/dev/shm/… it leaves the disk's cost of creating the log files out",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this)")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1 or args.slots < 1:
        parser.error("--tasks, --slots and --rounds must be at least 1")

    xargs = shutil.which("xargs")
    if xargs is None:
        log("FAIL: xargs not found")
        return EXIT_BROKEN
    out: Path = (args.out / "overhead").resolve()
    out.mkdir(parents=True, exist_ok=True)
    workflow = out / f"workflow-{args.tasks}.toml"
    write_workflow(workflow, args.tasks, args.slots)
    lines = out / f"true-x{2 * args.tasks}.txt"
    lines.write_text("true\n" * (2 * args.tasks), encoding="ascii")
    report_dir = (args.report_dir or out / "report").resolve()
    # The console script's equivalent, plus its own CPU time on stderr (see _PROMPTER_OWN_CPU).
    prompter = [args.python, "-c", _PROMPTER_OWN_CPU]
    run_args = ["run", str(workflow), "--progress", "none", "--fresh", "--report-dir"]
    run_args.append(str(report_dir))
    floor = [args.python, "-c", _FLOOR, str(args.tasks), str(args.slots)]
    commands: dict[str, list[str]] = {
        BASELINE: [xargs, "-P", str(args.slots), "-n", "1", "/bin/sh", "-c"],
        FLOOR: floor,
        FLOOR_PIDFD: [*floor, "pidfd"],
        FLOOR_SPAWN: [args.python, "-c", _FLOOR_SPAWN, str(args.tasks), str(args.slots)],
        RUN: [*prompter, *run_args],
        RERUN: [*prompter, *run_args],
        ELSEWHERE: [*prompter, *run_args],
        VALIDATE: [*prompter, "validate", str(workflow)],
        # Last in a round: it reads the state the runs before it left.
        FLOOR_FIXED: [
            args.python,
            "-c",
            _FLOOR_FIXED,
            str(args.tasks),
            str(args.slots),
            str(workflow),
            str(report_dir / "state.json"),
        ],
    }

    def once(name: str) -> Run | None:
        """Run one command; None (after logging why) if it or its result is wrong."""
        is_run = name in (RUN, RERUN, ELSEWHERE)
        if is_run and name != RERUN:
            shutil.rmtree(report_dir, ignore_errors=True)  # untimed: a first run, every time
        cwd = out.parent if name == ELSEWHERE else out
        done = run(commands[name], stdin=lines if name == BASELINE else None, cwd=cwd)
        if done.code != 0:
            log(f"FAIL: {name} exited {done.code}:\n{done.stderr[-4000:]}")
            return None
        problem = check_state(report_dir, args.tasks) if is_run else None
        if problem:
            log(f"FAIL: {name}: {problem}")
            return None
        return done

    log(f"{args.tasks} tasks, {args.slots} slots; warming up (untimed) ...")
    for name in commands:
        if once(name) is None:
            return EXIT_BROKEN
    times: dict[str, list[Run]] = {name: [] for name in commands}
    for r in range(args.rounds):
        for name in commands:
            done = once(name)
            if done is None:
                return EXIT_BROKEN
            times[name].append(done)
            log(f"  round {r + 1}/{args.rounds}: {name:<30} {done.seconds:7.2f}s")

    base = statistics.median(x.seconds for x in times[BASELINE])
    base_cpu = [x.cpu_seconds for x in times[BASELINE] if x.cpu_seconds is not None]
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in times.items():
        secs = [x.seconds for x in runs]
        cpu = [x.cpu_seconds for x in runs if x.cpu_seconds is not None]
        med = statistics.median(secs)
        cpu_med = statistics.median(cpu) if cpu else None
        own = [c for c in (own_cpu(x.stderr) for x in runs) if c is not None]
        summary[name] = {
            "median": med,
            "min": min(secs),
            "max": max(secs),
            "runs": secs,
            "cpu_median": cpu_med,
            "cpu_runs": cpu,
            # prompter's own CPU (the rest of `cpu` is its children's): None for other commands
            "own_cpu_median": statistics.median(own) if own else None,
            "ratio": med / base,
            "cpu_ratio": cpu_med / statistics.median(base_cpu) if cpu_med and base_cpu else None,
            # each round runs every command back to back, so per-round ratios share conditions
            "round_ratios": [
                x.seconds / b.seconds for x, b in zip(runs, times[BASELINE], strict=True)
            ],
        }
    ratio = summary[RUN]["ratio"]
    ok = ratio <= args.max_ratio
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    own_run = summary[RUN]["own_cpu_median"]
    budget: dict[str, Any] | None = None
    if own_run is not None and summary[RUN]["cpu_median"] is not None and cores:
        children = summary[RUN]["cpu_median"] - own_run
        # Within the gate's wall time the cores give max_ratio x base x cores of CPU; the
        # processes take `children` of it. What is left is the most prompter itself could use,
        # and only if it never left a core idle.
        budget = {
            "cores": cores,
            "children_cpu": children,
            "own_cpu_allowed": args.max_ratio * base * cores - children,
            "own_cpu": own_run,
            "startup_own_cpu": summary[VALIDATE]["own_cpu_median"],
        }
    # What the gate leaves above the fixed-cost floor, per task (negative: nothing at all).
    room_s = args.max_ratio * base - summary[FLOOR_FIXED]["median"]
    result: dict[str, Any] = {
        "per_task_room_us": 1e6 * room_s / args.tasks,
        "tasks": args.tasks,
        "slots": args.slots,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "commands": summary,
        "ratio": ratio,
        "max_ratio": args.max_ratio,
        "cpu_budget": budget,
        "pass": ok,
    }
    if args.profile:
        result["profile_top"] = profile_run(args.python, run_args, out, report_dir, 25, log)
    emit(result, markdown(result), args.json)
    if ok:
        log(f"OK: `{RUN}` took {ratio:.2f}x `{BASELINE}` (limit {args.max_ratio:g}x)")
    else:
        log(f"FAIL: `{RUN}` took {ratio:.2f}x `{BASELINE}` (limit {args.max_ratio:g}x)")
    return EXIT_OK if ok else EXIT_SLOW


if __name__ == "__main__":
    sys.exit(main())
