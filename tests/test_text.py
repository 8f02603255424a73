"""text.py: one module for untrusted text. A characterisation test first: for hostile inputs
(ANSI CSI/OSC, C0/C1 controls, DEL, NUL, lone surrogates, U+2028/2029, bidi overrides, CR LF,
workflow commands, long strings), data/text_characterisation.json holds what each of the seven
old functions gave at commit 7c38c98 (`diagnostics.printable`, `processes.readable`,
`report/facts.clean` and `one_line`, `events.one_line`, `github/commands.one_line`,
`agents/claude._one_line`, `records._scrub`); the calls that replaced them give the same, with
one deliberate change: the report functions (`xml_safe`, `report_line`) now also drop the bidi
embeddings, overrides and isolates, which the old `clean` let into reports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from prompter import text
from prompter.agents.claude_messages import one_line as claude_one_line
from prompter.github.commands import status_line
from prompter.processes import readable
from prompter.records import Text

ROWS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "text_characterisation.json").read_text()
)
CASES = [row for row in ROWS if row["input"] is not None]
BIDI_REORDERING = re.compile(f"[{text.BIDI_REORDERING}]")


def without_bidi(s: str) -> str:
    """What the old report functions gave, minus the bidi reordering characters they kept."""
    return BIDI_REORDERING.sub("", s)


@pytest.mark.parametrize("row", CASES, ids=lambda row: repr(row["input"][:30]))
def test_every_caller_gives_what_the_old_function_gave(row: dict[str, Any]) -> None:
    s = row["input"]
    assert text.escape_controls(s) == row["printable"]
    assert readable(s.encode("utf-8", "surrogatepass")) == row["readable"]
    assert text.xml_safe(s) == without_bidi(row["clean"])
    assert text.xml_safe(s, 50) == without_bidi(row["clean_50"])  # the tail is cut first
    assert text.report_line(s) == without_bidi(row["facts_one_line"])
    if not BIDI_REORDERING.search(s):  # with bidi removed first, the 20 characters differ
        assert text.report_line(s, 20) == row["facts_one_line_20"]
    assert text.console_line(s) == row["events_one_line"]
    assert status_line(s) == row["github_one_line"]
    assert claude_one_line(s) == row["claude_one_line"]
    assert claude_one_line(s, 20) == row["claude_one_line_20"]
    assert text.scrub_surrogates(s) == row["scrub"]


def test_report_line_of_nothing_is_empty() -> None:
    assert text.report_line(None) == text.report_line("") == ""


def test_records_scrub_lone_surrogates() -> None:
    from pydantic import TypeAdapter

    assert TypeAdapter(Text).validate_python("a\ud800b") == "a\ufffdb"
    plain = "already fine"
    assert text.scrub_surrogates(plain) is plain


def test_fold_lines_and_truncate() -> None:
    assert text.fold_lines("a\r\nb\rc\nd") == "a  b c d"
    assert text.truncate("abc", 3) == "abc"
    assert text.truncate("ab cd", 4) == "ab…"
    assert text.truncate("ab cd", 4, rstrip=False) == "ab …"
    assert text.single_line(" a \n\t b ", 10) == "a b"


def test_every_result_is_safe() -> None:
    for row in CASES:
        s = row["input"]
        for out in (text.console_line(s), text.report_line(s)):
            assert "\n" not in out and "\r" not in out and "\x1b" not in out
        assert "\x1b" not in text.strip_terminal_codes(s)
        assert "\x1b" not in text.xml_safe(s)
        assert not BIDI_REORDERING.search(text.xml_safe(s) + text.report_line(s))
        text.xml_safe(s).encode("utf-8")
        text.scrub_surrogates(s).encode("utf-8")


def test_text_imports_only_re() -> None:
    # Whatever `re` and `__future__` load is there before; prompter.text adds nothing to it.
    code = (
        "import sys, re, __future__; before = set(sys.modules); import prompter.text; "
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('prompter')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
