"""Every broken workflow in tests/broken is rejected with exit 2 and exactly the expected errors.

Each file starts with `# expect: LINE: TEXT` lines: one per error, in any order. The loader
must report exactly that many errors, each at its LINE and containing its TEXT.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prompter.cli import main
from prompter.config import load_workflow
from prompter.diagnostics import Severity, WorkflowError

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.toml"))
EXPECT = re.compile(r"^# expect: (\d+): (.+)$", re.M)


def test_corpus_is_large_enough() -> None:
    assert len(BROKEN) >= 40


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_workflow_is_rejected_with_located_errors(path: Path) -> None:
    expected = [(int(line), text) for line, text in EXPECT.findall(path.read_text("utf-8"))]
    assert expected, f"{path.name} has no `# expect:` line"
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    errors = [d for d in caught.value.diagnostics if d.severity is Severity.ERROR]
    got = [(d.line, d.message) for d in errors]
    for line, text in expected:
        assert any(line == gl and text in gm for gl, gm in got), (
            f"expected line {line}: {text!r}\n got: {got}"
        )
    assert len(errors) == len(expected), f"unexpected extra errors: {got}"


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_cli_exits_2_with_one_line_per_error_and_no_traceback(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first_lines = [line for line in err.splitlines() if not line.startswith("    ")]
    n = len(EXPECT.findall(path.read_text("utf-8")))
    located = [
        line
        for line in first_lines
        if re.match(rf"{re.escape(str(path))}:\d+(:\d+)?: error: ", line)
    ]
    assert len(located) == n
    assert first_lines[-1] == f"{path}: {n} error{'s' * (n != 1)}"
