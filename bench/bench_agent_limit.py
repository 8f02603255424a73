#!/usr/bin/env python3
"""Benchmark the run-wide agent limit against an API with room for K sessions at once.

Each case is a real `prompter run` of N independent Claude tasks (`depends_on = []`, verify
`true`) with 16 slots, whose agent is the fake Claude CLI (tests/agents/fake_claude.py) in its
capacity mode: the fake API serves K sessions at once, an admitted session works for d seconds,
and a session above K is refused with a 429 as the real CLI reports one it could not retry past.
With K < 16 most of the first wave is refused, so the figures are what the run does about it:

    limiter            this tree's `src`: the agent limit (agent_gate.py, agent_limit.py) cuts
                       the sessions at once to what the API serves and grows back while it
                       holds; a refused session is not an attempt, its task queues again.
    per-task back-off  the `src` of --before (default cde98c3, the commit before the limiter):
                       each refused task sleeps 10, 20, 40 ... s (with jitter) holding its slot,
                       up to 5 times, then the attempt fails (and the task retries as usual).
    hand-set limit     this tree's `src` with `max_parallel_agents = K`: the API's room known in
                       advance (what users do by hand today), so nothing is refused. The same
                       process costs as the limiter's, without its search for K: the reference.

For each K (default 2, 4, 8) and round the sides run one after the other, the order reversing
from case to case (A B C, C B A, ...), each with its own `src` on PYTHONPATH and the same
interpreter, fake CLI and workflow. Per K and side it reports the makespan (wall time of the
`prompter run` process, start-up included, median over rounds), the ideal N·d/K and their ratio,
the sessions the API refused and the calls it got (from the fake's `capacity.jsonl`), the tasks
that passed, the attempts the state recorded, and on the limiter side the changes of the agent
limit (`runs[-1].agent_limit`), its lowest and its last value. A run is stopped (SIGTERM, as a
user would) after --timeout seconds; its row then says so, and counts what it finished.

Every session is a process (the SDK starts the fake CLI, a Python script): on a 2-core machine
16 of them starting at once take 2-3 s before the first is served, and from one session's end to
the next one's start takes 0.3-1 s. So even the hand-set limit is far from N·d/K at d = 1 s;
compare the sides, not the seconds.

Exit status: 0 the limiter's makespan is within --max-ratio (default 1.5) of the hand-set
limit's for every K, 1 it is not, 2 a correctness check failed: on the limiter or hand-set side
a task did not pass or recorded more than one attempt, the hand-set side had a session refused,
or (any side) the fake API served more than K sessions at once.

    .venv/bin/python bench/bench_agent_limit.py                  # K = 2, 4, 8, 1 round, ~4 min
    .venv/bin/python bench/bench_agent_limit.py --capacities 4 --rounds 3 --json
    .venv/bin/python bench/bench_agent_limit.py --sides limiter,handset --tasks 8 --work 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import DEFAULT_OUT, EXIT_BROKEN, EXIT_OK, EXIT_SLOW, emit, log

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLAUDE = ROOT / "tests" / "agents" / "fake_claude.py"
# The sides by their option name: the label in the table, and the folder name of a run.
SIDES = {"limiter": "limiter", "backoff": "per-task back-off", "handset": "hand-set limit"}
LIMITER, BACKOFF, HANDSET = SIDES.values()
SLOTS = 16


@dataclass
class Case:
    """One `prompter run` of one side against one capacity."""

    side: str
    k: int
    round: int
    makespan_s: float  # wall time of the process, start-up included
    run_s: float | None  # the run's own record: scheduling start to its end
    timed_out: bool
    exit_code: int
    calls: int  # sessions the fake API got
    refused: int  # of them refused with a 429
    peak_sessions: int  # most sessions the fake API served at once (never above k)
    passed: int
    attempts: int  # attempts recorded, all tasks
    most_attempts: int  # of one task
    limit_changes: int | None  # the limiter side only
    last_limit: int | None
    lowest_limit: int | None


# -- the two sides -------------------------------------------------------------------------------


def commit_of(ref: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def extract_src(commit: str, out: Path) -> Path:
    """`src` of `commit` under `out` (made once, reused): the per-task back-off side's code."""
    tree = out / f"src-{commit[:12]}"
    if not (tree / "src" / "prompter").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree / "src"


# -- one run -------------------------------------------------------------------------------------


def write_case(folder: Path, tasks: int, work_s: float, k: int, hand_set: bool) -> Path:
    """The workflow, the fake's plan (one key per task: the fake counts calls per key) and the
    capacity file in a fresh `folder`; returns the workflow. `hand_set`: the workflow says
    `max_parallel_agents = K`, as a user who knows the API's room would."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "work").mkdir(parents=True)
    lines = [
        f"# Generated by bench/bench_agent_limit.py: {tasks} tasks of {work_s} s, capacity {k}.",
        "[settings]",
        f"max_parallel_tasks = {SLOTS}",
        'agent = "claude"',
        f"claude_cli_path = {json.dumps(str(FAKE_CLAUDE))}",
        'working_directory = "work"',
        # Under bench/out (inside this repository) `auto` would give each task a worktree.
        'isolation = "shared"',
        *([f"max_parallel_agents = {k}"] if hand_set else []),
        "",
    ]
    plan = {}
    for i in range(tasks):
        name = f"task_{i:02d}"
        plan[name] = [{"work": work_s}]
        lines += [
            "[[tasks]]",
            f'name = "{name}"',
            f'prompt = "[[fake:{name}]] do {name}"',
            'verify_command = "true"',
            "depends_on = []",
            "",
        ]
    (folder / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    (folder / "capacity").write_text(f"{k}\n", encoding="utf-8")
    workflow = folder / "prompter.toml"
    workflow.write_text("\n".join(lines), encoding="utf-8")
    return workflow


def run_prompter(
    folder: Path, workflow: Path, src: Path, python: str, timeout: float
) -> tuple[float, int, bool]:
    """`python -m prompter run` from `src`: wall time, exit code, and whether it was stopped at
    `timeout` (SIGTERM, then SIGKILL of its process group if it does not end within 30 s)."""
    env = dict(
        os.environ,
        PYTHONPATH=str(src),
        FAKE_CLAUDE_PLAN=str(folder / "plan.json"),
        FAKE_CLAUDE_STATE=str(folder / "claude-state"),
        FAKE_CLAUDE_CAPACITY=str(folder / "capacity"),
        ANTHROPIC_API_KEY="sk-ant-api03-fake-key-for-the-fake-cli",
    )
    argv = [python, "-m", "prompter", "run", "--progress", "plain", str(workflow)]
    with (folder / "prompter.log").open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        timed_out = False
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait()
        elapsed = time.perf_counter() - t0
    return elapsed, code, timed_out


def read_state(folder: Path) -> dict[str, Any]:
    """The run's state: the snapshot with its journal replayed (a stopped run may leave one)."""
    path = folder / ".prompter" / "state.json"
    state: dict[str, Any] = {"tasks": {}, "runs": []}
    if path.exists():
        state = json.loads(path.read_text(encoding="utf-8"))
    journal = path.with_name("state.json.journal")
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if "task" in entry:
                state["tasks"][entry["task"]["name"]] = entry["task"]
            if "run" in entry:
                runs = [r for r in state["runs"] if r["run_id"] != entry["run"]["run_id"]]
                state["runs"] = [*runs, entry["run"]]
    return state


def read_capacity(folder: Path) -> tuple[int, int, int]:
    """Calls the fake API got, those it refused, and the most it served at once."""
    log_path = folder / "claude-state" / "capacity.jsonl"
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    events = [json.loads(line) for line in lines]
    calls = [e for e in events if "admitted" in e]
    refused = sum(1 for e in calls if not e["admitted"])
    serving = peak = 0
    for e in sorted(events, key=lambda e: (e["at"], "ended" not in e)):  # ends first on a tie
        if e.get("admitted"):
            serving += 1
            peak = max(peak, serving)
        elif e.get("ended"):
            serving -= 1
    return len(calls), refused, peak


def measure(side: str, k: int, round_: int, src: Path, opts: argparse.Namespace) -> Case:
    key = next(key for key, label in SIDES.items() if label == side)
    folder = opts.out / f"{key}-k{k}-r{round_}"
    workflow = write_case(folder, opts.tasks, opts.work, k, hand_set=side == HANDSET)
    wall, code, timed_out = run_prompter(folder, workflow, src, opts.python, opts.timeout)
    state = read_state(folder)
    calls, refused, peak = read_capacity(folder)
    tasks = state["tasks"].values()
    attempts = [len(t.get("attempts", [])) for t in tasks]
    run = state["runs"][-1] if state["runs"] else {}
    limits = [change["limit"] for change in run.get("agent_limit", [])]
    limiter = side == LIMITER
    run_s = None
    if run.get("finished_at") and run.get("started_at"):
        run_s = run["finished_at"] - run["started_at"]
    return Case(
        side=side,
        k=k,
        round=round_,
        makespan_s=wall,
        run_s=run_s,
        timed_out=timed_out,
        exit_code=code,
        calls=calls,
        refused=refused,
        peak_sessions=peak,
        passed=sum(1 for t in tasks if t.get("status") == "passed"),
        attempts=sum(attempts),
        most_attempts=max(attempts, default=0),
        limit_changes=len(limits) if limiter else None,
        last_limit=(limits[-1] if limits else SLOTS) if limiter else None,
        lowest_limit=min(limits, default=SLOTS) if limiter else None,
    )


# -- summary -------------------------------------------------------------------------------------


def broken(case: Case, tasks: int) -> str | None:
    """Why a run's figures cannot be trusted, or None."""
    if case.peak_sessions > case.k:
        return f"the fake API served {case.peak_sessions} sessions at once, above K = {case.k}"
    if case.side == BACKOFF:
        return None  # failed attempts and a stopped run are what it may show
    if case.passed != tasks or case.exit_code != 0:
        return f"{case.passed} of {tasks} tasks passed (exit {case.exit_code})"
    if case.attempts != tasks:
        return f"{case.attempts} attempts for {tasks} tasks (a refused session counted)"
    if case.side == HANDSET and case.refused:
        return f"{case.refused} sessions refused below the API's room"
    return None


def summarise(cases: list[Case], opts: argparse.Namespace) -> list[dict[str, Any]]:
    """Per K and side: medians over the rounds (counts as medians too), and the ranges."""
    rows = []
    for k in opts.capacities:
        ideal = opts.tasks * opts.work / k
        for side in opts.sides:
            mine = [c for c in cases if c.k == k and c.side == side]
            if not mine:
                continue
            makespans = [c.makespan_s for c in mine]
            median = statistics.median(makespans)

            def mid(field: str, of: list[Case] = mine) -> Any:
                values = [getattr(c, field) for c in of]
                return None if None in values else statistics.median(values)

            rows.append(
                {
                    "k": k,
                    "side": side,
                    "ideal_s": ideal,
                    "makespan_s": median,
                    "makespan_range_s": [min(makespans), max(makespans)],
                    "ratio": median / ideal,
                    "run_s": mid("run_s"),
                    "timed_out": sum(c.timed_out for c in mine),
                    "refused": mid("refused"),
                    "calls": mid("calls"),
                    "passed": mid("passed"),
                    "attempts": mid("attempts"),
                    "most_attempts": max(c.most_attempts for c in mine),
                    "limit_changes": mid("limit_changes"),
                    "last_limit": mid("last_limit"),
                    "lowest_limit": mid("lowest_limit"),
                }
            )
    for row in rows:
        limiter = [r for r in rows if r["k"] == row["k"] and r["side"] == LIMITER]
        row["vs_limiter"] = row["makespan_s"] / limiter[0]["makespan_s"] if limiter else None
    return rows


def gate(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Per K: the limiter's makespan / the hand-set limit's (both sides must have run)."""
    found = {}
    for row in rows:
        if row["side"] == HANDSET and row["vs_limiter"] is not None:
            found[row["k"]] = 1 / row["vs_limiter"]
    return found


def fmt(value: Any, spec: str = "g") -> str:
    return "—" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    p = result["parameters"]
    head = (
        f"{p['tasks']} independent tasks of {p['work_s']:g} s, {p['slots']} slots, fake Claude "
        f"CLI with room for K sessions; {p['rounds']} round(s), sides interleaved; "
        + (f"per-task back-off = `{p['before']}`; " if BACKOFF in p["sides"] else "")
        + f"Python {result['python']}, {result['cpus']} CPUs."
    )
    lines = [
        head,
        "",
        "| K | side | makespan (s) | ideal N·d/K (s) | ratio | vs limiter | refused / calls "
        "| passed | attempts | limit changes (lowest, last) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        makespan = f"{r['makespan_s']:.1f}"
        if p["rounds"] > 1:
            low, high = r["makespan_range_s"]
            makespan += f" ({low:.1f}–{high:.1f})"
        if r["timed_out"]:
            makespan = f"> {makespan} (stopped)"
        vs = "—" if r["vs_limiter"] is None else f"{r['vs_limiter']:.2f}x"
        changes = "—"
        if r["limit_changes"] is not None:
            changes = f"{fmt(r['limit_changes'])} ({r['lowest_limit']:g}, {r['last_limit']:g})"
        lines.append(
            f"| {r['k']} | {r['side']} | {makespan} | {r['ideal_s']:.1f} | {r['ratio']:.2f}x "
            f"| {vs} | {fmt(r['refused'])} / {fmt(r['calls'])} "
            f"| {fmt(r['passed'])} / {p['tasks']} | {fmt(r['attempts'])} | {changes} |"
        )
    lines += [
        "",
        "Makespan: wall time of `prompter run` (start-up included), median (range) over rounds; "
        "ratio = "
        "makespan / ideal; refused: sessions the fake API answered with a 429; attempts: "
        "recorded in the state, all tasks; hand-set limit: `max_parallel_agents = K`.",
    ]
    if result["gate"]:
        ratios = ", ".join(f"K = {k}: {v:.2f}x" for k, v in result["gate"].items())
        lines += [
            "",
            f"Limiter / hand-set limit makespan: {ratios} (gate: at most {p['max_ratio']}x).",
        ]
    return "\n".join(lines)


def run_cases(srcs: dict[str, Path], opts: argparse.Namespace) -> tuple[list[Case], list[str]]:
    """Every case, the sides' order reversing from one to the next; and what broke."""
    cases: list[Case] = []
    problems: list[str] = []
    n = 0
    for round_ in range(1, opts.rounds + 1):
        for k in opts.capacities:
            order = opts.sides if n % 2 == 0 else opts.sides[::-1]
            n += 1
            for side in order:
                case = measure(side, k, round_, srcs[side], opts)
                cases.append(case)
                log(
                    f"round {round_}, K = {k}, {side}: {case.makespan_s:.1f} s"
                    f"{' (stopped)' if case.timed_out else ''}, {case.refused} refused, "
                    f"{case.passed} passed, {case.attempts} attempts"
                )
                why = broken(case, opts.tasks)
                if why:
                    problems.append(f"K = {k}, {side}, round {round_}: {why}")
    return cases, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32, help="independent tasks (default 32)")
    parser.add_argument("--work", type=float, default=1.0, help="seconds a session works (1.0)")
    parser.add_argument(
        "--capacities",
        type=lambda s: [int(k) for k in s.split(",")],
        default=[2, 4, 8],
        help="the fake API's room for sessions at once, comma-separated (default 2,4,8)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument(
        "--sides",
        type=lambda s: [SIDES[x] for x in s.split(",")],
        default=list(SIDES.values()),
        help="of limiter,backoff,handset, in this order in the first case (default all)",
    )
    parser.add_argument("--before", default="cde98c3", help="the per-task back-off's commit")
    parser.add_argument(
        "--timeout", type=float, default=150, help="stop a run after this many s (150)"
    )
    parser.add_argument("--max-ratio", type=float, default=1.5, help="limiter's gate (1.5)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT / "agent_limit", help="work dir (bench/out/…)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this)")
    opts = parser.parse_args(argv)
    opts.out = opts.out.resolve()

    srcs = {LIMITER: ROOT / "src", HANDSET: ROOT / "src"}
    if BACKOFF in opts.sides:
        commit = commit_of(opts.before)
        srcs[BACKOFF] = extract_src(commit, opts.out)
        opts.before = commit[:12]
    cases, problems = run_cases(srcs, opts)
    rows = summarise(cases, opts)
    ratios = gate(rows)
    result: dict[str, Any] = {
        "parameters": {
            "tasks": opts.tasks,
            "work_s": opts.work,
            "slots": SLOTS,
            "capacities": opts.capacities,
            "rounds": opts.rounds,
            "sides": opts.sides,
            "before": opts.before,
            "timeout_s": opts.timeout,
            "max_ratio": opts.max_ratio,
        },
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "rows": rows,
        "gate": ratios,
        "runs": [asdict(c) for c in cases],
        "problems": problems,
    }
    emit(result, markdown(result), opts.json)
    if problems:
        for problem in problems:
            log(f"BROKEN: {problem}")
        return EXIT_BROKEN
    slow = {k: ratio for k, ratio in ratios.items() if ratio > opts.max_ratio}
    for k, ratio in slow.items():
        log(f"over the gate: K = {k}, the limiter took {ratio:.2f}x the hand-set limit's time")
    return EXIT_SLOW if slow else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
