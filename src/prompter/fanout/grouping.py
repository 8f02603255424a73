"""Which tasks run together in one CI job: `group_tasks`.

Every job pays a start-up (`jobs.Costs.overhead`) and starts only when each job it needs has
finished, so one job per task wastes start-ups and one job for everything wastes the other
runners. The grouping is built in steps, each kept only when the estimate (`jobs.simulate_jobs`)
says it helps:

1. Chains collapse: a task with one dependency, whose dependency has no other dependent, joins
   that dependency's group (nothing could run between them anyway).
2. Pairs of groups are merged while the estimate does not get worse (the pairs with the least
   work first, within a budget of simulations).
3. Merges that cost least follow until there are at most `max_jobs` groups and no group needs
   more than `MAX_NEEDS` others.

Steps 2 and 3 start from the chains, from one job per task and from one job for everything;
the best result by the estimate is kept, so the grouping is never estimated slower than one
job per task or one job for everything when those fit the caps.

The `needs` edges of the group DAG are its transitive reduction. Their number is capped because
GitHub fails big job graphs at start-up without an error: a workflow of ~160 jobs and ~4,700
`needs` edges never started (cdklabs/cdk-pipelines-github#1456). A group job needs at most
MAX_NEEDS others (two needs of one job never reach each other after the reduction, so merging
them is always possible and lowers the count), and the final merge job needs every group job:
at most (MAX_NEEDS + 1) * max_jobs edges in all, and at most MAX_JOBS jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..graph import DependencyGraph
from .jobs import Costs, estimate_makespan, group_deps, reachability, transitive_reduction

MAX_NEEDS = 4  # `needs` of one group job
DEFAULT_MAX_JOBS = 50
MAX_JOBS = 150  # below the ~160 jobs of cdklabs/cdk-pipelines-github#1456
# Simulations step 2 may spend: merging stops there; each merge of step 3 picks the best of
# the _FIT_TRIES smallest pairs.
_SIMULATIONS = 1000
_FIT_TRIES = 20


@dataclass(frozen=True)
class Grouping:
    """Groups of task indices (each in a topological order of the tasks; the groups in a
    topological order of the group DAG) and the `needs` between them, transitively reduced."""

    groups: tuple[tuple[int, ...], ...]
    needs: tuple[tuple[int, ...], ...]

    @property
    def edge_count(self) -> int:
        return sum(len(n) for n in self.needs)

    def imports(self, group: int) -> tuple[int, ...]:
        """Every group `group` depends on, directly or not, in the groups' order."""
        reach = reachability(self.needs, range(len(self.groups)))[group]
        return tuple(g for g in range(len(self.groups)) if reach >> g & 1)


def group_tasks(
    graph: DependencyGraph,
    weights: Sequence[float],
    costs: Costs,
    max_jobs: int = DEFAULT_MAX_JOBS,
    max_needs: int = MAX_NEEDS,
) -> Grouping:
    """The groups of tasks for CI jobs (see the module's docstring)."""
    if not len(graph):
        return Grouping(groups=(), needs=())
    starts = [collapse_chains(graph), [[t] for t in graph.order], [list(graph.order)]]
    candidates = [
        fit(
            graph,
            weights,
            costs,
            improve(graph, weights, costs, start, max_needs),
            max_jobs,
            max_needs,
        )
        for start in starts
    ]
    best = min(candidates, key=lambda g: estimate_makespan(graph, weights, g, costs))
    return finish(graph, best)


def collapse_chains(graph: DependencyGraph) -> list[list[int]]:
    """Step 1: one group per maximal chain, in a topological order."""
    head = list(range(len(graph)))
    groups: dict[int, list[int]] = {}
    for task in graph.order:
        deps = graph.deps[task]
        if len(deps) == 1 and len(graph.dependents[deps[0]]) == 1:
            head[task] = head[deps[0]]
        groups.setdefault(head[task], []).append(task)
    return list(groups.values())


def _merged(groups: list[list[int]], a: int, b: int) -> list[list[int]]:
    out = [g for i, g in enumerate(groups) if i not in (a, b)]
    out.append(groups[a] + groups[b])
    return out


def _mergeable(graph: DependencyGraph, groups: list[list[int]]) -> list[tuple[int, int]]:
    """Pairs of groups whose merge keeps the group graph acyclic: a group and one it needs
    directly with no other path between them, and two groups with no path between them that
    share a need or a dependent (siblings)."""
    deps = group_deps(graph, groups)
    reduced = transitive_reduction(deps)
    order = DependencyGraph([list(d) for d in reduced]).order
    reach = reachability(reduced, order)
    pairs = [(a, b) for b, needs in enumerate(reduced) for a in needs]
    dependents: list[list[int]] = [[] for _ in groups]
    for b, needs in enumerate(reduced):
        for a in needs:
            dependents[a].append(b)
    for family in (*reduced, *dependents):
        for i, a in enumerate(family):
            for b in family[i + 1 :]:
                if not (reach[a] >> b & 1 or reach[b] >> a & 1):
                    pairs.append((a, b))
    return pairs


def _by_size(
    groups: list[list[int]], weights: Sequence[float], pairs: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Merging little work costs least: the pairs with the least work together first."""
    work = [sum(weights[t] for t in g) for g in groups]
    return sorted(set(pairs), key=lambda p: (work[p[0]] + work[p[1]], p))


def _unrelated(graph: DependencyGraph, groups: list[list[int]]) -> list[tuple[int, int]]:
    """Pairs of groups with no path between them: merging them is always acyclic."""
    deps = group_deps(graph, groups)
    reach = reachability(deps, DependencyGraph([sorted(d) for d in deps]).order)
    return [
        (a, b)
        for a in range(len(groups))
        for b in range(a + 1, len(groups))
        if not (reach[a] >> b & 1 or reach[b] >> a & 1)
    ]


def _crowding(graph: DependencyGraph, groups: list[list[int]]) -> int:
    """The most `needs` of one group."""
    return max(map(len, transitive_reduction(group_deps(graph, groups))), default=0)


def improve(
    graph: DependencyGraph,
    weights: Sequence[float],
    costs: Costs,
    groups: list[list[int]],
    max_needs: int,
) -> list[list[int]]:
    """Step 2: merge a pair while that makes the estimate no worse and leaves no group with
    more than `max_needs` needs that had fewer (the smallest pairs tried first, the first such
    merge taken), within a budget of simulations."""
    now = estimate_makespan(graph, weights, groups, costs)
    crowding = _crowding(graph, groups)
    budget = _SIMULATIONS
    while budget > 0:
        for a, b in _by_size(groups, weights, _mergeable(graph, groups)):
            budget -= 1
            merged = _merged(groups, a, b)
            makespan = estimate_makespan(graph, weights, merged, costs)
            if makespan <= now + 1e-9 and _crowding(graph, merged) <= max(crowding, max_needs):
                groups, now = merged, makespan
                crowding = _crowding(graph, groups)
                break
            if budget <= 0:
                break
        else:
            break  # no merge helps
    return groups


def fit(
    graph: DependencyGraph,
    weights: Sequence[float],
    costs: Costs,
    groups: list[list[int]],
    max_jobs: int,
    max_needs: int,
) -> list[list[int]]:
    """Step 3: merge, the merge that costs least of the smallest few first, until at most
    `max_jobs` groups and none needs more than `max_needs` others."""
    while True:
        reduced = transitive_reduction(group_deps(graph, groups))
        crowded = [g for g, needs in enumerate(reduced) if len(needs) > max_needs]
        if len(groups) <= max_jobs and not crowded:
            return groups
        if crowded:  # two needs of a crowded group: never on one path (see the docstring)
            pairs = [
                (a, b)
                for g in crowded
                for i, a in enumerate(reduced[g])
                for b in reduced[g][i + 1 :]
            ]
        else:
            pairs = _mergeable(graph, groups) or _unrelated(graph, groups)
        groups = min(
            (_merged(groups, a, b) for a, b in _by_size(groups, weights, pairs)[:_FIT_TRIES]),
            key=lambda merged: estimate_makespan(graph, weights, merged, costs),
        )


def finish(graph: DependencyGraph, groups: list[list[int]]) -> Grouping:
    """The groups in a topological order (ties: the first task's place in the file), each
    group's tasks in the graph's order, and the reduced `needs`."""
    position = {t: i for i, t in enumerate(graph.order)}
    inner = [sorted(g, key=position.__getitem__) for g in groups]
    deps = group_deps(graph, inner)
    dag = DependencyGraph([sorted(d) for d in deps])
    first = [min(g) for g in inner]
    # Readiness hands out ties in file order of the groups: sort the groups by first task first.
    by_first = sorted(range(len(inner)), key=first.__getitem__)
    renumber = {old: new for new, old in enumerate(by_first)}
    dag = DependencyGraph([sorted(renumber[d] for d in deps[old]) for old in by_first])
    order = dag.order
    final = {old: new for new, old in enumerate(order)}
    ordered = [inner[by_first[g]] for g in order]
    reduced = transitive_reduction([[final[d] for d in dag.deps[g]] for g in order])
    return Grouping(groups=tuple(tuple(g) for g in ordered), needs=reduced)
