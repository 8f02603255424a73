"""Mermaid text, safe for any label: one escaping rule, one place.

Node ids are generated (`t0`, `t1`, …), never taken from task names, so names like `end`
cannot break the diagram; labels are quoted and every character mermaid or HTML could read as
syntax is written as a mermaid entity code (`#quot;`, `#60;`, …).

Two diagram types: `flowchart` (the dependency graph, for `prompter graph` and the summary) and
`gantt` (the timeline of a run, for the summary). Gantt task texts are not quoted (a gantt shows
quotes literally); the same entity rule applies, and the first letter or digit is an entity too,
so a name such as `section x`, `dateFormat` or `2024-01-01` is never read as a gantt keyword or
date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Verified in mermaid 11: more edges throw "Edge limit exceeded"; longer text renders a placeholder.
MAX_EDGES = 500
MAX_TEXT = 50_000

# `"` ends the label; `#` starts an entity; `<>&` are HTML; `` ` `` starts a markdown string;
# `%` can open a `%%{init}%%` directive anywhere; `:` makes `fa:fa-x` an icon; `\\` is kept literal.
_ENTITY = {c: f"#{ord(c)};" for c in '"#<>&`\\%:'}
_ENTITY['"'] = "#quot;"
# Characters that would break the line or reorder the text: shown as a space.
_BLANK = {
    c: " "
    for c in (*range(0x20), 0x7F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
_ESCAPE = str.maketrans({**{chr(k): v for k, v in _BLANK.items()}, **_ENTITY})


def label(text: str) -> str:
    """A quoted mermaid label showing `text` literally (zero-width joiners and all)."""
    return '"' + text.translate(_ESCAPE) + '"'


def gantt_text(text: str) -> str:
    """An unquoted gantt task or section text showing `text` literally (same entity rule)."""
    escaped = text.translate(_ESCAPE).strip()
    if not escaped:
        return "#32;"  # a blank name: a visible nothing rather than a parse error
    # Keywords start lines (`section`, `title`), and so do dates (`2024-01-01`, read as one even
    # before a task's `:`): a first letter or digit is written as an entity.
    if escaped[0].isascii() and escaped[0].isalnum():
        escaped = f"#{ord(escaped[0])};{escaped[1:]}"
    return escaped


def text_size(text: str) -> int:
    """Mermaid's measure of a diagram: JavaScript string length, in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


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
    thick: bool = False  # drawn `==>`: the critical path in the summary


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
    too_long = TooLarge(f"the diagram exceeds mermaid's limit of {MAX_TEXT:,} characters")
    lines = [f"flowchart {direction}"]
    size = 0  # a running count lets a huge graph stop early; the final text is measured exactly
    for node in nodes:
        shape = f"({label(node.text)})" if node.rounded else f"[{label(node.text)}]"
        lines.append(f"  {node.id}{shape}" + (f":::{node.css_class}" if node.css_class else ""))
        size += len(lines[-1])
        if size > MAX_TEXT:
            raise too_long
    for edge in edge_list:
        arrow = "-.->" if edge.dotted else ("==>" if edge.thick else "-->")
        middle = f"{arrow}|{label(edge.text)}|" if edge.text else arrow
        lines.append(f"  {edge.source} {middle} {edge.target}")
    lines += [f"  classDef {name} {style}" for name, style in (class_defs or {}).items()]
    text = "\n".join(lines) + "\n"
    if text_size(text) > MAX_TEXT:
        raise too_long
    return text


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a gantt chart: times in milliseconds since the epoch."""

    id: str
    text: str
    start_ms: int
    end_ms: int
    tags: tuple[str, ...] = ()  # of "crit", "active", "done"


GANTT_TAGS = frozenset({"crit", "active", "done"})


def gantt(
    sections: Sequence[tuple[str, Sequence[Bar]]],
    title: str | None = None,
    axis_format: str = "%H:%M:%S",
) -> str:
    """A `gantt` definition on absolute times; raises `TooLarge` past mermaid's size limit.

    Each bar is its own row; a bar is at least 1 ms long (mermaid drops empty ones).
    """
    lines = ["gantt"]
    if title:
        lines.append(f"  title {gantt_text(title)}")
    lines += ["  dateFormat x", f"  axisFormat {axis_format}", "  todayMarker off"]
    size = 0
    for section, bars in sections:
        lines.append(f"  section {gantt_text(section)}")
        for bar in bars:
            tags = [t for t in bar.tags if t in GANTT_TAGS]
            meta = ", ".join(
                [*tags, bar.id, str(bar.start_ms), str(max(bar.end_ms, bar.start_ms + 1))]
            )
            lines.append(f"  {gantt_text(bar.text)} :{meta}")
            size += len(lines[-1])
            if size > MAX_TEXT:
                raise TooLarge(f"the diagram exceeds mermaid's limit of {MAX_TEXT:,} characters")
    text = "\n".join(lines) + "\n"
    if text_size(text) > MAX_TEXT:
        raise TooLarge(f"the diagram exceeds mermaid's limit of {MAX_TEXT:,} characters")
    return text
