"""The dependency graph of a workflow, over task indices (file order).

`deps[i]` lists the tasks that task `i` depends on. Every method is O(V + E) (cycle reporting
is bounded separately) and none depends on file order for correctness: a task may be listed
before its dependencies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

MAX_CYCLES_REPORTED = 50


class CycleError(ValueError):
    """The graph has a cycle, so it has no topological order."""


@dataclass(frozen=True)
class CriticalPath:
    tasks: tuple[int, ...]  # dependencies first
    length: float


class DependencyGraph:
    def __init__(self, deps: Sequence[Sequence[int]]) -> None:
        self.deps: tuple[tuple[int, ...], ...] = tuple(tuple(d) for d in deps)

    def __len__(self) -> int:
        return len(self.deps)

    @cached_property
    def dependents(self) -> tuple[tuple[int, ...], ...]:
        out: list[Any] = [[] for _ in self.deps]
        for task, deps in enumerate(self.deps):
            for dep in deps:
                out[dep].append(task)
        for task, dependents in enumerate(out):  # each list freed as soon as it is copied
            out[task] = tuple(dependents)
        return tuple(out)

    @property
    def edge_count(self) -> int:
        return sum(len(d) for d in self.deps)

    @cached_property
    def order(self) -> tuple[int, ...]:
        """A topological order (dependencies first); ties keep file order wave by wave."""
        waiting = [len(d) for d in self.deps]
        queue = deque(i for i, n in enumerate(waiting) if n == 0)
        out: list[int] = []
        while queue:
            task = queue.popleft()
            out.append(task)
            for child in self.dependents[task]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    queue.append(child)
        if len(out) != len(self.deps):
            raise CycleError("the graph has a cycle")
        return tuple(out)

    @cached_property
    def levels(self) -> tuple[int, ...]:
        """Level of each task: 0 without dependencies, else 1 + the highest dependency level."""
        level = [0] * len(self.deps)
        for task in self.order:
            for child in self.dependents[task]:
                if level[child] <= level[task]:
                    level[child] = level[task] + 1
        return tuple(level)

    def waves(self) -> list[list[int]]:
        """Tasks grouped by level, each wave in file order."""
        waves: list[list[int]] = [[] for _ in range(max(self.levels, default=-1) + 1)]
        for task, level in enumerate(self.levels):
            waves[level].append(task)
        return waves

    def descendants(self, roots: Iterable[int]) -> set[int]:
        """Every task that depends, directly or not, on one of `roots` (roots excluded)."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            for child in self.dependents[stack.pop()]:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def ancestors(self, roots: Iterable[int]) -> set[int]:
        """Every task that one of `roots` depends on, directly or not (roots excluded)."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            for dep in self.deps[stack.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return seen

    def bottom_levels(self, weights: Sequence[float]) -> list[float]:
        """Longest weighted path from each task to the end of the graph, the task included.

        The scheduler's tie-breaker: a task with more work behind it starts first.
        """
        bottom = list(weights)
        dependents = self.dependents
        for task in reversed(self.order):
            tail = 0.0
            for child in dependents[task]:
                tail = max(tail, bottom[child])
            bottom[task] = weights[task] + tail
        return bottom

    def critical_path(self, weights: Sequence[float]) -> CriticalPath:
        """The heaviest chain of dependent tasks: no schedule can finish faster."""
        if not self.deps:
            return CriticalPath((), 0.0)
        finish = [0.0] * len(self.deps)
        via = [-1] * len(self.deps)
        for task in self.order:
            best = -1
            for dep in self.deps[task]:
                if best < 0 or finish[dep] > finish[best]:
                    best = dep
            finish[task] = weights[task] + (finish[best] if best >= 0 else 0.0)
            via[task] = best
        last = max(range(len(finish)), key=finish.__getitem__)
        path = []
        while last >= 0:
            path.append(last)
            last = via[last]
        return CriticalPath(tuple(reversed(path)), finish[path[0]])

    # -- cycles --------------------------------------------------------------------------------

    def cycles(self) -> list[list[int]]:
        """Cycles that together use every edge lying on some cycle (bounded in number).

        Each cycle `[a, b, c]` means a -> b -> c -> a, an edge pointing at a dependency; it starts
        at its task listed first in the file. Self-loops are reported as `[a]`.
        """
        found: list[list[int]] = []
        for component in self._strong_components():
            members = set(component)
            covered: set[tuple[int, int]] = set()
            for u in sorted(component):
                for v in self.deps[u]:
                    if v not in members or (u, v) in covered:
                        continue
                    path = self._path(v, u, members)  # v ... u, so u -> v ... -> u
                    cycle = [u, *path[:-1]]
                    covered.update(zip(cycle, cycle[1:] + cycle[:1], strict=True))
                    start = cycle.index(min(cycle))
                    found.append(cycle[start:] + cycle[:start])
                    if len(found) >= MAX_CYCLES_REPORTED:
                        return found
        return found

    def reachable_cycle(self, start: int) -> list[int] | None:
        """One cycle reachable from `start` along edges, or None."""
        state = [0] * len(self.deps)  # 0 new, 1 on the current path, 2 done
        stack: list[tuple[int, int]] = [(start, 0)]
        path: list[int] = []
        state[start] = 1
        path.append(start)
        while stack:
            node, i = stack[-1]
            edges = self.deps[node]
            if i == len(edges):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, i + 1)
            nxt = edges[i]
            if state[nxt] == 1:
                return path[path.index(nxt) :]
            if state[nxt] == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, 0))
        return None

    def _path(self, source: int, target: int, within: set[int]) -> list[int]:
        """Shortest edge path source -> ... -> target inside `within` (BFS)."""
        parent = {source: source}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if node == target:
                break
            for nxt in self.deps[node]:
                if nxt in within and nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        path = [target]
        while path[-1] != source:
            path.append(parent[path[-1]])
        return path[::-1]

    def _strong_components(self) -> list[list[int]]:
        """Strongly connected components with a cycle (Tarjan, iterative)."""
        n = len(self.deps)
        index = [-1] * n
        low = [0] * n
        on_stack = [False] * n
        stack: list[int] = []
        out: list[list[int]] = []
        counter = 0
        for root in range(n):
            if index[root] >= 0:
                continue
            work: list[tuple[int, int]] = [(root, 0)]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack[root] = True
            while work:
                node, i = work[-1]
                edges = self.deps[node]
                if i < len(edges):
                    work[-1] = (node, i + 1)
                    nxt = edges[i]
                    if index[nxt] < 0:
                        index[nxt] = low[nxt] = counter
                        counter += 1
                        stack.append(nxt)
                        on_stack[nxt] = True
                        work.append((nxt, 0))
                    elif on_stack[nxt]:
                        low[node] = min(low[node], index[nxt])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack[member] = False
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in self.deps[node]:
                        out.append(component)
        return out
