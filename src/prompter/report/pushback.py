"""The API's pushback in the reports: how the run's limit on agent sessions at once changed.

A run records every change of its agent limit (`RunRecord.agent_limit`, see `agent_limit.py`).
From them: the summary's line ("Agent limit: lowered to 3 of 8 at 12:01:05 (API 429); back to 8
at 12:03:10"), the timeline's "agent limit" section (one bar per period at a level below the
maximum, "3 of 8"), and the lowest limit for the JUnit suite. A run whose limit never changed
gets none of them. In a fan-out each job adapts on its own: a line and a section per job.

Causes are prompter's own words, but a state file is anyone's: they are escaped all the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..records import AgentLimitChange, RunRecord
from ..text import report_line
from . import mermaid
from .markdown import md
from .view_model import utc_text

MAX_PHRASES = 8  # of one run's line; the rest are counted
MAX_LINES = 10  # runs (jobs) with a line of their own; the rest are counted
MAX_BARS = 40  # of the timeline's agent limit sections together
BURST_S = 5.0  # cuts this close, with one cause, are one phrase: "lowered to 5, 4, 3 of 8"
_DATE_LIMIT_S = 8.64e12  # a JavaScript Date's range: mermaid cannot place a bar past it


def _usable(change: AgentLimitChange) -> bool:
    return math.isfinite(change.at) and abs(change.at) < _DATE_LIMIT_S and change.maximum >= 1


def changes_of(run: RunRecord) -> list[AgentLimitChange]:
    """The run's changes with a usable time, in order."""
    return [c for c in run.agent_limit if _usable(c)]


def lowest(runs: Sequence[RunRecord]) -> AgentLimitChange | None:
    """The change to the lowest limit of `runs` (the first, of equals); None: none changed."""
    changes = [c for run in runs for c in changes_of(run)]
    return min(changes, key=lambda c: c.limit, default=None)


# -- the summary's line ------------------------------------------------------------------------


def _clock(moment: float) -> str:
    return utc_text(moment, "%H:%M:%S") or "?"


def _groups(changes: Sequence[AgentLimitChange]) -> list[tuple[str, list[AgentLimitChange]]]:
    """The changes in runs of one kind: "raise" (all raises in a row), "cut" (cuts in a row
    with one cause within BURST_S of the first: a burst of refusals), "hold" (a pause at the
    same limit)."""
    groups: list[tuple[str, list[AgentLimitChange]]] = []
    before: int | None = None
    for change in changes:
        if before is not None and change.limit > before:
            kind = "raise"
        else:
            kind = "cut" if before is None or change.limit < before else "hold"
        if groups and groups[-1][0] == kind and kind != "hold":
            first = groups[-1][1][0]
            burst = first.cause == change.cause and change.at - first.at <= BURST_S
            if kind == "raise" or burst:
                groups[-1][1].append(change)
                before = change.limit
                continue
        groups.append((kind, [change]))
        before = change.limit
    return groups


def _phrases(changes: Sequence[AgentLimitChange]) -> list[str]:
    """What the limit did, in order: each cut (a burst as one) or pause with its cause; a run of
    raises as one phrase, where it got to."""
    out: list[str] = []
    for kind, group in _groups(changes):
        first, last = group[0], group[-1]
        if kind == "raise":
            out.append(_raised(last))
            continue
        levels = ", ".join(str(c.limit) for c in group)
        verb = "lowered to" if kind == "cut" else "held at"
        cause = md(first.cause, 160)
        out.append(f"{verb} {levels} of {last.maximum} at {_clock(first.at)} ({cause})")
    return out


def _raised(change: AgentLimitChange) -> str:
    if change.limit >= change.maximum:
        return f"back to {change.maximum} at {_clock(change.at)}"
    return f"up to {change.limit} by {_clock(change.at)}"


def _line(run: RunRecord, job: bool) -> str | None:
    changes = changes_of(run)
    if not changes:
        return None
    phrases = _phrases(changes)
    more = len(phrases) - MAX_PHRASES
    shown = phrases[:MAX_PHRASES] + ([f"… {more} more"] if more > 0 else [])
    last = changes[-1]
    if last.limit < last.maximum:
        shown.append(f"{last.limit} of {last.maximum} at the end")
    whose = f" (job {md(run.job, 100)})" if job and run.job else ""
    return f"**Agent limit{whose}** (UTC): " + "; ".join(shown)


def limit_lines(runs: Sequence[RunRecord], jobs: bool) -> list[str]:
    """The summary's paragraphs for `runs` whose agent limit changed (none when none did)."""
    lines = [line for run in runs if (line := _line(run, jobs)) is not None]
    if not lines:
        return []
    more = len(lines) - MAX_LINES
    after = [f"_… and {more} more jobs whose agent limit changed._"] if more > 0 else []
    explain = (
        "The API pushed back (a rate limit, an overload): fewer agent sessions ran at once "
        "than allowed, until it had room again."
    )
    return [*lines[:MAX_LINES], *after, explain]


# -- the timeline's band -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """A time the limit stayed at one level below its maximum."""

    start: float
    end: float
    limit: int
    maximum: int


def periods(run: RunRecord, end: float | None) -> list[Period]:
    """The run's periods below the maximum; one still open at its last change ends at `end`
    (the run's end, else the timeline's), if that is later."""
    out: list[Period] = []
    changes = changes_of(run)
    for change, after in zip(changes, [*changes[1:], None], strict=False):  # None: the last
        if change.limit >= change.maximum:
            continue
        stop = after.at if after is not None else end
        if stop is None or not stop > change.at:
            stop = change.at
        if out and out[-1].limit == change.limit and out[-1].end == change.at:
            out[-1] = Period(out[-1].start, stop, change.limit, change.maximum)  # a pause
        else:
            out.append(Period(change.at, stop, change.limit, change.maximum))
    return out


def limit_sections(
    runs: Sequence[RunRecord], end: float | None, jobs: bool
) -> list[tuple[str, list[mermaid.Bar]]]:
    """The timeline's sections: "agent limit" (in a fan-out, one per job whose limit went
    below its maximum), at most MAX_BARS bars in all (the earliest)."""
    sections: list[tuple[str, list[mermaid.Bar]]] = []
    drawn = 0
    for run in runs:
        finished = run.finished_at
        usable = finished is not None and math.isfinite(finished) and abs(finished) < _DATE_LIMIT_S
        bars: list[mermaid.Bar] = []
        for period in periods(run, finished if usable else end)[: MAX_BARS - drawn]:
            start = math.floor(period.start * 1000)
            stop = max(math.ceil(period.end * 1000), start + 1)
            text = f"{period.limit} of {period.maximum}"
            # "active": drawn lighter than the attempts' bars, whose colours say their outcome.
            bars.append(mermaid.Bar(f"l{drawn}", text, start, stop, ("active",)))
            drawn += 1
        if bars:
            name = f"agent limit, job {report_line(run.job, 100)}" if jobs and run.job else ""
            sections.append((name or "agent limit", bars))
    return sections
