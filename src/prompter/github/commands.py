"""GitHub's workflow commands and file commands, written by hand (a few lines, no dependency).

Everything printed here is built so that untrusted text stays data: messages and properties are
escaped, raw output is fenced with `::stop-commands::<token>`, which makes the runner ignore
every command until `::<token>::`, and prompter's own lines go through `inert()`.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

from ..text import fold_lines

MESSAGE_CHARS = 4096  # the runner cuts annotation messages here
ANNOTATIONS_PER_TYPE = 10  # the runner shows at most this many per type and step
SUMMARY_BYTES = 1024 * 1024  # a step summary over this is dropped with an error


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str | int | None) -> str:
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None and value != ""  # the runner drops empty ones anyway
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def status_line(text: str) -> str:
    """For status lines: never more than one line (`text.fold_lines`), so never the start of a
    command; `inert` then keeps it from being one."""
    return fold_lines(text).strip()


# The runner reads a line (split as .NET's ReadLine does: CR, LF or CR LF) as a command when,
# after leading white space, it starts with `::`, or when it holds `##[` anywhere: the old
# syntax, still parsed. A zero-width space before the character that would complete either
# leaves the line reading the same and makes it no command. It always goes right before the
# last character of the match, so a line written in pieces comes out as if written whole.
_ZWSP = "\u200b"
_LEADING_COLONS = re.compile(r"\A(\s*:):")
_LINE_BREAKS = re.compile(r"\r\n?|\n")


def inert(line: str) -> str:
    """One line (no line breaks) as it reads, but never a workflow command."""
    line = line.replace("##[", "##" + _ZWSP + "[")
    return _LEADING_COLONS.sub("\\1" + _ZWSP + ":", line)


class InertWriter(io.TextIOBase):
    """A text stream whose lines are never workflow commands, for everything prompter prints
    about a run in a job log: task names, reasons and file names may come from an agent."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._line = ""  # the current line as written so far (not yet ended)
        self._shown = 0  # how many characters of inert(self._line) went out already

    def write(self, text: str) -> int:
        out = []
        start = 0
        for brk in _LINE_BREAKS.finditer(text):
            out += [self._more(text[start : brk.start()]), brk.group()]
            self._line, self._shown = "", 0
            start = brk.end()
        if start < len(text):
            out.append(self._more(text[start:]))
        self.stream.write("".join(out))
        return len(text)

    def _more(self, piece: str) -> str:
        self._line += piece
        safe = inert(self._line)
        new, self._shown = safe[self._shown :], len(safe)
        return new

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


class Console:
    """The job log: commands, groups, masks and fenced untrusted output."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        # For lines about the run (progress, plans): whatever they quote, never a command.
        self.text = cast(TextIO, InertWriter(self.stream))
        # Annotations printed so far, per type: the runner keeps the first ANNOTATIONS_PER_TYPE
        # of the whole step, whoever printed them.
        self.annotated: Counter[str] = Counter()
        self.masked: set[str] = set()  # told to the runner already

    def emit(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def info(self, text: str) -> None:
        self.emit(inert(status_line(text)))

    def mask(self, value: str) -> None:
        for part in value.splitlines():  # the runner masks line by line
            if part.strip() and part not in self.masked:
                self.masked.add(part)
                self.emit(command("add-mask", part))

    def annotation(
        self,
        kind: str,
        message: str,
        *,
        title: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        if len(message) > MESSAGE_CHARS:
            message = message[: MESSAGE_CHARS - 1] + "…"
        self.annotated[kind] += 1
        self.emit(command(kind, message, file=file, line=line, title=title))

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.emit(command("group", status_line(title)))
        try:
            yield
        finally:
            self.emit(command("endgroup"))

    def untrusted(self, text: str) -> None:
        """Print `text` as is, with every workflow command in it disabled."""
        token = secrets.token_hex(16)
        while token in text:  # astronomically unlikely, and then it cannot end the fence
            token = secrets.token_hex(16)
        self.emit(f"::stop-commands::{token}")
        self.stream.write(text if text.endswith("\n") or not text else text + "\n")
        self.emit(f"::{token}::")


@dataclass(frozen=True)
class Annotation:
    kind: str  # "error" | "warning" | "notice"
    message: str
    title: str | None = None
    file: str | None = None
    line: int | None = None


class Annotations:
    """The step's annotations, printed at `flush()`: of each type at most what is left of the
    runner's ANNOTATIONS_PER_TYPE per step (Console counts what went out directly), lowest
    `rank` first; past that, one that says how many more, and those as plain log lines."""

    def __init__(self, console: Console, more_hint: str) -> None:
        self.console = console
        self.more_hint = more_hint
        self.pending: dict[str, list[tuple[int, Annotation]]] = {}

    def add(self, annotation: Annotation, rank: int = 1) -> None:
        self.pending.setdefault(annotation.kind, []).append((rank, annotation))

    def flush(self) -> None:
        for kind, ranked in self.pending.items():
            items = [a for _, a in sorted(ranked, key=lambda pair: pair[0])]  # stable
            room = max(0, ANNOTATIONS_PER_TYPE - self.console.annotated[kind])
            over = len(items) > room
            shown = items[: max(0, room - 1)] if over else items
            for a in shown:
                self.console.annotation(kind, a.message, title=a.title, file=a.file, line=a.line)
            if not over:
                continue
            rest = items[len(shown) :]
            for a in rest:  # still in the job log, as text
                self.console.info(f"{kind}: {a.title + ': ' if a.title else ''}{a.message}")
            if room:
                self.console.annotation(
                    kind, f"{len(rest)} more like this: {self.more_hint}", title=f"{len(rest)} more"
                )
        self.pending.clear()


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append `name<<DELIM` blocks; the delimiter is random and absent from the value."""
    with path.open("a", encoding="utf-8", newline="") as f:
        for name, raw in outputs.items():
            # The runner reads the file line by line: a CR would end a line where we did not.
            value = raw.replace("\r\n", "\n").replace("\r", "\n")
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
            f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(path: Path, markdown: str, fallback: str) -> bool:
    """Append `markdown` when the step's summary stays within its limit, else `fallback`."""
    used = path.stat().st_size if path.exists() else 0
    data = markdown.encode("utf-8")
    fits = used + len(data) <= SUMMARY_BYTES
    with path.open("ab") as f:
        f.write(data if fits else fallback.encode("utf-8"))
    return fits
