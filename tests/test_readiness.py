"""Readiness: graphlib.TopologicalSorter's protocol over a DependencyGraph, plus `discard`.

Table tests for each method, then the same calls made on `graphlib.TopologicalSorter` and on
`Readiness` over random DAGs, and `discard` checked against brute force.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.graph import CycleError, DependencyGraph, Readiness

#  0 -> 1 -> 3     (an arrow points at a dependent: 1 and 2 depend on 0, 3 on 1 and 2)
#  0 -> 2 -> 3 -> 4
DIAMOND = DependencyGraph([[], [0], [0], [1, 2], [3]])


def ready(deps: list[list[int]], tasks: list[int] | None = None) -> Readiness:
    readiness = Readiness(DependencyGraph(deps), tasks)
    readiness.prepare()
    return readiness


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 25) -> DependencyGraph:
    """A random DAG in shuffled file order, so a dependency is often listed after its task."""
    n = draw(st.integers(0, max_nodes))
    rank = draw(st.permutations(range(n)))
    by_rank = sorted(range(n), key=rank.__getitem__)
    return DependencyGraph(
        [
            draw(st.lists(st.sampled_from(by_rank[: rank[t]]), max_size=4, unique=True))
            if rank[t]
            else []
            for t in range(n)
        ]
    )


# -- the protocol --------------------------------------------------------------------------------


def test_tasks_become_ready_as_their_dependencies_are_done() -> None:
    readiness = Readiness(DIAMOND)
    readiness.prepare()
    assert readiness.get_ready() == [0]
    assert readiness.get_ready() == []  # handed out once
    readiness.done(0)
    assert readiness.get_ready() == [1, 2]
    readiness.done(2)
    assert readiness.get_ready() == []  # 3 still waits on 1
    readiness.done(1)
    assert readiness.get_ready() == [3]
    readiness.done(3)
    assert readiness.get_ready() == [4]
    assert readiness.is_active()
    readiness.done(4)
    assert not readiness.is_active()


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        ([], []),
        ([[]], [0]),
        ([[1], []], [1, 0]),  # a dependency listed after its task
        ([[], [], [0, 1]], [0, 1, 2]),
        ([[2], [2], []], [2, 0, 1]),  # ties in file order, wave by wave
        ([[1], [2], [], [2]], [2, 1, 3, 0]),  # released in the order `done` reached them
    ],
)
def test_static_order(deps: list[list[int]], expected: list[int]) -> None:
    assert Readiness(DependencyGraph(deps)).static_order() == expected
    assert DependencyGraph(deps).order == tuple(expected)


@pytest.mark.parametrize("deps", [[[0]], [[1], [0]], [[], [2], [1]]])
def test_a_cycle_is_never_ready(deps: list[list[int]]) -> None:
    with pytest.raises(CycleError):
        Readiness(DependencyGraph(deps)).static_order()
    readiness = ready(deps)
    while batch := readiness.get_ready():
        readiness.done(*batch)
    assert not readiness.is_active()


def test_only_the_tasks_given_are_tracked() -> None:
    # 1 and 4 are outside: 3 waits on 2 only, 2 is ready at once (0 is outside too).
    readiness = ready([[], [0], [0], [1, 2], [3]], tasks=[2, 3])
    assert readiness.get_ready() == [2]
    readiness.done(2)
    assert readiness.get_ready() == [3]
    readiness.done(3)
    assert readiness.get_ready() == []  # 4 is not tracked
    assert not readiness.is_active()
    # 4 waits on 3 only, which is not tracked: ready at once, like 0.
    assert Readiness(DIAMOND, [4, 1, 0]).static_order() == [0, 4, 1]


def test_is_active_until_every_handed_out_task_is_finished() -> None:
    readiness = ready([[], []])
    assert readiness.is_active()  # ready, not yet handed out
    assert readiness.get_ready() == [0, 1]
    readiness.done(0)
    assert readiness.is_active()
    assert readiness.discard(1) == []
    assert not readiness.is_active()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (lambda r: r.get_ready(), "prepare"),
        (lambda r: (r.prepare(), r.prepare()), "once"),
        (lambda r: (r.prepare(), r.done(0)), "not handed out"),
        (lambda r: (r.prepare(), r.get_ready(), r.done(0), r.done(0)), "finished"),
        (lambda r: (r.prepare(), r.get_ready(), r.done(1)), "not handed out"),
        (lambda r: (r.prepare(), r.discard(0)), "not handed out"),
        (lambda r: (r.prepare(), r.get_ready(), r.done(0), r.discard(0)), "finished"),
    ],
)
def test_misuse_is_refused(steps: Callable[[Readiness], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        steps(Readiness(DIAMOND))


# -- discard -------------------------------------------------------------------------------------


def test_discard_removes_what_waits_on_the_task() -> None:
    readiness = ready([[], [0], [0], [1, 2], [3]])
    readiness.get_ready()
    readiness.done(0)
    assert readiness.get_ready() == [1, 2]
    assert readiness.discard(1) == [3, 4]
    readiness.done(2)
    assert readiness.get_ready() == []  # 3 waited on 1 too
    assert not readiness.is_active()


def test_discard_returns_each_task_once() -> None:
    readiness = ready([[], [], [0, 1], [2]])
    assert readiness.get_ready() == [0, 1]
    assert readiness.discard(0) == [2, 3]
    assert readiness.discard(1) == []


def test_discard_leaves_handed_out_tasks_but_not_what_waits_on_them() -> None:
    # 2 depends on 0 through 1, which is not tracked: 2 is ready at once; 3 waits on 2.
    readiness = ready([[], [0], [1], [2]], tasks=[0, 2, 3])
    assert readiness.get_ready() == [0, 2]
    assert readiness.discard(0) == [3]
    readiness.done(2)  # still handed out, so it may finish
    assert readiness.get_ready() == []
    assert not readiness.is_active()


# -- properties ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(graph=dags(), data=st.data())
def test_same_steps_as_graphlib(graph: DependencyGraph, data: st.DataObject) -> None:
    """Finishing handed-out tasks in any order and batches, both hand out the same tasks."""
    theirs: graphlib.TopologicalSorter[int] = graphlib.TopologicalSorter()
    for task, deps in enumerate(graph.deps):
        theirs.add(task, *deps)
    theirs.prepare()
    ours = Readiness(graph)
    ours.prepare()
    out: list[int] = []
    while theirs.is_active():
        assert ours.is_active()
        batch = ours.get_ready()
        assert sorted(batch) == sorted(theirs.get_ready())
        out += batch
        if out:
            finished = data.draw(st.lists(st.sampled_from(out), min_size=1, unique=True))
            for task in finished:
                out.remove(task)
            ours.done(*finished)
            theirs.done(*finished)
    assert not ours.is_active()
    assert ours.get_ready() == []


@settings(max_examples=200, deadline=None)
@given(graph=dags(), data=st.data())
def test_static_order_is_a_topological_order(graph: DependencyGraph, data: st.DataObject) -> None:
    n = len(graph)
    tasks = data.draw(st.none() | st.sets(st.integers(0, n - 1)) if n else st.none())
    order = Readiness(graph, tasks).static_order()
    assert sorted(order) == sorted(range(n) if tasks is None else tasks)
    position = {task: i for i, task in enumerate(order)}
    for task in order:
        assert all(position[d] < position[task] for d in graph.deps[task] if d in position)


@settings(max_examples=300, deadline=None)
@given(graph=dags(), data=st.data())
def test_discard_against_brute_force(graph: DependencyGraph, data: st.DataObject) -> None:
    """Each tracked task is handed out once its tracked dependencies are done, or is returned by
    the `discard` of a task it depends on, directly or not, while it was never handed out."""
    n = len(graph)
    tracked = data.draw(st.none() | st.sets(st.integers(0, max(n - 1, 0)), max_size=n))
    members = set(range(n)) if tracked is None else {t for t in tracked if t < n}
    readiness = Readiness(graph, members if tracked is not None else None)
    readiness.prepare()
    handed_out: set[int] = set()
    done: set[int] = set()
    discarded: set[int] = set()
    removed: set[int] = set()
    running: list[int] = []
    while readiness.is_active():
        for task in readiness.get_ready():
            assert task in members and task not in handed_out | removed
            assert all(d in done for d in graph.deps[task] if d in members)
            handed_out.add(task)
            running.append(task)
        task = running.pop(data.draw(st.integers(0, len(running) - 1)))
        if data.draw(st.booleans()):
            readiness.done(task)
            done.add(task)
        else:
            gone = readiness.discard(task)
            assert gone == sorted(gone)
            expected = graph.descendants([task]) & members - handed_out - removed
            assert set(gone) == expected
            discarded.add(task)
            removed |= expected
    assert handed_out | removed == members
    assert not handed_out & removed
    if tracked is None:  # without untracked tasks between them, nothing below a failure runs
        assert not graph.descendants(discarded) & handed_out


def test_ancestors_excluding() -> None:
    # 3 -> 2 -> 1 -> 0 and 3 -> 0: excluding 2 hides 1 but not 0, reached directly.
    graph = DependencyGraph([[], [0], [1], [2, 0]])
    assert graph.ancestors([3]) == {0, 1, 2}
    assert graph.ancestors([3], excluding={2}) == {0}
    assert graph.ancestors([3], excluding={2, 0}) == set()
