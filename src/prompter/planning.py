"""`prompter plan`: order, waves, critical path and an estimate of the parallel run time.

The estimate simulates the greedy list schedule of `admission.Admission` with each task's
duration estimate: its last measured duration when history has one, else one unit.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .admission import Admission, Demand, Limits, demands_for, limits_for, task_weights
from .config import Mode, Workflow
from .graph import DependencyGraph, Readiness


@dataclass(frozen=True)
class Schedule:
    """A simulated run: when each task starts and finishes."""

    start: tuple[float, ...]
    finish: tuple[float, ...]

    @property
    def makespan(self) -> float:
        return max(self.finish, default=0.0)


@dataclass(frozen=True)
class Plan:
    mode: Mode
    names: tuple[str, ...]
    order: tuple[int, ...]
    waves: tuple[tuple[int, ...], ...]
    critical_path: tuple[int, ...]
    critical_length: float
    sequential: float
    parallel: float
    lower_bound: float
    slots: int
    unit: str  # "units" without history, "s" with it
    notes: tuple[str, ...] = field(default=())
    # `verify_first` tasks: their verify command runs before any agent, and a pass needs none.
    prechecked: tuple[int, ...] = field(default=())

    @property
    def speedup(self) -> float:
        return self.sequential / self.parallel if self.parallel > 0 else 1.0

    def to_json(self) -> dict[str, Any]:
        name = self.names.__getitem__
        return {
            "mode": self.mode,
            "order": [name(i) for i in self.order],
            "waves": [[name(i) for i in wave] for wave in self.waves],
            "critical_path": {
                "tasks": [name(i) for i in self.critical_path],
                "length": self.critical_length,
            },
            "estimate": {
                "sequential": self.sequential,
                "parallel": self.parallel,
                "speedup": round(self.speedup, 3),
                "lower_bound": self.lower_bound,
                "unit": self.unit,
                "slots": self.slots,
            },
            "notes": list(self.notes),
            "verify_first": [name(i) for i in self.prechecked],
        }


def simulate(
    graph: DependencyGraph,
    weights: Sequence[float],
    limits: Limits,
    demands: Sequence[Demand],
    priorities: Sequence[int],
) -> Schedule:
    """Event-driven greedy list schedule: start whatever may start, advance to the next finish."""
    n = len(graph)
    admission = Admission(limits, demands, priorities, graph.bottom_levels(weights))
    readiness = Readiness(graph)
    readiness.prepare()
    start = [0.0] * n
    finish = [0.0] * n
    running: list[tuple[float, int]] = []
    now = 0.0
    while True:
        for task in readiness.get_ready():
            admission.add_ready(task)
        for task in admission.take():
            start[task] = now
            finish[task] = now + weights[task]
            heapq.heappush(running, (finish[task], task))
        if not running:
            break
        now = running[0][0]
        while running and running[0][0] <= now:
            _, task = heapq.heappop(running)
            admission.finish(task)
            readiness.done(task)
    return Schedule(tuple(start), tuple(finish))


def make_plan(
    workflow: Workflow,
    max_parallel: int | None = None,
    durations: Mapping[str, float] | None = None,
) -> Plan:
    weights = task_weights(workflow, durations)
    names = tuple(t.name for t in workflow.tasks)
    unit = "s" if durations else "units"
    prechecked = tuple(i for i, t in enumerate(workflow.tasks) if t.verify_first)
    if workflow.mode == "sequential":
        path, note = happy_path(workflow)
        total = sum(weights[i] for i in path)
        return Plan(
            mode="sequential",
            names=names,
            order=tuple(path),
            waves=tuple((i,) for i in path),
            critical_path=tuple(path),
            critical_length=total,
            sequential=total,
            parallel=total,
            lower_bound=total,
            slots=1,
            unit=unit,
            notes=(note,) if note else (),
            prechecked=prechecked,
        )
    graph = workflow.graph
    limits, notes = limits_for(workflow, max_parallel)
    agents = workflow.settings.max_parallel_agents
    if agents is not None and agents < limits.slots:
        # The simulation sees each task as one agent phase, so the agent limit caps it too.
        notes.append(f"max_parallel_agents = {agents} limits the estimate to {agents} at once")
        limits = Limits(slots=agents, cpu=limits.cpu, memory=limits.memory)
    schedule = simulate(
        graph,
        weights,
        limits,
        demands_for(workflow, limits),
        [t.priority for t in workflow.tasks],
    )
    critical = graph.critical_path(weights)
    work = sum(weights)
    return Plan(
        mode="graph",
        names=names,
        order=graph.order,
        waves=tuple(tuple(w) for w in graph.waves()),
        critical_path=critical.tasks,
        critical_length=critical.length,
        sequential=work,
        parallel=schedule.makespan,
        lower_bound=max(critical.length, work / limits.slots),
        slots=limits.slots,
        unit=unit,
        notes=tuple(notes),
        prechecked=prechecked,
    )


def happy_path(
    workflow: Workflow, start: int = 0, only_start: bool = False
) -> tuple[list[int], str | None]:
    """Sequential mode: the tasks that run, in order, when every task passes first time, from
    `start` (`only_start`: `--task`, where "next" after the named task ends the run)."""
    tasks = workflow.tasks
    path: list[int] = []
    seen: set[int] = set()
    current: int | None = start if tasks else None
    while current is not None:
        if current in seen:
            again = f"`{tasks[current].name}` runs again after `{tasks[path[-1]].name}`"
            if not workflow.settings.allow_infinite_loops:
                return path, (f"{again}: without allow_infinite_loops the run stops there, failed")
            return path, (
                f"{again}: the path loops until a task fails, stops, or max_iterations is reached"
            )
        seen.add(current)
        path.append(current)
        target = tasks[current].on_success
        if target == "stop":
            current = None
        elif target == "next":
            current = current + 1 if current + 1 < len(tasks) and not only_start else None
        elif target != "repeat":  # repeat: the same task again
            current = workflow.index[target]
    return path, None
