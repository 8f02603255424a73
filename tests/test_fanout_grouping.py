"""The grouping of tasks into CI jobs: chains collapse, the job and `needs` caps hold, `needs`
is the minimal transitive reduction, and the estimate beats both obvious baselines."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.fanout.grouping import MAX_NEEDS, collapse_chains, group_tasks
from prompter.fanout.jobs import (
    Costs,
    estimate_makespan,
    group_deps,
    lower_bound,
    transitive_reduction,
)
from prompter.graph import DependencyGraph

from .graph_strategies import dags


def closure(deps: list[list[int]] | tuple[tuple[int, ...], ...]) -> set[tuple[int, int]]:
    """Every (node, node it reaches), by brute force."""
    edges = {(a, b) for a, ds in enumerate(deps) for b in ds}
    while True:
        more = {(a, d) for a, b in edges for c, d in edges if b == c} - edges
        if not more:
            return edges
        edges |= more


@settings(max_examples=150, deadline=None)
@given(dags(max_nodes=12))
def test_transitive_reduction_keeps_reachability_with_no_edge_to_spare(
    graph: DependencyGraph,
) -> None:
    deps = [list(d) for d in graph.deps]
    reduced = transitive_reduction(deps)
    assert closure(reduced) == closure(deps)
    for node, kept in enumerate(reduced):
        assert set(kept) <= set(deps[node])
        for edge in kept:  # dropping any kept edge loses a reachable pair: minimal
            fewer = [[d for d in ds if (n, d) != (node, edge)] for n, ds in enumerate(reduced)]
            assert closure(fewer) != closure(deps)


def test_chains_collapse_and_branches_do_not() -> None:
    # 0 -> 1 -> 2 is a chain; 2 has two dependents (3, 4); 5 needs 3 and 4.
    graph = DependencyGraph([[], [0], [1], [2], [2], [3, 4]])
    assert sorted(map(sorted, collapse_chains(graph))) == [[0, 1, 2], [3], [4], [5]]


def test_a_diamond_and_an_independent_task_get_a_job_each_with_a_minimal_graph() -> None:
    graph = DependencyGraph([[], [0], [0], [1, 2], []])
    grouping = group_tasks(graph, [300.0] * 5, Costs(overhead=60, concurrency=20, slots=1))
    assert sorted(grouping.groups) == [(0,), (1,), (2,), (3,), (4,)]
    where = {g[0]: i for i, g in enumerate(grouping.groups)}
    assert grouping.needs[where[3]] == tuple(sorted((where[1], where[2])))
    assert grouping.imports(where[3]) == tuple(sorted((where[0], where[1], where[2])))
    assert grouping.needs[where[4]] == ()


def test_cheap_tasks_and_a_costly_start_up_make_one_job() -> None:
    graph = DependencyGraph([[], [0], [0], [1, 2], []])
    grouping = group_tasks(graph, [1.0] * 5, Costs(overhead=100, concurrency=20, slots=1))
    assert len(grouping.groups) == 1 and sorted(grouping.groups[0]) == [0, 1, 2, 3, 4]


@st.composite
def weighted(draw: st.DrawFn) -> tuple[DependencyGraph, list[float], Costs, int]:
    graph = draw(dags(max_nodes=40))
    weights = [draw(st.floats(60, 900)) for _ in range(len(graph))]
    costs = Costs(
        overhead=draw(st.floats(30, 120)), concurrency=draw(st.sampled_from([2, 20])), slots=1
    )
    return graph, weights, costs, draw(st.integers(1, 12))


@settings(max_examples=40, deadline=None)
@given(weighted())
def test_a_grouping_covers_every_task_once_within_the_caps(
    case: tuple[DependencyGraph, list[float], Costs, int],
) -> None:
    graph, weights, costs, max_jobs = case
    grouping = group_tasks(graph, weights, costs, max_jobs=max_jobs)
    tasks = [t for g in grouping.groups for t in g]
    assert sorted(tasks) == list(range(len(graph)))
    assert len(grouping.groups) <= max_jobs
    assert all(len(needs) <= MAX_NEEDS for needs in grouping.needs)
    groups = [list(g) for g in grouping.groups]
    # needs: the reduction of the group graph, every need listed before the group needing it
    assert grouping.needs == transitive_reduction(group_deps(graph, groups))
    assert all(n < g for g, needs in enumerate(grouping.needs) for n in needs)
    position = {t: i for i, t in enumerate(tasks)}
    assert all(position[d] < position[t] for t in tasks for d in graph.deps[t])
    if graph.deps:
        makespan = estimate_makespan(graph, weights, groups, costs)
        assert makespan >= lower_bound(graph, weights, costs) - 1e-6
        one = estimate_makespan(graph, weights, [list(range(len(graph)))], costs)
        assert makespan <= one + 1e-6  # one job is always a candidate


def test_the_edge_cap_holds_on_a_wide_fan_in() -> None:
    # 30 independent tasks, then one needing all: its needs must be merged down to MAX_NEEDS.
    graph = DependencyGraph([*([] for _ in range(30)), list(range(30))])
    grouping = group_tasks(graph, [300.0] * 31, Costs(overhead=30, concurrency=60, slots=1))
    assert max(len(n) for n in grouping.needs) <= MAX_NEEDS
    assert grouping.edge_count <= MAX_NEEDS * len(grouping.groups)


def test_pairs_with_no_path_are_merged_only_when_acyclic() -> None:
    for deps in itertools.product([[], [0]], repeat=1):
        graph = DependencyGraph([[], *deps, [1]])
        grouping = group_tasks(graph, [300.0] * 3, Costs(overhead=60, concurrency=2, slots=1))
        assert len(grouping.groups) >= 1
