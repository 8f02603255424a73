"""Counts in messages: `1 task`, `2 tasks`, not `1 task(s)` or `1 dependencies`."""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """`word` for one, else `words` (default: `word` + "s")."""
    return word if n == 1 else (words or word + "s")


def count(n: int, word: str, words: str | None = None) -> str:
    """`1 task`, `3 tasks`, `1,000 tasks` (thousands separated, as the reports write them)."""
    return f"{n:,} {plural(n, word, words)}"
