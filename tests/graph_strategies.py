"""Hypothesis strategies for dependency graphs: DAGs in shuffled file order, and any digraph."""

from __future__ import annotations

from hypothesis import strategies as st

from prompter.graph import DependencyGraph


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 30) -> DependencyGraph:
    """A random DAG whose file order is shuffled, so dependencies are often listed later."""
    n = draw(st.integers(0, max_nodes))
    rank = draw(
        st.permutations(range(n))
    )  # rank[i]: position of task i in a hidden topological order
    by_rank = sorted(range(n), key=rank.__getitem__)
    deps: list[list[int]] = [[] for _ in range(n)]
    for task in range(n):
        earlier = by_rank[: rank[task]]
        if earlier:
            deps[task] = draw(st.lists(st.sampled_from(earlier), max_size=4, unique=True))
    return DependencyGraph(deps)


@st.composite
def digraphs(draw: st.DrawFn, max_nodes: int = 12) -> DependencyGraph:
    """Any directed graph without self-loops: cycles likely."""
    n = draw(st.integers(1, max_nodes))
    return DependencyGraph(
        [
            draw(
                st.lists(
                    st.sampled_from([j for j in range(n) if j != i] or [0]), max_size=3, unique=True
                )
            )
            if n > 1
            else []
            for i in range(n)
        ]
    )
