"""Where each key of a TOML document stands: `(table, index, key) -> (line, col)`.

`tomllib` returns values without positions, so errors found after parsing are located by this
small scanner. It only recognises what can start a line in TOML — table headers and `key =` —
and skips multi-line strings, so a `name = ...` inside a prompt is never taken for a key.
It runs only when a message needs a position: the happy path never pays for it.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

Loc = tuple[str | int, ...]

# A basic string, `"(?:[^"\\\n]|\\.)*"`, written so that it cannot backtrack. Python's `re`
# saves a state for every repetition of a group it may return to: ~100 bytes per character of a
# long string (a one-line 20 MB prompt took 2.3 GB and 10 s). Unrolled (a run of plain
# characters, then one escape at a time) and possessive (`*+`), it matches the same strings in
# constant memory and linear time: each character can be consumed in only one way, so giving
# one back could never lead to a match.
_BASIC = r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
_LITERAL = r"'[^'\n]*+'"
_KEY_PART = rf"(?:[A-Za-z0-9_-]++|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
_HEADER = re.compile(rf"[ \t]*(\[\[?)[ \t]*({_DOTTED})[ \t]*\]")
_KEY = re.compile(rf"[ \t]*({_DOTTED})[ \t]*=")
_PART = re.compile(_KEY_PART)
# Tokens that matter for finding where a multi-line string starts: strings and comments.
# (Named groups: `m.group(0)` of a string token would copy the string.)
_TOKEN = re.compile(rf"(?P<open>\"\"\"|''')|{_BASIC}|{_LITERAL}|(?P<comment>#)")
_CLOSER = {'"""': re.compile(r'(?<!\\)"""'), "'''": re.compile("'''")}


def _parts(dotted: str) -> list[str]:
    out = []
    for m in _PART.finditer(dotted):
        p = m.group(0)
        if p[0] == '"':
            p = p[1:-1].encode("utf-8", "surrogatepass").decode("unicode_escape", "replace")
        elif p[0] == "'":
            p = p[1:-1]
        out.append(p)
    return out


@dataclass
class _Index:
    """Where each table of the text starts, compactly: one entry per header ("segment"), the
    text before the first header being segment 0. The positions of keys are found by scanning
    only the segments a diagnostic asks about (`SourceMap._keys`), not kept for the whole file:
    a dict of every key's position took ~3 MiB per MB of a file of small tasks."""

    line: array[int] = field(default_factory=lambda: array("q", [1]))
    offset: array[int] = field(default_factory=lambda: array("q", [0]))
    col: array[int] = field(default_factory=lambda: array("q", [0]))
    arrays: dict[Loc, array[int]] = field(default_factory=dict)  # [[path]] -> its segments
    tables: dict[Loc, list[int]] = field(default_factory=dict)  # [table] -> its segments
    keys: dict[int, dict[Loc, tuple[int, int]]] = field(default_factory=dict)  # scanned ones


class SourceMap:
    """Positions of table headers and keys, addressed like pydantic error locations.

    It works on the text in place: no copy of it, no list of its lines (for a file of short
    lines that list alone took three times the file's size), and the scan, done at the first
    `locate`, jumps over a multi-line string with one search instead of visiting its lines.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        # Only "\n" ends a line in TOML (and for tomllib's positions): not `str.splitlines`, which
        # also splits at U+2028, U+2029, U+0085 and others that a string or comment may hold. A
        # final "\n" ends the last line rather than starting an empty one; a "\r" before a "\n"
        # is not part of the line.
        self._end = len(text) - text.endswith("\n")
        self.line_count = text.count("\n", 0, self._end) + 1
        self._index: _Index | None = None

    def locate(self, loc: Loc) -> tuple[int, int | None]:
        """(line, col) of the most specific known prefix of `loc`; (1, None) if none is known."""
        if self._index is None:
            self._index = self._scan_headers()
        for end in range(len(loc), 0, -1):
            hit = self._position(tuple(loc[:end]))
            if hit is not None:
                return hit
        return 1, None

    def line_text(self, line: int) -> str:
        if not 0 < line <= self.line_count:
            return ""
        start = 0
        for _ in range(line - 1):
            start = self.text.index("\n", start) + 1
        return self.text[start : self._line_stop(start)[1]]

    def _line_stop(self, start: int) -> tuple[int, int]:
        """(offset of the "\n" that ends the line starting at `start`, or -1 for the last line;
        where its text ends, before that "\n" and a "\r" just before it)."""
        newline = self.text.find("\n", start, self._end)
        stop = self._end if newline == -1 else newline
        if stop > start and self.text[stop - 1] == "\r":
            stop -= 1
        return newline, stop

    def _lines(self, pos: int, number: int) -> Iterator[tuple[int, int, re.Match[str] | None]]:
        """(line, offset of its start, the header match or None) of each line from `pos` (a
        line's start, outside a multi-line string) that starts with a table header or a key."""
        text = self.text
        closer: re.Pattern[str] | None = None  # set while inside a multi-line string
        while True:
            if closer is not None:
                # Inside a multi-line string: on to its end, which cannot span lines.
                m = closer.search(text, pos, self._end)
                if m is None:
                    return
                number += text.count("\n", pos, m.start())
                pos = text.rfind("\n", 0, m.start()) + 1
                start, closer = m.end(), None
                newline, stop = self._line_stop(pos)
            else:
                newline, stop = self._line_stop(pos)
                start = pos
                header = _HEADER.match(text, pos, stop)
                if header:
                    yield number, pos, header
                    start = header.end()
                else:
                    key = _KEY.match(text, pos, stop)
                    if key:
                        yield number, pos, None
                        start = key.end()
            closer = _open_multiline(text, start, stop)
            if newline == -1:
                return
            number, pos = number + 1, newline + 1

    def _scan_headers(self) -> _Index:
        """One pass over the text that keeps only where each table starts (its "segment")."""
        index = _Index()
        table: Loc = ()

        def resolve(parts: list[str]) -> Loc:
            out: list[str | int] = []
            for p in parts:
                out.append(p)
                segments = index.arrays.get(tuple(out))
                if segments:
                    out.append(len(segments) - 1)
            return tuple(out)

        for number, pos, header in self._lines(0, 1):
            if header is None:
                continue
            parts = _parts(header.group(2))
            segment = len(index.line)  # 0 is the text before the first header
            index.line.append(number)
            index.offset.append(pos)
            index.col.append(header.start(1) - pos + 1)
            if header.group(1) == "[[":
                path = (*resolve(parts[:-1]), parts[-1])
                index.arrays.setdefault(path, array("q")).append(segment)
            else:
                table = resolve(parts)
                index.tables.setdefault(table, []).append(segment)
        return index

    def _segments(self, table: Loc) -> list[int]:
        """The segments whose table is `table`, in file order."""
        assert self._index is not None
        found = list(self._index.tables.get(table, ()))
        if table and isinstance(table[-1], int):
            elements = self._index.arrays.get(table[:-1])
            if elements is not None and 0 <= table[-1] < len(elements):
                found.append(elements[table[-1]])
        return sorted(found)

    def _position(self, loc: Loc) -> tuple[int, int] | None:
        """What the whole-file scan of earlier versions found for `loc`, in the same order of
        precedence: a header sets its table's position (a later one overwrites), `[[path]]`
        and a key set theirs only if nothing has yet (the first one wins)."""
        index = self._index
        assert index is not None
        # (segment, what it sets) in file order: "table" its header's table, "path" the first
        # position of an array of tables, "keys" a key of its body.
        events: list[tuple[int, int, str, Loc]] = []
        events += [(s, 0, "table", loc) for s in self._segments(loc)]
        events += [(s, 0, "path", loc) for s in index.arrays.get(loc, ())[:1]]
        for end in range(len(loc)):
            table = loc[:end]
            segments = [0, *self._segments(table)] if end == 0 else self._segments(table)
            events += [(s, 1, "keys", table) for s in segments]
        hit: tuple[int, int] | None = None
        for segment, _, kind, table in sorted(events, key=lambda e: (e[0], e[1])):
            if kind == "table" or (hit is None and kind == "path"):
                hit = (index.line[segment], index.col[segment])
            elif hit is None:
                hit = self._keys(segment, table).get(loc)
        return hit

    def _keys(self, segment: int, table: Loc) -> dict[Loc, tuple[int, int]]:
        """Positions of the keys in a segment's body (its table is `table`), scanned once."""
        assert self._index is not None
        cached = self._index.keys.get(segment)
        if cached is not None:
            return cached
        found: dict[Loc, tuple[int, int]] = {}
        pos, number = self._index.offset[segment], self._index.line[segment]
        first = segment != 0  # a segment's first line is its header
        for line, start, header in self._lines(pos, number):
            if header is not None:
                if first:
                    first = False
                    continue
                break
            key = _KEY.match(self.text, start, self._line_stop(start)[1])
            assert key is not None
            col = key.start(1) - start + 1
            loc = table
            for part in _parts(key.group(1)):
                loc = (*loc, part)
                found.setdefault(loc, (line, col))
        self._index.keys[segment] = found
        return found


def _open_multiline(text: str, pos: int, stop: int) -> re.Pattern[str] | None:
    """The closer to wait for if the line ending at `stop` leaves a multi-line string open
    after `pos`."""
    while True:
        m = _TOKEN.search(text, pos, stop)
        if m is None or m["comment"]:
            return None
        opener = m["open"]
        if opener:
            end = _CLOSER[opener].search(text, m.end(), stop)
            if end is None:
                return _CLOSER[opener]
            pos = end.end()
        else:
            pos = m.end()
