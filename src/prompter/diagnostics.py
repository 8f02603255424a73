"""Located messages about a workflow file: `PATH:LINE[:COL]: error: MESSAGE`.

Everything the loader finds wrong becomes a `Diagnostic`; nothing raises past the loader
except `WorkflowError`, which carries all of them at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .exits import PrompterError
from .text import BIDI, CONTROL, escape_controls, mask_controls

# BIDI and CONTROL are text.py's; config/messages.py takes them from here.
__all__ = [
    "BIDI",
    "CONTROL",
    "SUGGESTION_BUDGET",
    "Diagnostic",
    "Severity",
    "Suggester",
    "WorkflowError",
    "did_you_mean",
    "innermost",
    "source_excerpt",
]


def innermost(exc: BaseException) -> BaseException:
    """The error inside exception groups of one (anyio wraps what a task raised in one)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


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
        path = escape_controls(self.path)
        where = path if self.line <= 0 else f"{path}:{self.line}"
        if self.col is not None and self.line > 0:
            where += f":{self.col}"
        text = f"{where}: {self.severity.value}: {escape_controls(self.message)}"
        if self.excerpt:
            text += "\n" + self.excerpt
        return text


class WorkflowError(PrompterError):
    """The workflow file cannot be used; `diagnostics` holds every error (and warning) found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.severity is Severity.ERROR]
        super().__init__(errors[0].format() if errors else "invalid workflow")

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)


# Names compared, in total, while suggesting names for one file (a few microseconds each): a
# file naming thousands of unknown tasks among thousands of tasks would otherwise take minutes.
SUGGESTION_BUDGET = 500_000


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean `x`?` for the closest candidate, or an empty string."""
    return Suggester(budget=None)(word, candidates)


class Suggester:
    """`did_you_mean` with a bound on the total work: once `budget` names have been compared,
    the remaining words get no suggestion."""

    def __init__(self, budget: int | None = SUGGESTION_BUDGET) -> None:
        self.left = budget

    def __call__(self, word: str, candidates: Iterable[str]) -> str:
        if self.left == 0:
            return ""
        # Compared without case: `A` for a task `a` is the likeliest typo of all, and difflib
        # alone finds nothing alike in two one-letter names.
        folded = word.casefold()
        pool = list(candidates)
        if len(pool) > 5000:  # difflib is quadratic-ish; a huge name pool gets a pre-filter
            pool = [c for c in pool if c[:1].casefold() == folded[:1]] or pool[:5000]
        if self.left is not None:
            if len(pool) > self.left:
                self.left = 0
                return ""
            self.left -= len(pool)
        originals: dict[str, str] = {}
        for candidate in pool:
            originals.setdefault(candidate.casefold(), candidate)  # the first, in file order
        match = originals.get(folded)
        if match is None:
            matches = difflib.get_close_matches(folded, originals, n=1, cutoff=0.6)
            match = originals[matches[0]] if matches else None
        return f"; did you mean `{match}`?" if match is not None else ""


def source_excerpt(line_text: str, col: int | None) -> str:
    """The offending source line, indented, with a caret under the column."""
    # One column for one character, so that the caret stays under it.
    shown = mask_controls(line_text.rstrip("\r\n").expandtabs(1), "?")
    if len(shown) > 200:
        start = max(0, (col or 1) - 100)
        shown = shown[start : start + 200]
        col = (col or 1) - start
    caret = "" if col is None else "\n    " + " " * max(0, col - 1) + "^"
    return f"    {shown}{caret}"
