"""Groups of tasks as jobs: the DAG between groups, its transitive reduction, and a simulated
makespan with a start-up cost per job and a cap on the jobs that run at once.

A group is a job of a CI workflow: it starts once every job it needs has finished, pays a fixed
start-up (a runner assigned, the checkout, the action's image or venv), then runs its tasks with
the local parallelism of one machine. Pure: no I/O, nothing of the run.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..admission import Demand, Limits
from ..graph import DependencyGraph
from ..planning import simulate

# Defaults of the estimate. What a job costs before its first task runs, with the released
# image (bench/bench_job_startup.py under act: ~10 s for the job, checkout and the action's
# container), plus what act cannot show: ~20 s for a hosted runner's allocation and "Set up job"
# and ~15 s to pull the ~890 MB image from GHCR. An agent task that builds and tests a project
# runs for minutes. Without measured durations each task counts DEFAULT_TASK_S.
JOB_OVERHEAD_S = 45.0
DEFAULT_TASK_S = 300.0
# Jobs at once: GitHub Free's cap for hosted runners per account (Team 60, Enterprise 500).
DEFAULT_CONCURRENCY = 20


@dataclass(frozen=True)
class Costs:
    """What the estimate charges: start-up per job, jobs at once, tasks at once inside a job."""

    overhead: float = JOB_OVERHEAD_S
    concurrency: int = DEFAULT_CONCURRENCY
    slots: int = 1


def group_deps(graph: DependencyGraph, groups: Sequence[Collection[int]]) -> list[set[int]]:
    """For each group, the other groups holding a dependency of one of its tasks."""
    owner = [0] * len(graph)
    for g, tasks in enumerate(groups):
        for task in tasks:
            owner[task] = g
    deps: list[set[int]] = [set() for _ in groups]
    for g, tasks in enumerate(groups):
        for task in tasks:
            for dep in graph.deps[task]:
                if owner[dep] != g:
                    deps[g].add(owner[dep])
    return deps


def reachability(deps: Sequence[Collection[int]], order: Sequence[int]) -> list[int]:
    """For each node, the nodes it reaches through `deps` (itself excluded), as a bit set.

    `order` is a topological order, dependencies first."""
    reach = [0] * len(deps)
    for node in order:
        bits = 0
        for dep in deps[node]:
            bits |= reach[dep] | (1 << dep)
        reach[node] = bits
    return reach


def transitive_reduction(deps: Sequence[Collection[int]]) -> tuple[tuple[int, ...], ...]:
    """The fewest edges with the same reachability (unique for a DAG): an edge stays unless
    another dependency of the same node reaches its target. Each node's edges come sorted."""
    order = DependencyGraph([sorted(d) for d in deps]).order
    reach = reachability(deps, order)
    reduced = []
    for node_deps in deps:
        through_others = 0
        for dep in node_deps:
            through_others |= reach[dep]
        reduced.append(tuple(sorted(d for d in node_deps if not through_others >> d & 1)))
    return tuple(reduced)


def job_duration(
    graph: DependencyGraph, weights: Sequence[float], tasks: Sequence[int], slots: int
) -> float:
    """How long a job's tasks take on one machine with `slots` tasks at once (greedy list
    schedule by remaining critical path; every dependency outside the job is done already)."""
    if slots <= 1 or len(tasks) <= 1:
        return sum(weights[t] for t in tasks)
    local = {t: i for i, t in enumerate(tasks)}
    sub = DependencyGraph([[local[d] for d in graph.deps[t] if d in local] for t in tasks])
    none = Demand()
    schedule = simulate(
        sub,
        [weights[t] for t in tasks],
        Limits(slots=slots, cpu=float("inf"), memory=float("inf")),
        [none] * len(tasks),
        [0] * len(tasks),
    )
    return schedule.makespan


@dataclass(frozen=True)
class JobSchedule:
    """A simulated CI run: when each job starts (queued, its needs done) and finishes."""

    start: tuple[float, ...]
    finish: tuple[float, ...]

    @property
    def makespan(self) -> float:
        return max(self.finish, default=0.0)


def simulate_jobs(
    graph: DependencyGraph,
    weights: Sequence[float],
    groups: Sequence[Sequence[int]],
    costs: Costs,
) -> JobSchedule:
    """The jobs of `groups` run as CI runs them: a job waits for every job it needs, then for a
    free runner (at most `costs.concurrency` at once, the job with the most work behind it
    first), then takes `costs.overhead` plus its tasks' time."""
    deps = group_deps(graph, groups)
    lengths = [costs.overhead + job_duration(graph, weights, g, costs.slots) for g in groups]
    none = Demand()
    schedule = simulate(
        DependencyGraph([sorted(d) for d in deps]),
        lengths,
        Limits(slots=costs.concurrency, cpu=float("inf"), memory=float("inf")),
        [none] * len(groups),
        [0] * len(groups),
    )
    return JobSchedule(start=schedule.start, finish=schedule.finish)


def estimate_makespan(
    graph: DependencyGraph,
    weights: Sequence[float],
    groups: Sequence[Sequence[int]],
    costs: Costs,
) -> float:
    """The end of the last job of `simulate_jobs` (0 without tasks)."""
    return simulate_jobs(graph, weights, groups, costs).makespan


def lower_bound(graph: DependencyGraph, weights: Sequence[float], costs: Costs) -> float:
    """No grouping finishes sooner: the critical path after one job's start-up, or all the work
    spread over every slot of every runner at once."""
    if not len(graph):
        return 0.0
    critical = graph.critical_path(weights).length + costs.overhead
    return max(critical, sum(weights) / (costs.concurrency * costs.slots))
