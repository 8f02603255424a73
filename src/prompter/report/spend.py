"""The summary's lines on spend: what the run was forecast to cost before it started (recorded
on its `RunRecord` from the state before it, `forecast.py`) against what it cost and its budget,
each task's cost beside its forecast, and what verify-first saved (tasks satisfied without an
agent, and what they were forecast to cost)."""

from __future__ import annotations

import math

from ..records import Estimate, already_satisfied
from ..words import count
from .view_model import RunFacts, TaskView


def dollars(value: float) -> str:
    # Escaped: two bare dollar signs on a line (`$0.40–$0.56`) are inline math to GitHub.
    return f"\\${value:.2f}" if math.isfinite(value) else "-"


def forecast_text(estimate: Estimate | None) -> str:
    """A task's forecast for its table cell; empty without one."""
    if estimate is None:
        return ""
    if round(estimate.high, 2) == round(estimate.expected, 2):
        return f"forecast {dollars(estimate.expected)}"
    return f"forecast {dollars(estimate.expected)}–{dollars(estimate.high)}"


def _forecast_line(facts: RunFacts) -> list[str]:
    forecasts = [r.forecast for r in facts.runs if r.forecast is not None]
    if not forecasts:
        return []
    tasks = {name: e for f in forecasts for name, e in f.tasks.items()}
    unknown = sum(f.unknown for f in forecasts)
    without = f"; {count(unknown, 'task')} without history (not counted)" if unknown else ""
    if not tasks:
        return [f"Forecast before the run: none, no task had a cost history{without}."]
    expected = sum(e.expected for e in tasks.values())
    high = sum(e.high for e in tasks.values())
    lines = [
        f"Forecast before the run: {dollars(expected)} expected, {dollars(high)} high, for "
        f"{count(len(tasks), 'task')} with history{without}; cost {dollars(facts.cost_usd)} "
        "(each task's beside its forecast in the table)."
    ]
    for f in forecasts:
        cost = f.cost_usd
        if f.over_budget and cost is not None and f.budget_usd is not None:
            lines.append(
                f"⚠️ **Over budget before the start:** the expected cost {dollars(cost.expected)} "
                f"exceeded max_cost_usd {dollars(f.budget_usd)}; the run went on up to the budget."
            )
    return lines


def _saved_line(satisfied: list[TaskView]) -> list[str]:
    if not satisfied:
        return []
    known = [v.forecast.expected for v in satisfied if v.forecast is not None]
    unknown = len(satisfied) - len(known)
    worth = f"forecast {dollars(sum(known))}" if known else "no forecast"
    if known and unknown:
        worth += f", {count(unknown, 'task')} without one"
    return [
        f"Verify first saved: {count(len(satisfied), 'task')} already satisfied, no agent "
        f"started ({worth})."
    ]


def spend_lines(facts: RunFacts) -> list[str]:
    """The headline's paragraphs on spend: none for a run that recorded no forecast and where
    no task was satisfied without an agent."""
    satisfied = [v for v in facts.tasks if v.current and already_satisfied(v.record)]
    return _forecast_line(facts) + _saved_line(satisfied)
