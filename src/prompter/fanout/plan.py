"""`prompter plan --jobs N`: the grouping `prompter ci generate` writes, and its estimated
makespan on CI (a start-up per job, a cap on jobs at once) next to one machine's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Workflow
from .grouping import Grouping, group_tasks
from .jobs import DEFAULT_TASK_S, Costs, job_duration, lower_bound, simulate_jobs


def workflow_costs(workflow: Workflow) -> Costs:
    """The estimate's defaults, with the workflow's own parallelism inside each job."""
    return Costs(slots=workflow.slots)


def workflow_grouping(workflow: Workflow, max_jobs: int) -> Grouping:
    """The grouping of `prompter ci generate`: from the workflow file alone (every task
    DEFAULT_TASK_S), so the same file always gives the same CI workflow, wherever it is run."""
    weights = [DEFAULT_TASK_S] * len(workflow.tasks)
    return group_tasks(workflow.graph, weights, workflow_costs(workflow), max_jobs)


@dataclass(frozen=True)
class JobsPlan:
    names: tuple[str, ...]
    grouping: Grouping
    start: tuple[float, ...]  # per job, as simulated
    finish: tuple[float, ...]
    makespan: float
    one_machine: float  # one job for everything: one start-up, then the workflow's slots
    lower_bound: float
    costs: Costs
    measured: bool  # durations from the state, else DEFAULT_TASK_S per task

    def to_json(self, ids: list[str]) -> dict[str, Any]:
        return {
            "jobs": [
                {
                    "id": ids[g],
                    "tasks": [self.names[t] for t in tasks],
                    "needs": [ids[n] for n in self.grouping.needs[g]],
                    "start": round(self.start[g], 1),
                    "finish": round(self.finish[g], 1),
                }
                for g, tasks in enumerate(self.grouping.groups)
            ],
            "estimate": {
                "jobs": round(self.makespan, 1),
                "one_machine": round(self.one_machine, 1),
                "lower_bound": round(self.lower_bound, 1),
                "unit": "s",
                "job_overhead": self.costs.overhead,
                "concurrency": self.costs.concurrency,
                "slots_per_job": self.costs.slots,
                "measured_durations": self.measured,
            },
        }


def make_jobs_plan(
    workflow: Workflow, max_jobs: int, durations: Mapping[str, float] | None = None
) -> JobsPlan:
    known = {n: d for n, d in (durations or {}).items() if d > 0}
    fallback = sum(known.values()) / len(known) if known else DEFAULT_TASK_S
    weights = [known.get(t.name, fallback) for t in workflow.tasks]
    costs = workflow_costs(workflow)
    grouping = workflow_grouping(workflow, max_jobs)
    groups = [list(g) for g in grouping.groups]
    schedule = simulate_jobs(workflow.graph, weights, groups, costs)
    everything = list(workflow.graph.order)
    return JobsPlan(
        names=tuple(t.name for t in workflow.tasks),
        grouping=grouping,
        start=schedule.start,
        finish=schedule.finish,
        makespan=schedule.makespan,
        one_machine=costs.overhead + job_duration(workflow.graph, weights, everything, costs.slots),
        lower_bound=lower_bound(workflow.graph, weights, costs),
        costs=costs,
        measured=bool(known),
    )
