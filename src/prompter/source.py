"""Where each key of a TOML document stands: `(table, index, key) -> (line, col)`.

`tomllib` returns values without positions, so errors found after parsing are located by this
small scanner. It only recognises what can start a line in TOML — table headers and `key =` —
and skips multi-line strings, so a `name = ...` inside a prompt is never taken for a key.
It runs only when a message needs a position: the happy path never pays for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
_TOKEN = re.compile(rf"\"\"\"|'''|{_BASIC}|{_LITERAL}|#")
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


class SourceMap:
    """Positions of table headers and keys, addressed like pydantic error locations."""

    def __init__(self, text: str) -> None:
        # Only "\n" ends a line in TOML (and for tomllib's positions): not `str.splitlines`, which
        # also splits at U+2028, U+2029, U+0085 and others that a string or comment may hold.
        self.lines: Sequence[str] = [
            line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")
        ]
        self._pos: dict[Loc, tuple[int, int]] = {}
        self._scan()

    def locate(self, loc: Loc) -> tuple[int, int | None]:
        """(line, col) of the most specific known prefix of `loc`; (1, None) if none is known."""
        for end in range(len(loc), 0, -1):
            hit = self._pos.get(tuple(loc[:end]))
            if hit is not None:
                return hit
        return 1, None

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""

    def _scan(self) -> None:
        arrays: dict[Loc, int] = {}  # array-of-tables path -> number of elements so far
        table: Loc = ()
        closer: re.Pattern[str] | None = None  # set while inside a multi-line string

        def resolve(parts: list[str]) -> Loc:
            out: list[str | int] = []
            for p in parts:
                out.append(p)
                count = arrays.get(tuple(out))
                if count:
                    out.append(count - 1)
            return tuple(out)

        for number, line in enumerate(self.lines, start=1):
            start = 0
            if closer is not None:
                m = closer.search(line)
                if m is None:
                    continue
                start, closer = m.end(), None
            else:
                header = _HEADER.match(line)
                key = None if header else _KEY.match(line)
                if header:
                    parts = _parts(header.group(2))
                    col = header.start(1) + 1
                    if header.group(1) == "[[":
                        path = (*resolve(parts[:-1]), parts[-1])
                        arrays[path] = arrays.get(path, 0) + 1
                        self._pos.setdefault(path, (number, col))
                        table = (*path, arrays[path] - 1)
                    else:
                        table = resolve(parts)
                    self._pos[table] = (number, col)
                    start = header.end()
                elif key:
                    col = len(line) - len(line.lstrip(" \t")) + 1
                    loc = table
                    for part in _parts(key.group(1)):
                        loc = (*loc, part)
                        self._pos.setdefault(loc, (number, col))
                    start = key.end()
            if '"' in line or "'" in line:
                closer = self._open_multiline(line, start)

    @staticmethod
    def _open_multiline(line: str, pos: int) -> re.Pattern[str] | None:
        """The closer to wait for if `line` leaves a multi-line string open after `pos`."""
        while True:
            m = _TOKEN.search(line, pos)
            if m is None or m.group(0) == "#":
                return None
            token = m.group(0)
            if token in _CLOSER:
                end = _CLOSER[token].search(line, m.end())
                if end is None:
                    return _CLOSER[token]
                pos = end.end()
            else:
                pos = m.end()
