"""Located messages about a workflow file: `PATH:LINE[:COL]: error: MESSAGE`.

Everything the loader finds wrong becomes a `Diagnostic`; nothing raises past the loader
except `WorkflowError`, which carries all of them at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    path: str
    line: int  # 1-based; 0 only when the file itself is unreadable
    message: str
    severity: Severity = Severity.ERROR
    col: int | None = None  # 1-based
    excerpt: str | None = None  # extra lines printed under the message (e.g. source + caret)

    def format(self) -> str:
        where = self.path if self.line <= 0 else f"{self.path}:{self.line}"
        if self.col is not None and self.line > 0:
            where += f":{self.col}"
        text = f"{where}: {self.severity.value}: {self.message}"
        if self.excerpt:
            text += "\n" + self.excerpt
        return text


class WorkflowError(Exception):
    """The workflow file cannot be used; `diagnostics` holds every error (and warning) found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity is Severity.ERROR]
        super().__init__(errors[0].format() if errors else "invalid workflow")

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean `x`?` for the closest candidate, or an empty string."""
    pool = list(candidates)
    if len(pool) > 5000:  # difflib is quadratic-ish; a huge name pool gets a cheaper pre-filter
        pool = [c for c in pool if c[:1] == word[:1]] or pool[:5000]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f"; did you mean `{matches[0]}`?" if matches else ""


def source_excerpt(line_text: str, col: int | None) -> str:
    """The offending source line, indented, with a caret under the column."""
    shown = line_text.rstrip("\r\n").expandtabs(1)
    if len(shown) > 200:
        start = max(0, (col or 1) - 100)
        shown = shown[start : start + 200]
        col = (col or 1) - start
    caret = "" if col is None else "\n    " + " " * max(0, col - 1) + "^"
    return f"    {shown}{caret}"
