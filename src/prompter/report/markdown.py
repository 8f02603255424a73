"""Untrusted text made safe for GitHub-flavoured markdown: inline, inside HTML, in a code block.

Shared by the sections of `summary.md` (`summary.py`, `jobs.py`).
"""

from __future__ import annotations

import re

from ..text import report_line

# Markdown: every ASCII punctuation that can start syntax gets a backslash (autolinks, emphasis,
# tables, emoji shortcodes, math); `&<>` become entities so that no HTML gets through.
_MD = str.maketrans(
    {
        **{c: "\\" + c for c in "\\`*_{}[]()#!|~:@$."},
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
    }
)
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_BACKTICKS = re.compile("`+")


def md(text: str | None, limit: int = 300) -> str:
    """Untrusted text as inline markdown (one line, literal, also inside a table cell)."""
    return report_line(text, limit).translate(_MD)


def html(text: str | None, limit: int = 300) -> str:
    """Untrusted text inside an HTML block (`<summary>`): one line, entities for `&<>"`."""
    return report_line(text, limit).translate(_HTML)


def fenced(content: str, info: str = "text") -> str:
    """A code block that `content` cannot end: the fence is longer than any backtick run."""
    longest = max((len(m) for m in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{content.rstrip()}\n{fence}\n"
