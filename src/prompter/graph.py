"""The dependency graph of a workflow, over task indices (file order), and its readiness.

`deps[i]` lists the tasks that task `i` depends on. Every method is O(V + E) (cycle reporting
is bounded separately) and none depends on file order for correctness: a task may be listed
before its dependencies. `Readiness` says which tasks may start as others finish; the planner's
simulation, the scheduler and `DependencyGraph.order` all count dependencies through it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Sequence
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
        return tuple(Readiness(self).static_order())

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

    def ancestors(self, roots: Iterable[int], excluding: Collection[int] = ()) -> set[int]:
        """Every task that one of `roots` depends on, directly or not (roots excluded).

        A task in `excluding` is neither returned nor looked through: what it depends on counts
        only when reached another way.
        """
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            for dep in self.deps[stack.pop()]:
                if dep not in seen and dep not in excluding:
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


# -- readiness ---------------------------------------------------------------------------------

# A task's entry in `Readiness._waiting`: its unfinished dependencies while it waits (0: ready,
# not yet handed out), or one of these.
_OUT = -1  # handed out by get_ready, neither done nor discarded
_DONE = -2
_GONE = -3  # discarded, or waiting on a discarded task
_UNTRACKED = -4  # outside the tasks given


class Readiness:
    """Which tasks may start as others finish: `graphlib.TopologicalSorter`'s protocol (`prepare`,
    `get_ready`, `done`, `is_active`, `static_order`) over a `DependencyGraph`'s task indices;
    `get_ready` returns a list, not a tuple, since it is called after every finished task.

    Only `tasks` (default: all) are tracked; a dependency outside them counts as done already.
    Beyond graphlib, `discard` marks a handed-out task that will never be done (it failed):
    the tasks waiting on it, directly or not, are never handed out. The graph must be acyclic
    (the loader rejects cycles): a cycle's tasks are never ready, and `static_order` raises
    `CycleError` for them. Each task costs O(1) plus its edges over a whole run.
    """

    def __init__(self, graph: DependencyGraph, tasks: Iterable[int] | None = None) -> None:
        self.graph = graph
        self._tasks = tasks
        self._waiting: list[int] = []
        self._ready: list[int] = []
        self._prepared = False
        self._handed_out = 0
        self._finished = 0  # done or discarded

    def prepare(self) -> None:
        """Count each task's unfinished dependencies; the tasks with none are ready."""
        if self._prepared:
            raise ValueError("prepare() may be called only once")
        self._prepared = True
        deps = self.graph.deps
        if self._tasks is None:
            self._waiting = waiting = [len(d) for d in deps]
            self._ready = [i for i, n in enumerate(waiting) if n == 0]
            return
        tracked = bytearray(len(deps))
        for i in self._tasks:
            tracked[i] = 1
        self._waiting = waiting = [_UNTRACKED] * len(deps)
        for i, flag in enumerate(tracked):
            if flag:
                waiting[i] = n = sum(tracked[d] for d in deps[i])
                if n == 0:
                    self._ready.append(i)

    def get_ready(self) -> list[int]:
        """The tasks that became ready since the last call (a new list): every tracked
        dependency done. File order at first, then the order in which `done` released them."""
        ready = self._ready
        if not ready:  # most calls, once a run is under way
            if not self._prepared:
                raise ValueError("prepare() must be called first")
            return []
        self._ready = []
        waiting = self._waiting
        for task in ready:
            waiting[task] = _OUT
        self._handed_out += len(ready)
        return ready

    def done(self, *tasks: int) -> None:
        """Mark handed-out tasks finished: the tasks waiting only on them become ready."""
        waiting = self._waiting
        dependents = self.graph.dependents
        ready = self._ready
        for task in tasks:
            if waiting[task] != _OUT:
                raise ValueError(f"task {task} was not handed out by get_ready, or is finished")
            waiting[task] = _DONE
            for child in dependents[task]:
                n = waiting[child]
                if n > 0:  # a tracked task still waiting, not one gone
                    waiting[child] = n = n - 1
                    if n == 0:
                        ready.append(child)
        self._finished += len(tasks)

    def discard(self, task: int) -> list[int]:
        """Mark a handed-out task as never done; return, in file order, the tracked tasks it
        held back, directly or not, which now will never be ready.

        A task that no longer waits (ready or handed out: only possible when an untracked task
        lies between) is not returned, but what waits on it is, since it waits on `task` too.
        """
        waiting = self._waiting
        if waiting[task] != _OUT:
            raise ValueError(f"task {task} was not handed out by get_ready, or is finished")
        waiting[task] = _GONE
        self._finished += 1
        dependents = self.graph.dependents
        removed: list[int] = []
        seen = {task}
        stack = [task]
        while stack:
            for child in dependents[stack.pop()]:
                if child in seen:
                    continue
                seen.add(child)
                n = waiting[child]
                if n > 0:
                    waiting[child] = _GONE
                    removed.append(child)
                # A task gone already had everything waiting below it removed then; any other
                # (ready, handed out, done, untracked) may have tracked tasks waiting below it.
                if n != _GONE:
                    stack.append(child)
        removed.sort()
        return removed

    def is_active(self) -> bool:
        """Whether progress can still be made: a task is ready, or handed out and unfinished."""
        return self._finished < self._handed_out or bool(self._ready)

    def static_order(self) -> list[int]:
        """Every task, dependencies first, wave by wave (as `get_ready` and `done` would hand
        them out); raises CycleError when some cannot be ordered. Leaves every task done."""
        self.prepare()
        waiting = self._waiting
        dependents = self.graph.dependents
        order = self._ready
        self._ready = []
        # `done` inlined, the queue being the order itself: `graph.order` of 100,000 tasks is on
        # the path of every `prompter validate`.
        for task in order:  # a list may grow while it is iterated
            for child in dependents[task]:
                n = waiting[child]
                if n > 0:
                    waiting[child] = n = n - 1
                    if n == 0:
                        order.append(child)
        if len(order) != len(waiting) - waiting.count(_UNTRACKED):
            raise CycleError("the graph has a cycle")
        for task in order:
            waiting[task] = _DONE
        self._handed_out = self._finished = len(order)
        return order
