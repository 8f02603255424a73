"""Every benchmark in bench/ still runs, at a tiny size.

The README's performance figures come from these scripts; a script broken by a change in the
engine would go unnoticed until the next measurement. This runs each one on a few tasks and
checks that it finished its comparison: exit 0 (within its gate) or 1 (over it; at these sizes
fixed costs dominate, so a ratio gate may well fail), never 2 (a correctness check failed) or a
crash, and a JSON result with the figures the README quotes. Timings are not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def bench(script: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode in (0, 1), f"{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_overhead(tmp_path: Path) -> None:
    out = bench("bench_overhead.py", "--tasks", "5", "--rounds", "1", "--out", str(tmp_path))
    assert {"xargs -P 4", "posix_spawn floor", "prompter run", "prompter validate"} <= set(
        out["commands"]
    )
    assert out["ratio"] == out["commands"]["prompter run"]["ratio"] > 0
    run = out["commands"]["prompter run"]
    # prompter's own CPU is reported apart from its children's, and is a part of the total
    assert 0 < run["own_cpu_median"] < run["cpu_median"]
    assert out["commands"]["xargs -P 4"]["own_cpu_median"] is None
    budget = out["cpu_budget"]
    assert budget["own_cpu"] == run["own_cpu_median"]
    assert budget["children_cpu"] == run["cpu_median"] - run["own_cpu_median"]
    # the lower bound: the floor with prompter's fixed costs, and what the gate leaves above it
    bound = out["commands"]["posix_spawn floor + prompter's fixed costs"]["median"]
    base = out["commands"]["xargs -P 4"]["median"]
    assert out["per_task_room_us"] == pytest.approx(1e6 * (1.5 * base - bound) / 5)


def test_makespan(tmp_path: Path) -> None:
    out = bench(
        "bench_makespan.py",
        "--seeds", "1", "--target", "0.6", "--variants", "prompter,fifo", "--out", str(tmp_path),
    )  # fmt: skip
    assert set(out["variants"]) == {"prompter", "fifo"}
    assert out["variants"]["prompter"]["measured"]["median"] >= 1.0  # never below the bound


def test_scheduler() -> None:
    out = bench("bench_scheduler.py", "--tasks", "200", "--rounds", "1")
    assert {"independent", "random DAG", "DAG + state store"} <= set(out["variants"])


def test_state() -> None:
    out = bench("bench_state.py", "--sizes", "50,100")
    assert [size["tasks"] for size in out["sizes"]] == [50, 100]
    assert all(size["bytes_per_task"] > 0 for size in out["sizes"])


def test_validate(tmp_path: Path) -> None:
    out = bench("bench_validate.py", "--tasks", "200", "--rounds", "1", "--out", str(tmp_path))
    assert set(out["commands"]) == {"tomllib.load", "prompter validate", "prompter plan"}


def test_startup() -> None:
    out = bench("bench_startup.py", "--rounds", "1")
    assert out["median_s"]


def test_worktree() -> None:
    out = bench("bench_worktree.py", "--files", "40", "--tasks", "2")
    assert out["median_s"]["prompter task, worktree reused"] > 0


def test_snapshot() -> None:
    out = bench("bench_snapshot.py", "--files", "40", "--rounds", "1")
    assert set(out["median_s"]) == {"snapshot_tree (index copy)", "read-tree HEAD"}


def test_memory(tmp_path: Path) -> None:
    out = bench(
        "bench_memory.py", "--sizes", "0.2,0.4", "--shapes", "one-line,many-tasks",
        "--rounds", "1", "--out", str(tmp_path),
    )  # fmt: skip
    loads = {"validate, no warning", "validate", "plan", "run --dry-run"}
    expected = {"one-line": loads | {"run small", "run"}, "many-tasks": loads}
    for shape, commands in expected.items():
        sizes = out["results"][shape]
        assert set(sizes) == {"0.2", "0.4"}
        for measured in sizes.values():
            assert set(measured) == commands
            for m in measured.values():
                assert 0 < m["peak_rss_mb"] < 1000 and m["budget_mb"] > 64
    assert set(out["growth"]["one-line"]) >= {"validate", "run"}


def test_before_after(tmp_path: Path) -> None:
    """Two commits side by side: each runs its own benchmark on its own src (here both HEAD)."""
    root = BENCH.parent
    try:
        done = subprocess.run(
            [
                sys.executable,
                str(BENCH / "before_after.py"),
                "HEAD",
                "HEAD",
                "bench_scheduler.py",
                "--rounds",
                "1",
                "--keys",
                "median_us",
                "--out",
                str(tmp_path),
                "--",
                "--tasks",
                "50",
                "--rounds",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        lines = done.stdout.splitlines()
        assert lines[1].split() == ["figure", "before", "after", "after/before"]
        rows = {row[0]: row[1:] for row in (line.rsplit(maxsplit=3) for line in lines[2:])}
        assert "variants.independent.median_us" in rows
        assert all(len(row) == 3 and float(row[0]) > 0 for row in rows.values()), rows
    finally:
        for tree in tmp_path.iterdir():
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
                check=False,
            )


def test_fanout() -> None:
    out = bench("bench_fanout.py", "--seeds", "2", "--max-tasks", "30")
    assert len(out["cases"]) == 4
    assert out["median"]["ratio"] >= 1.0  # never below the bound
    assert {"per_task_ratio", "one_job_ratio", "jobs", "needs"} <= set(out["cases"][0])


@pytest.mark.container
def test_job_startup() -> None:
    """The released image's path only, one round (~30 s once the images are cached; building
    the base and the action's image first takes minutes, as for the container tests)."""
    out = bench(
        "bench_job_startup.py", "--variants", "prebuilt", "--rounds", "1", "--warmup", "0",
        timeout=1800,
    )  # fmt: skip
    prebuilt = out["variants"]["prebuilt"]
    assert prebuilt["startup_median_s"] > 0 and prebuilt["prompter_median_s"] > 0
    assert prebuilt["step_median_s"] > 0


def test_report_html() -> None:
    out = bench("bench_report_html.py", "--tasks", "40", "--rounds", "1")
    assert out["tasks"] == 40 and out["bytes"] > 0
    assert out["open_s"] is not None and out["build_s"] > 0


def test_agent_limit(tmp_path: Path) -> None:
    """Both sides against a fake API with room for 2 of 6 sessions; `--before HEAD` (this tree's
    last commit: a shallow clone has no older one) exercises extracting the other side's src.
    The limiter side must pass every task with one attempt each: the refused sessions (the
    first wave above K) are not attempts."""
    out = bench(
        "bench_agent_limit.py", "--tasks", "6", "--work", "0.3", "--capacities", "2",
        "--sides", "limiter,backoff", "--before", "HEAD", "--out", str(tmp_path),
    )  # fmt: skip
    assert [(row["k"], row["side"]) for row in out["rows"]] == [
        (2, "limiter"),
        (2, "per-task back-off"),
    ]
    assert not out["problems"]
    limiter = out["rows"][0]
    assert limiter["passed"] == limiter["attempts"] == 6 and limiter["most_attempts"] == 1
    assert limiter["refused"] >= 1 and limiter["calls"] == 6 + limiter["refused"]
    assert limiter["limit_changes"] >= 1 and limiter["lowest_limit"] <= 2
    assert limiter["ideal_s"] == pytest.approx(6 * 0.3 / 2)
    assert limiter["makespan_s"] > limiter["ideal_s"] and limiter["vs_limiter"] == 1.0
    assert "| 2 | limiter |" in out["markdown"]
