"""The forecast (issue 20): what each task will likely cost and take, from what the state
measured of it; `plan` shows it, a run checks it against its budget before anything starts,
and the summary sets each task's cost beside it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from prompter.budget import over_budget
from prompter.forecast import forecast, quantile, task_forecast
from prompter.records import (
    AttemptRecord,
    Estimate,
    RunForecast,
    RunRecord,
    State,
    TaskRecord,
    TaskStatus,
    already_satisfied,
)
from prompter.report.summary import build_summary

from .harness import ClaudeHarness


def attempt(n: int, cost: float | None = None, seconds: float = 10.0, **keys: Any) -> AttemptRecord:
    return AttemptRecord(
        number=n, started_at=100.0, finished_at=100.0 + seconds, cost_usd=cost, **keys
    )


def record(
    name: str, *attempts: AttemptRecord, status: TaskStatus = TaskStatus.PASSED, **keys: Any
) -> TaskRecord:
    return TaskRecord(
        name=name, fingerprint="f", status=status, attempts=list(attempts), run_id="r", **keys
    )


# -- the module, table-tested ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([5.0], 0.9, 5.0),
        ([1.0, 3.0], 0.5, 2.0),
        ([1.0, 3.0], 0.9, 2.8),
        ([3.0, 1.0, 2.0], 0.5, 2.0),  # unsorted in
        ([1.0, 2.0, 3.0, 4.0, 100.0], 0.5, 3.0),  # the median ignores the outlier
        ([1.0, 2.0, 3.0, 4.0, 100.0], 0.9, 61.6),
        ([0.0, 0.0], 0.9, 0.0),
    ],
)
def test_quantile_interpolates_between_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert quantile(values, q) == pytest.approx(expected)


# (attempts of the latest record, its status) -> (expected attempts, cost, duration, tokens)
CASES: list[tuple[str, TaskRecord | None, int, Any, Any, Any]] = [
    ("no record", None, 0, None, None, None),
    (
        "one attempt",
        record("t", attempt(1, 0.2, 30.0, input_tokens=100, output_tokens=20)),
        1,
        (0.2, 0.2),
        (30.0, 30.0),
        (120.0, 120.0),
    ),
    (
        "two attempts: median and p90, times two",
        record("t", attempt(1, 0.1, 10.0), attempt(2, 0.3, 30.0)),
        2,
        (0.4, 0.56),
        (40.0, 56.0),
        None,
    ),
    (
        "a failed outcome measured the task too",
        record("t", attempt(1, 0.5), status=TaskStatus.FAILED),
        1,
        (0.5, 0.5),
        (10.0, 10.0),
        None,
    ),
    (
        "an interrupted record measured nothing whole",
        record("t", attempt(1, 0.5), status=TaskStatus.INTERRUPTED),
        0,
        None,
        None,
        None,
    ),
    ("a skipped record has nothing", record("t", status=TaskStatus.SKIPPED), 0, None, None, None),
    (
        "a command agent: duration known, cost unknown (not zero)",
        record("t", attempt(1, None, 4.0)),
        1,
        None,
        (4.0, 4.0),
        None,
    ),
    (
        "a refused session is no attempt",
        record("t", attempt(1, 0.0, 1.0, rate_limited=True), attempt(2, 0.4, 20.0)),
        1,
        (0.4, 0.4),
        (20.0, 20.0),
        None,
    ),
    (
        "a NaN or negative cost is no measurement",
        record("t", attempt(1, math.nan), attempt(2, -1.0), attempt(3, 0.3)),
        3,
        (0.9, 0.9),
        (30.0, 30.0),
        None,
    ),
    (
        "passed without an agent (verify first): no attempts, no history",
        record("t", reason="already satisfied (verify passed before any agent ran)"),
        0,
        None,
        None,
        None,
    ),
]


def _pair(estimate: Estimate | None) -> tuple[float, float] | None:
    return None if estimate is None else (estimate.expected, estimate.high)


@pytest.mark.parametrize(
    ("what", "latest", "attempts", "cost", "duration", "tokens"), CASES, ids=[c[0] for c in CASES]
)
def test_task_forecast(
    what: str, latest: TaskRecord | None, attempts: int, cost: Any, duration: Any, tokens: Any
) -> None:
    got = task_forecast("t", latest)
    assert got.attempts == attempts
    assert _pair(got.cost_usd) == (pytest.approx(cost) if cost else None)
    assert _pair(got.duration_s) == (pytest.approx(duration) if duration else None)
    assert _pair(got.tokens) == (pytest.approx(tokens) if tokens else None)


def test_the_total_leaves_the_unknown_out_and_names_them() -> None:
    state = State(
        tasks={
            "a": record("a", attempt(1, 0.25)),
            "b": record("b", attempt(1, 0.1), attempt(2, 0.3)),
            "c": record("c", attempt(1, None)),  # a command agent
        }
    )
    ahead = forecast(state, ["a", "b", "c", "d"])
    assert _pair(ahead.cost_usd) == pytest.approx((0.65, 0.81))
    assert ahead.unknown == ("c", "d")
    out = ahead.to_json()
    assert out["cost_usd"] == pytest.approx({"expected": 0.65, "high": 0.81})
    assert out["unknown"] == ["c", "d"]
    assert out["tasks"]["d"] == {
        "attempts": 0,
        "cost_usd": None,
        "duration_s": None,
        "tokens": None,
    }
    kept = ahead.record(budget_usd=0.5)
    assert set(kept.tasks) == {"a", "b"} and kept.unknown == 2 and kept.over_budget


def test_nothing_known_is_null_not_zero() -> None:
    ahead = forecast(State(), ["a", "b"])
    assert ahead.cost_usd is None and ahead.duration_s is None
    assert ahead.to_json()["cost_usd"] is None
    assert ahead.unknown == ("a", "b")
    assert not ahead.record(budget_usd=0.01).over_budget  # no history: nothing to warn of


@pytest.mark.parametrize(
    ("expected", "budget", "warns"),
    [(0.5, None, False), (0.5, 1.0, False), (1.0, 1.0, False), (1.01, 1.0, True)],
)
def test_over_budget_only_when_the_expected_cost_exceeds_it(
    expected: float, budget: float | None, warns: bool
) -> None:
    recorded = RunForecast(
        tasks={"a": Estimate(expected=expected, high=2 * expected)}, unknown=1, budget_usd=budget
    )
    message = over_budget(recorded)
    assert (message is not None) is warns
    if message:
        assert message == (
            "the forecast's expected cost $1.01 (high $2.02; 1 task with history, 1 more task "
            "unknown) exceeds max_cost_usd $1.00"
        )


# -- plan, run and summary with the fake Claude CLI --------------------------------------------


def _workflow(c: ClaudeHarness) -> None:
    """`a` costs 0.10, then 0.20 a run; `b` fails its check at the first attempt of each run
    (the test removes `ok` between runs), its calls costing 0.1, 0.3, then 0.2, 0.4."""
    c.claude("a", [{"cost": 0.10}, {"cost": 0.20}])
    c.claude(
        "b",
        [{"cost": 0.1}, {"cost": 0.3}, {"cost": 0.2}, {"cost": 0.4}],
        verify_command="test -f ok || { touch ok; false; }",
    )


def _plan(c: ClaudeHarness) -> dict[str, Any]:
    done = c.cli("plan", "--json", "prompter.toml")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_plan_without_history_names_every_task_unknown(c: ClaudeHarness) -> None:
    _workflow(c)
    c.write()
    estimate = _plan(c)["estimate"]
    assert estimate["cost_usd"] is None
    assert estimate["unknown"] == ["a", "b"]
    done = c.cli("plan", "prompter.toml")
    assert "forecast: no cost history yet" in done.stdout
    assert "unknown (no cost history, not counted): 2 tasks: a, b" in done.stdout


def test_plan_after_two_runs_forecasts_within_the_recorded_range(c: ClaudeHarness) -> None:
    _workflow(c)
    assert c.run() == 0
    (c.work / "ok").unlink()
    assert c.run("--fresh") == 0
    state = c.state()
    attempts = {n: [a["cost_usd"] for a in t["attempts"]] for n, t in state["tasks"].items()}
    assert attempts == {"a": [0.2], "b": pytest.approx([0.2, 0.4])}
    estimate = _plan(c)["estimate"]
    cost = estimate["cost_usd"]
    # Each run cost (0.10 + 0.1 + 0.3) = 0.5 and (0.20 + 0.2 + 0.4) = 0.8; at each task's
    # dearest attempt every time, 0.2 + 2 * 0.4 = 1.0.
    assert 0.5 <= cost["expected"] <= cost["high"] <= 1.0
    assert cost == pytest.approx({"expected": 0.8, "high": 0.96})
    assert estimate["unknown"] == []
    assert estimate["tasks"]["b"]["attempts"] == 2
    assert estimate["tasks"]["b"]["cost_usd"] == pytest.approx({"expected": 0.6, "high": 0.76})
    assert estimate["tasks"]["a"]["tokens"] == {"expected": 120.0, "high": 120.0}
    text = c.cli("plan", "prompter.toml").stdout
    assert "forecast: cost $0.80 expected, $0.96 high" in text
    assert "  b: $0.60 (high $0.76)" in text


def test_the_summary_sets_each_cost_beside_the_forecast_made_before_the_run(
    c: ClaudeHarness,
) -> None:
    _workflow(c)
    c.settings["max_cost_usd"] = 5
    assert c.run() == 0
    assert c.state()["runs"][0]["forecast"] == {"tasks": {}, "unknown": 2, "budget_usd": 5.0}
    (c.work / "ok").unlink()
    assert c.run("--fresh") == 0
    recorded = c.state()["runs"][1]["forecast"]
    assert recorded["tasks"]["b"] == pytest.approx({"expected": 0.4, "high": 0.56})
    summary = (c.root / ".prompter" / "summary.md").read_text()
    assert (
        "Forecast before the run: \\$0.50 expected, \\$0.66 high, for 2 tasks with history; "
        "cost \\$0.80" in summary
    )
    assert "| $0.20 (forecast \\$0.10) |" in summary
    assert "| $0.60 (forecast \\$0.40–\\$0.56) |" in summary
    assert "Over budget" not in summary


def test_a_forecast_above_the_budget_warns_before_anything_starts(
    c: ClaudeHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    _workflow(c)
    assert c.run() == 0
    capsys.readouterr()
    c.settings["max_cost_usd"] = 0.3
    (c.work / "ok").unlink()
    code = c.run("--fresh")
    out, err = capsys.readouterr()
    warning = (
        "warning: the forecast's expected cost $0.50 (high $0.66; 2 tasks with history) exceeds "
        "max_cost_usd $0.30: the run stops when the budget is reached"
    )
    lines = out.splitlines()
    said = next(i for i, line in enumerate(lines) if warning in line)
    started = next(i for i, line in enumerate(lines) if "▶" in line)
    assert said < started  # before any task started
    assert f"prompter: {warning}" in err  # and again with the run's warnings at the end
    assert code == 1  # then it ran up to the budget, as without a forecast
    summary = (c.root / ".prompter" / "summary.md").read_text()
    assert (
        "⚠️ **Over budget before the start:** the expected cost \\$0.50 exceeded max_cost_usd "
        "\\$0.30; the run went on up to the budget." in summary
    )


def test_strict_budget_exits_2_before_anything_runs(c: ClaudeHarness) -> None:
    _workflow(c)
    assert c.run() == 0
    c.settings["max_cost_usd"] = 0.3
    c.write()
    calls, runs = len(c.claude_calls()), len(c.state()["runs"])
    done = c.cli("run", "--fresh", "--strict-budget", "prompter.toml")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "prompter: the forecast's expected cost $0.50 (high $0.66; 2 tasks with history) "
        "exceeds max_cost_usd $0.30, and the budget is strict: nothing was run"
    )
    assert len(c.claude_calls()) == calls  # no agent started
    assert len(c.state()["runs"]) == runs  # and no run was recorded
    dry = c.cli("run", "--dry-run", "--fresh", "--strict-budget", "prompter.toml")
    assert dry.returncode == 0
    assert "a run would stop here (exit 2): the forecast's expected cost $0.50" in dry.stderr
    assert c.cli("run", "--fresh", "prompter.toml").returncode == 0  # not strict: it runs
    assert len(c.claude_calls()) > calls


def test_the_summary_says_what_verify_first_saved() -> None:
    satisfied = "already satisfied (verify passed before any agent ran)"
    check = attempt(0, ok=True)  # the pre-check that passed (`TaskRecord.precheck`)
    tasks = {
        "a": record("a", reason=satisfied, precheck=check),
        "b": record("b", reason=satisfied, precheck=check),
        "c": record("c", attempt(1, 0.3)),
    }
    assert already_satisfied(tasks["a"]) and not already_satisfied(tasks["c"])
    run = RunRecord(
        run_id="r",
        workflow="wf.toml",
        started_at=100.0,
        finished_at=200.0,
        status="passed",
        forecast=RunForecast(
            tasks={
                "a": Estimate(expected=0.25, high=0.5),
                "c": Estimate(expected=0.3, high=0.3),
            },
            unknown=1,
        ),
    )
    summary = build_summary(State(tasks=tasks, runs=[run]))
    assert (
        "Verify first saved: 2 tasks already satisfied, no agent started (forecast \\$0.25, "
        "1 task without one)." in summary
    )
    assert "1 task without history (not counted)" in summary
    assert "| - (forecast \\$0.25–\\$0.50) |" in summary


def test_a_run_of_an_older_prompter_has_no_forecast(tmp_path: Path) -> None:
    run = RunRecord(run_id="r", workflow="wf.toml", started_at=1.0)
    assert RunRecord.model_validate_json(run.model_dump_json()).forecast is None
    summary = build_summary(State(tasks={"c": record("c", attempt(1, 0.3))}, runs=[run]))
    assert "Forecast" not in summary and "forecast" not in summary
