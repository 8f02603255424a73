"""Where each key of a TOML document stands: `(table, index, key) -> (line, col)`.

`tomllib` returns values without positions, so errors found after parsing are located by this
small scanner. It only recognises what can start a line in TOML — table headers and `key =` —
and skips multi-line strings, so a `name = ...` inside a prompt is never taken for a key.
It runs only when a message needs a position: the happy path never pays for it.
"""

from __future__ import annotations

import re

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
        self._pos: dict[Loc, tuple[int, int]] | None = None

    def locate(self, loc: Loc) -> tuple[int, int | None]:
        """(line, col) of the most specific known prefix of `loc`; (1, None) if none is known."""
        if self._pos is None:
            self._pos = self._scan()
        for end in range(len(loc), 0, -1):
            hit = self._pos.get(tuple(loc[:end]))
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

    def _scan(self) -> dict[Loc, tuple[int, int]]:
        text = self.text
        found: dict[Loc, tuple[int, int]] = {}
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

        number, pos = 1, 0  # the line, and the offset where it starts
        while True:
            if closer is not None:
                # Inside a multi-line string: on to its end, which cannot span lines.
                m = closer.search(text, pos, self._end)
                if m is None:
                    break
                number += text.count("\n", pos, m.start())
                pos = text.rfind("\n", 0, m.start()) + 1
                start, closer = m.end(), None
                newline, stop = self._line_stop(pos)
            else:
                newline, stop = self._line_stop(pos)
                start = pos
                header = _HEADER.match(text, pos, stop)
                key = None if header else _KEY.match(text, pos, stop)
                if header:
                    parts = _parts(header.group(2))
                    col = header.start(1) - pos + 1
                    if header.group(1) == "[[":
                        path = (*resolve(parts[:-1]), parts[-1])
                        arrays[path] = arrays.get(path, 0) + 1
                        found.setdefault(path, (number, col))
                        table = (*path, arrays[path] - 1)
                    else:
                        table = resolve(parts)
                    found[table] = (number, col)
                    start = header.end()
                elif key:
                    col = key.start(1) - pos + 1
                    loc = table
                    for part in _parts(key.group(1)):
                        loc = (*loc, part)
                        found.setdefault(loc, (number, col))
                    start = key.end()
            closer = _open_multiline(text, start, stop)
            if newline == -1:
                break
            number, pos = number + 1, newline + 1
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
