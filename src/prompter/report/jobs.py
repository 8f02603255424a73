"""The summary's "Jobs" section for a fan-out: each job's run, its tasks and what it cost, and
the total. Empty outside a fan-out (no run recorded a job)."""

from __future__ import annotations

import math

from ..records import TaskStatus
from ..words import count
from .markdown import md
from .view_model import JobFacts, RunFacts, duration_text

MAX_JOBS = 100  # rows; more are summed up in one line (the total row still counts them all)

_ICON = {"passed": "✅", "failed": "❌", "interrupted": "⚠️"}
_HEAD = (
    "### Jobs\n\n| job | result | tasks | passed | failed | skipped | wall time | cost |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
)


def _dollars(value: float) -> str:
    return f"${value:.2f}" if math.isfinite(value) else "-"


def _counts(counts: dict[TaskStatus, int]) -> str:
    tasks = sum(counts.values())
    shown = (TaskStatus.PASSED, TaskStatus.FAILED, TaskStatus.SKIPPED)
    return f"{tasks} | " + " | ".join(str(counts.get(s, 0)) for s in shown)


def _row(job: JobFacts) -> str:
    result = job.run.status.value if job.run.status is not None else "did not finish"
    return (
        f"| {md(job.job, 100)} | {_ICON.get(result, '⏳')} {result} | {_counts(job.counts)} | "
        f"{duration_text(job.wall_s)} | {_dollars(job.cost_usd)} |\n"
    )


def jobs_section(facts: RunFacts) -> str:
    """The section, or "" when the state holds no fan-out."""
    if not facts.jobs:
        return ""
    rows = [_row(j) for j in facts.jobs[:MAX_JOBS]]
    total: dict[TaskStatus, int] = {}
    for job in facts.jobs:
        for status, n in job.counts.items():
            total[status] = total.get(status, 0) + n
    cost = sum(j.cost_usd for j in facts.jobs if math.isfinite(j.cost_usd))
    result = facts.result
    rows.append(
        f"| **total** | {_ICON.get(result, '⏳')} {md(result)} | {_counts(total)} | "
        f"{duration_text(facts.wall_s)} | **{_dollars(cost)}** |\n"
    )
    more = len(facts.jobs) - MAX_JOBS
    after = f"\n_… and {count(more, 'more job')} (in the total)._\n" if more > 0 else ""
    explain = (
        f"\n{count(len(facts.jobs), 'job')} of a fan-out, each with its latest run. A job counts "
        "the tasks it ran, and their cost; tasks it took over from the jobs it depends on count "
        "where they ran. Wall time of the total: the first job's start to the last job's end.\n\n"
    )
    return _HEAD + "".join(rows) + after + explain
