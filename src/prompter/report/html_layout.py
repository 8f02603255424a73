"""Where `report.html` draws things: the dependency graph's layered layout and the timeline's lanes.

The graph is laid out left to right in layers: a task's rank is its longest path from a task
without dependencies (`DependencyGraph.levels`, or any ranks the caller gives), and the tasks of
each rank are ordered by the barycentre of their neighbours' positions, sweeping forwards and
backwards and keeping the order with the fewest crossings. That is the Sugiyama scheme without
dummy nodes for long edges: cheap (1,000 tasks in milliseconds) and legible enough with pan and
zoom. Pure: numbers in, numbers out.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

NODE_W = 180.0  # a node's box; names longer than it fits are cut in the page (the full name
NODE_H = 26.0  # is in its tooltip and in the details)
GAP_X = 70.0  # between ranks (room for the edges' curves)
GAP_Y = 12.0  # between the nodes of a rank
SWEEPS = 8  # forward and backward passes; the best order seen is kept


@dataclass(frozen=True)
class GraphLayout:
    ranks: tuple[int, ...]  # per node
    layers: tuple[tuple[int, ...], ...]  # the nodes of each rank, top to bottom
    x: tuple[float, ...]  # a node's box: left edge
    y: tuple[float, ...]  # top edge
    width: float
    height: float


def longest_path_ranks(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Each node's longest path (in edges) from a node without incoming edges.

    `edges` must be acyclic; an edge (u, v) puts v at least one rank after u.
    """
    incoming = [0] * count
    out: list[list[int]] = [[] for _ in range(count)]
    for u, v in edges:
        out[u].append(v)
        incoming[v] += 1
    rank = [0] * count
    ready = [n for n in range(count) if incoming[n] == 0]
    while ready:
        node = ready.pop()
        for child in out[node]:
            rank[child] = max(rank[child], rank[node] + 1)
            incoming[child] -= 1
            if incoming[child] == 0:
                ready.append(child)
    if any(incoming):
        raise ValueError("the edges have a cycle: no layered layout")
    return rank


def _inversions(values: list[int]) -> int:
    """Pairs i < j with values[i] > values[j] (merge sort)."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = values[:mid], values[mid:]
    total = _inversions(left) + _inversions(right)
    i = j = 0
    for k in range(len(values)):
        if j >= len(right) or (i < len(left) and left[i] <= right[j]):
            values[k] = left[i]
            i += 1
        else:
            values[k] = right[j]
            total += len(left) - i
            j += 1
    return total


def crossings(
    layers: Sequence[Sequence[int]], ranks: Sequence[int], edges: Sequence[tuple[int, int]]
) -> int:
    """How many pairs of edges between the same two ranks cross, given each layer's order."""
    position = {node: p for layer in layers for p, node in enumerate(layer)}
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for u, v in edges:
        if ranks[u] != ranks[v]:
            a, b = (u, v) if ranks[u] < ranks[v] else (v, u)
            groups.setdefault((ranks[a], ranks[b]), []).append((position[a], position[b]))
    total = 0
    for pairs in groups.values():
        pairs.sort()
        total += _inversions([b for _, b in pairs])
    return total


def _sweep(
    layers: list[list[int]], neighbours: Sequence[Sequence[int]], order: Sequence[int]
) -> None:
    """Reorder the layers numbered in `order` by the mean position of each node's neighbours
    (as a fraction of their layer's height); a node without any keeps its place."""
    where: dict[int, float] = {}
    for layer in layers:
        for p, node in enumerate(layer):
            where[node] = (p + 0.5) / len(layer)
    for r in order:
        layer = layers[r]
        keys = {}
        for p, node in enumerate(layer):
            near = neighbours[node]
            keys[node] = sum(where[n] for n in near) / len(near) if near else (p + 0.5) / len(layer)
        layer.sort(key=keys.__getitem__)
        for p, node in enumerate(layer):
            where[node] = (p + 0.5) / len(layer)


def order_layers(
    count: int, ranks: Sequence[int], edges: Sequence[tuple[int, int]], sweeps: int = SWEEPS
) -> list[list[int]]:
    """Each rank's nodes, ordered to cross few edges: barycentric sweeps from the input order
    (node number), the best order seen kept (never worse than the input's)."""
    depth = max(ranks, default=-1) + 1
    layers: list[list[int]] = [[] for _ in range(depth)]
    for node in range(count):
        layers[ranks[node]].append(node)
    before: list[list[int]] = [[] for _ in range(count)]
    after: list[list[int]] = [[] for _ in range(count)]
    for u, v in edges:
        if ranks[u] < ranks[v]:
            before[v].append(u)
            after[u].append(v)
        elif ranks[v] < ranks[u]:
            before[u].append(v)
            after[v].append(u)
    best = [list(layer) for layer in layers]
    fewest = crossings(best, ranks, edges)
    for n in range(sweeps):
        if fewest == 0:
            break
        if n % 2 == 0:
            _sweep(layers, before, range(1, depth))
        else:
            _sweep(layers, after, range(depth - 2, -1, -1))
        now = crossings(layers, ranks, edges)
        if now < fewest:
            best, fewest = [list(layer) for layer in layers], now
    return best


def layout_graph(
    count: int, edges: Sequence[tuple[int, int]], ranks: Sequence[int] | None = None
) -> GraphLayout:
    """Boxes for `count` nodes, ranks as columns from left to right, each column centred."""
    rank = list(ranks) if ranks is not None else longest_path_ranks(count, edges)
    layers = order_layers(count, rank, edges)
    tallest = max((len(layer) for layer in layers), default=0)
    x = [0.0] * count
    y = [0.0] * count
    for r, layer in enumerate(layers):
        top = (tallest - len(layer)) * (NODE_H + GAP_Y) / 2
        for p, node in enumerate(layer):
            x[node] = r * (NODE_W + GAP_X)
            y[node] = top + p * (NODE_H + GAP_Y)
    return GraphLayout(
        ranks=tuple(rank),
        layers=tuple(tuple(layer) for layer in layers),
        x=tuple(x),
        y=tuple(y),
        width=max(0.0, len(layers) * (NODE_W + GAP_X) - GAP_X),
        height=max(0.0, tallest * (NODE_H + GAP_Y) - GAP_Y),
    )


def assign_lanes(spans: Sequence[tuple[float, float]]) -> list[int]:
    """A lane for each (start, end) span such that a lane's spans do not overlap, in as few
    lanes as the most spans at one moment (a span that ends as another starts does not
    overlap it): the slots of a run, as far as the record tells them."""
    lane = [0] * len(spans)
    free: list[int] = []  # lanes free again, lowest first
    busy: list[tuple[float, int]] = []  # (end, lane)
    lanes = 0
    for i in sorted(range(len(spans)), key=lambda k: (spans[k][0], spans[k][1])):
        start, end = spans[i]
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane[i] = heapq.heappop(free)
        else:
            lane[i], lanes = lanes, lanes + 1
        heapq.heappush(busy, (max(start, end), lane[i]))
    return lane
