"""Which ready task starts next: the scheduling policy, free of time and I/O, and what it is
given: the run's limits, each task's demand and duration estimate.

Shared by the planner's simulation and the real scheduler, so an estimate follows the same
rules as a run. Ready tasks are ordered by (priority desc, remaining critical path desc, file
order). A task starts when a slot is free and its cpu/memory demand fits; a task that does not
fit is passed over for one that does (no slot idles while something could run). An exclusive
task that heads the queue stops anything new from starting until it has run alone.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from .config import Workflow


@dataclass(frozen=True, slots=True)
class Demand:
    cpu: float = 0.0
    memory: float = 0.0
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    slots: int
    cpu: float
    memory: float

    @staticmethod
    def machine_cpu() -> float:
        return float(os.cpu_count() or 1)

    @staticmethod
    def machine_memory_mb() -> float:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
        except (
            ValueError,
            OSError,
            AttributeError,
        ):  # not POSIX: no budget rather than a wrong one
            return float("inf")


class Admission:
    """Tracks running tasks' usage and hands out the ready tasks that may start now."""

    def __init__(
        self,
        limits: Limits,
        demands: Sequence[Demand],
        priorities: Sequence[int],
        remaining: Sequence[float],
    ) -> None:
        self.limits = limits
        self._demands = demands
        self._keys = [
            (-p, -r, i) for i, (p, r) in enumerate(zip(priorities, remaining, strict=True))
        ]
        self._ready: list[tuple[int, float, int]] = []
        self.running: set[int] = set()
        self._cpu = 0.0
        self._memory = 0.0
        self._exclusive_running = False

    def __len__(self) -> int:
        """Number of ready tasks not yet started."""
        return len(self._ready)

    def add_ready(self, task: int) -> None:
        heapq.heappush(self._ready, self._keys[task])

    def take(self, at_most: int | None = None, unmetered: Set[int] = frozenset()) -> list[int]:
        """Pop every ready task that may start now, marking it running: at most `at_most` of
        them, not counting those in `unmetered` (a task that starts without an agent session
        may take a slot where the agent limit leaves no room; one that needs a session waits)."""
        started: list[int] = []
        metered = 0
        passed_over: list[tuple[int, float, int]] = []
        room = self.limits.slots if at_most is None else min(self.limits.slots, at_most)
        while self._ready and not self._exclusive_running:
            if len(self.running) >= self.limits.slots:
                break
            key = self._ready[0]
            task = key[2]
            if task not in unmetered and metered >= room:
                if not unmetered:
                    break  # nothing else could start: the common case ends here
                heapq.heappop(self._ready)
                passed_over.append(key)
                continue
            demand = self._demands[task]
            if demand.exclusive:
                if self.running or passed_over:
                    break  # it heads the queue: wait for the running tasks to drain
                heapq.heappop(self._ready)
                self._start(task, demand)
                started.append(task)
                break
            heapq.heappop(self._ready)
            if self._fits(demand):
                self._start(task, demand)
                started.append(task)
                metered += task not in unmetered
            else:
                passed_over.append(key)
        for key in passed_over:
            heapq.heappush(self._ready, key)
        return started

    def finish(self, task: int) -> None:
        self.running.remove(task)
        demand = self._demands[task]
        self._cpu -= demand.cpu
        self._memory -= demand.memory
        if demand.exclusive:
            self._exclusive_running = False

    def _fits(self, demand: Demand) -> bool:
        if not self.running:
            return True  # demands are clamped to the budget, but never let rounding block a task
        eps = 1e-9
        return (
            self._cpu + demand.cpu <= self.limits.cpu + eps
            and self._memory + demand.memory <= self.limits.memory + eps
        )

    def _start(self, task: int, demand: Demand) -> None:
        self.running.add(task)
        self._cpu += demand.cpu
        self._memory += demand.memory
        self._exclusive_running = demand.exclusive


def task_weights(workflow: Workflow, durations: Mapping[str, float] | None = None) -> list[float]:
    """Duration estimate per task: history where known; unknown ones get the known mean (or 1)."""
    known = {n: d for n, d in (durations or {}).items() if d > 0}
    fallback = sum(known.values()) / len(known) if known else 1.0
    return [known.get(t.name, fallback) for t in workflow.tasks]


def limits_for(workflow: Workflow, max_parallel: int | None = None) -> tuple[Limits, list[str]]:
    """The run's limits and notes on demands clamped to them."""
    s = workflow.settings
    slots = 1 if not s.enable_parallel else (max_parallel or s.max_parallel_tasks)
    limits = Limits(
        slots=slots,
        cpu=s.cpu_budget or Limits.machine_cpu(),
        memory=s.memory_budget_mb or Limits.machine_memory_mb(),
    )
    notes = []
    for t in workflow.tasks:
        for what, need, budget in (
            ("cpu_required", t.cpu_required, limits.cpu),
            ("memory_required", t.memory_required, limits.memory),
        ):
            if need > budget:
                notes.append(
                    f"task `{t.name}`: {what} = {need:g} exceeds the budget of {budget:g}; "
                    "it is clamped to the budget and runs alone"
                )
    return limits, notes


def demands_for(workflow: Workflow, limits: Limits) -> list[Demand]:
    """Each task's demand, clamped to the limits (`limits_for` notes where it was)."""
    none = Demand()  # most tasks ask for nothing: share one object
    return [
        Demand(
            cpu=min(t.cpu_required, limits.cpu),
            memory=min(t.memory_required, limits.memory),
            exclusive=t.exclusive,
        )
        if t.cpu_required or t.memory_required or t.exclusive
        else none
        for t in workflow.tasks
    ]
