"""DependencyGraph, checked against brute force on random graphs (listed in random file order)."""

from __future__ import annotations

import random
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.graph import MAX_CYCLES_REPORTED, CycleError, DependencyGraph

from .graph_strategies import dags, digraphs


def reachable(graph: DependencyGraph, start: int) -> set[int]:
    """Tasks reachable from `start` along dependency edges (brute force)."""
    seen: set[int] = set()
    stack = [start]
    while stack:
        for dep in graph.deps[stack.pop()]:
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


@given(dags())
def test_order_puts_every_dependency_first(graph: DependencyGraph) -> None:
    order = graph.order
    assert sorted(order) == list(range(len(graph)))
    position = {task: i for i, task in enumerate(order)}
    for task, deps in enumerate(graph.deps):
        assert all(position[d] < position[task] for d in deps)


@given(dags())
def test_levels_and_waves(graph: DependencyGraph) -> None:
    for task, deps in enumerate(graph.deps):
        expected = 1 + max((graph.levels[d] for d in deps), default=-1)
        assert graph.levels[task] == expected
    waves = graph.waves()
    assert sorted(t for w in waves for t in w) == list(range(len(graph)))
    assert all(w for w in waves) and all(w == sorted(w) for w in waves)


@given(dags())
def test_descendants_and_ancestors_match_brute_force(graph: DependencyGraph) -> None:
    for task in range(len(graph)):
        assert graph.ancestors([task]) == reachable(graph, task)
        assert graph.descendants([task]) == {
            t for t in range(len(graph)) if task in reachable(graph, t)
        }


@given(dags(), st.randoms())
def test_critical_path_and_bottom_levels_match_brute_force(
    graph: DependencyGraph, rnd: random.Random
) -> None:
    weights = [rnd.choice([0.5, 1.0, 2.0, 7.0]) for _ in range(len(graph))]

    @cache
    def longest_ending_at(task: int) -> float:
        return weights[task] + max((longest_ending_at(d) for d in graph.deps[task]), default=0.0)

    @cache
    def longest_starting_at(task: int) -> float:
        return weights[task] + max(
            (longest_starting_at(c) for c in graph.dependents[task]), default=0.0
        )

    cp = graph.critical_path(weights)
    best = max((longest_ending_at(t) for t in range(len(graph))), default=0.0)
    assert cp.length == pytest.approx(best)
    assert sum(weights[t] for t in cp.tasks) == pytest.approx(best)
    for a, b in zip(cp.tasks, cp.tasks[1:], strict=False):
        assert a in graph.deps[b]  # a real chain
    assert graph.bottom_levels(weights) == pytest.approx(
        [longest_starting_at(t) for t in range(len(graph))]
    )


@settings(max_examples=300)
@given(digraphs())
def test_cycles_are_real_and_cover_every_cyclic_edge(graph: DependencyGraph) -> None:
    cycles = graph.cycles()
    for cycle in cycles:
        assert cycle[0] == min(cycle)  # starts at the task listed first
        for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
            assert b in graph.deps[a]
        assert len(set(cycle)) == len(cycle)  # elementary
    covered = {(a, b) for c in cycles for a, b in zip(c, c[1:] + c[:1], strict=True)}
    on_cycle = {
        (a, b) for a in range(len(graph)) for b in graph.deps[a] if a in reachable(graph, b)
    }
    if len(cycles) < MAX_CYCLES_REPORTED:
        assert covered == on_cycle
    try:
        graph.order  # noqa: B018
    except CycleError:
        assert cycles
    else:
        assert not cycles


@given(digraphs())
def test_reachable_cycle_is_reachable_and_real(graph: DependencyGraph) -> None:
    cycle = graph.reachable_cycle(0)
    has_cycle = any(t in reachable(graph, t) for t in reachable(graph, 0) | {0})
    assert (cycle is not None) == has_cycle
    if cycle:
        assert cycle[0] == 0 or cycle[0] in reachable(graph, 0)
        for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
            assert b in graph.deps[a]


def test_order_does_not_depend_on_file_order() -> None:
    # Prompter 0.10 built a wrong order when a task was listed before its dependency.
    graph = DependencyGraph([[1], [2], []])  # 0 needs 1 needs 2
    assert graph.order == (2, 1, 0)
    assert graph.waves() == [[2], [1], [0]]


def test_linear_time_on_a_long_chain() -> None:
    n = 200_000  # recursion or quadratic work would fail or crawl here
    graph = DependencyGraph([[i - 1] if i else [] for i in range(n)])
    assert graph.order[-1] == n - 1
    assert graph.critical_path([1.0] * n).length == n
    assert graph.cycles() == []
    assert len(graph.descendants([0])) == n - 1
