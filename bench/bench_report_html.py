#!/usr/bin/env python3
"""Benchmark report.html: a 1,000-task run's page is at most 3 MB, built in at most 1 s, and
opens and lays out in headless Chromium in at most 2 s.

The state is made up, as a run would leave it: groups of 10 tasks, each depending on the one
or two before it in its group, run in 8 slots; in every fifth group the fourth task fails both
its attempts with 8 KB of verify output, and the rest of that group is skipped; every attempt
has a 2 KB agent answer. The workflow file is written too (the page draws its graph).

Timed: `html.build_html` in this process (the facts from the state, the layout, the JSON),
the median of --rounds; then Chromium (tests/html_page.py, over the DevTools protocol) opens
the file --rounds times: navigation to the page's script done and two frames painted.

Exit status: 0 within the gates, 1 over one, 2 a correctness check failed (the page had a
console error or requested anything, or lacks a task).

    .venv/bin/python bench/bench_report_html.py
    .venv/bin/python bench/bench_report_html.py --tasks 5000 --no-browser --json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import EXIT_BROKEN, EXIT_OK, EXIT_SLOW, HERE, emit, log
from prompter.config import Workflow, load_workflow
from prompter.fingerprints import fingerprints
from prompter.records import AttemptRecord, RunRecord, State, TaskRecord, TaskStatus
from prompter.report.html import build_html

T0 = 1_790_000_000.0
SLOTS = 8


def _attempts(name: str, start: float, seconds: float, n: int, ok: bool) -> list[AttemptRecord]:
    each = seconds / n
    out = []
    for k in range(n):
        passed = ok and k == n - 1
        out.append(
            AttemptRecord(
                number=k + 1,
                started_at=start + k * each,
                finished_at=start + (k + 1) * each,
                ok=passed,
                reason=None if passed else "verify_command exited 1 (expected 0)",
                agent_exit_code=0,
                agent_duration_s=each * 0.8,
                verify_exit_code=0 if passed else 1,
                verify_duration_s=each * 0.2,
                output_tail="" if passed else ("E   assert result == expected\n" * 300)[:8192],
                cost_usd=0.02,
                input_tokens=12_000,
                output_tokens=900,
                num_turns=7,
                session_id=f"session-{name}",
                result_text=("Changed the parser as asked and ran the tests. " * 45)[:2048],
            )
        )
    return out


def make_run(folder: Path, tasks: int) -> tuple[Workflow, State]:
    names = [f"task-{i:05d}" for i in range(tasks)]
    lines = []
    for i, name in enumerate(names):
        deps = [names[j] for j in (i - 1, i - 2) if j >= i - i % 10]
        lines += [
            "[[tasks]]",
            f'name = "{name}"',
            f'prompt = "Make module {i} pass its tests."',
            f'verify_command = "pytest tests/test_{i}.py"',
            "depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]",
            "",
        ]
    path = folder / f"report-{tasks}.toml"
    path.write_text("\n".join(lines), "utf-8")
    workflow = load_workflow(path)
    prints = fingerprints(workflow)
    free = [T0] * SLOTS
    records: dict[str, TaskRecord] = {}
    failed: set[int] = set()
    for i, name in enumerate(names):
        group, pos = divmod(i, 10)
        if group in failed:
            records[name] = TaskRecord(
                name=name,
                fingerprint=prints[name],
                status=TaskStatus.SKIPPED,
                reason=f"dependency `{names[i - 1]}` failed",
                run_id="run-1",
            )
            continue
        slot = min(range(SLOTS), key=free.__getitem__)
        start, seconds = free[slot], 30.0 + (i * 7919 % 90)
        free[slot] = start + seconds
        fails = pos == 3 and group % 5 == 0
        if fails:
            failed.add(group)
        records[name] = TaskRecord(
            name=name,
            fingerprint=prints[name],
            status=TaskStatus.FAILED if fails else TaskStatus.PASSED,
            reason="verify_command exited 1 (expected 0)" if fails else None,
            attempts=_attempts(name, start, seconds, 2 if fails else 1, not fails),
            run_id="run-1",
            started_at=start,
            finished_at=start + seconds,
        )
    run = RunRecord(
        run_id="run-1",
        workflow=str(path),
        started_at=T0,
        finished_at=max(free),
        status="failed",
    )
    return workflow, State(tasks=records, runs=[run])


def open_in_chromium(path: Path, rounds: int, tasks: int) -> tuple[list[float], str | None]:
    """Seconds to open and lay out the page, per round; what was wrong with it, if anything."""
    sys.path.insert(0, str(HERE.parent))
    from tests.html_page import Page  # the DevTools-protocol driver the tests use

    times = []
    for _ in range(rounds):
        with Page() as page:
            times.append(page.open(path))
            shown = page.js("document.querySelectorAll('#graph g.node').length")
            if page.logged.errors or page.logged.requests != [path.resolve().as_uri()]:
                return times, f"errors {page.logged.errors}, requests {page.logged.requests}"
            if shown != tasks:
                return times, f"{shown} graph nodes for {tasks} tasks"
    return times, None


def markdown(result: dict[str, Any]) -> str:
    browser = result.get("open_s")
    rows = [
        f"A made-up {result['tasks']:,}-task run ({result['attempts']:,} attempts, "
        f"{result['edges']:,} dependencies), Python {result['python']}.",
        "",
        "| what | measured | gate |",
        "|---|---:|---:|",
        f"| report.html size | {result['bytes'] / 2**20:.2f} MiB ({result['bytes']:,} bytes) "
        f"| ≤ {result['max_bytes'] / 1e6:g} MB |",
        f"| build (median of {result['rounds']}) | {result['build_s']:.3f} s "
        f"| ≤ {result['max_build_s']:g} s |",
    ]
    if browser is not None:
        rows.append(
            f"| open and lay out in Chromium (median of {result['rounds']}) | {browser:.3f} s "
            f"| ≤ {result['max_open_s']:g} s |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timing")
    parser.add_argument("--max-bytes", type=int, default=3_000_000)
    parser.add_argument("--max-build-s", type=float, default=1.0)
    parser.add_argument("--max-open-s", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-report-html-") as tmp:
        folder = Path(tmp)
        workflow, state = make_run(folder, args.tasks)
        build_html(state, workflow)  # warm: imports, the assets' cache
        builds = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            html = build_html(state, workflow)
            builds.append(time.perf_counter() - started)
        page = folder / "report.html"
        page.write_text(html, "utf-8")
        size = page.stat().st_size
        log(f"built {size:,} bytes in {statistics.median(builds):.3f} s (median)")
        result: dict[str, Any] = {
            "tasks": args.tasks,
            "attempts": sum(len(r.attempts) for r in state.tasks.values()),
            "edges": workflow.graph.edge_count,
            "rounds": args.rounds,
            "python": platform.python_version(),
            "bytes": size,
            "build_s": statistics.median(builds),
            "build_runs": builds,
            "max_bytes": args.max_bytes,
            "max_build_s": args.max_build_s,
            "max_open_s": args.max_open_s,
        }
        broken = None
        if not args.no_browser:
            opens, broken = open_in_chromium(page, args.rounds, args.tasks)
            result["open_runs"] = opens
            result["open_s"] = statistics.median(opens) if opens else None
    emit(result, markdown(result), args.json)
    if broken:
        log(f"broken: {broken}")
        return EXIT_BROKEN
    slow = size > args.max_bytes or result["build_s"] > args.max_build_s
    if result.get("open_s") is not None:
        slow = slow or result["open_s"] > args.max_open_s
    return EXIT_SLOW if slow else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
