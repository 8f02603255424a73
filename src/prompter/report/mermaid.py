"""Mermaid text, safe for any label: one escaping rule, one place.

Node ids are generated (`t0`, `t1`, …), never taken from task names, so names like `end`
cannot break the diagram; labels are quoted and every character mermaid or HTML could read as
syntax is written as a mermaid entity code (`#quot;`, `#60;`, …).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Verified in mermaid 11: more edges throw "Edge limit exceeded"; longer text renders a placeholder.
MAX_EDGES = 500
MAX_TEXT = 50_000

_ENTITY = {c: f"#{ord(c)};" for c in '"#<>&`\\'}
_ENTITY['"'] = "#quot;"
_ESCAPE = str.maketrans(_ENTITY)


def label(text: str) -> str:
    """A quoted mermaid label showing `text` literally."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return '"' + cleaned.translate(_ESCAPE) + '"'


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    text: str
    css_class: str | None = None
    rounded: bool = False


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    text: str | None = None
    dotted: bool = False


class TooLarge(ValueError):
    """The diagram exceeds what mermaid renders; the message says which limit."""


def flowchart(
    nodes: Iterable[Node],
    edges: Iterable[Edge],
    class_defs: Mapping[str, str] | None = None,
    direction: str = "TD",
) -> str:
    """A `flowchart` definition; raises `TooLarge` past mermaid's edge or size limit."""
    edge_list = list(edges)
    if len(edge_list) > MAX_EDGES:
        raise TooLarge(f"{len(edge_list)} edges exceed mermaid's limit of {MAX_EDGES}")
    lines = [f"flowchart {direction}"]
    size = len(lines[0])
    for node in nodes:
        shape = f"({label(node.text)})" if node.rounded else f"[{label(node.text)}]"
        line = f"  {node.id}{shape}" + (f":::{node.css_class}" if node.css_class else "")
        lines.append(line)
        size += len(line) + 1
        if size > MAX_TEXT:
            raise TooLarge(f"the diagram exceeds mermaid's limit of {MAX_TEXT:,} characters")
    for edge in edge_list:
        arrow = "-.->" if edge.dotted else "-->"
        middle = f"{arrow}|{label(edge.text)}|" if edge.text else arrow
        lines.append(f"  {edge.source} {middle} {edge.target}")
        size += len(lines[-1]) + 1
    for name, style in (class_defs or {}).items():
        lines.append(f"  classDef {name} {style}")
        size += len(lines[-1]) + 1
    if size > MAX_TEXT:
        raise TooLarge(f"the diagram exceeds mermaid's limit of {MAX_TEXT:,} characters")
    return "\n".join(lines) + "\n"
