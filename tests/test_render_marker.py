"""The `render` marker (conftest.py): a session that selects tests rendering mermaid in headless
Chromium, on a machine without Chromium or without mermaid, stops before its first test with
one message naming what is missing and scripts/test; it neither skips them nor fails each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RENDERING = "tests/test_mermaid_render.py"  # every test of it has the marker
PLAIN = "tests/test_text.py"  # none of it has
# A plugin that hides the mermaid install from the session it is loaded into.
NO_MERMAID = """\
from pathlib import Path

import tests.mermaid_render


def pytest_configure(config):
    tests.mermaid_render.MERMAID_JS = Path("/nonexistent/mermaid.min.js")
"""


def session(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "no_mermaid.py").write_text(NO_MERMAID)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": path, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_chromium_the_session_stops_once_before_any_test(tmp_path: Path) -> None:
    done = session(tmp_path, RENDERING, PLAIN, PROMPTER_CHROMIUM=str(tmp_path / "no-chromium"))
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    lines = done.stderr.strip("\n").splitlines()
    assert lines[0].startswith("ERROR: "), done.stderr
    assert lines[0].endswith(" selected tests render mermaid in headless Chromium "
                             "(marker `render`), and this machine cannot:")  # fmt: skip
    assert lines[1:] == [
        "  chromium not found: install Debian's chromium (apt-get install chromium) "
        "or set PROMPTER_CHROMIUM",
        "scripts/test installs what is missing (as root, on Debian or Ubuntu); "
        '`-m "not render"` runs the other tests.',
    ]
    assert "no tests ran" in done.stdout, done.stdout
    assert done.stdout.count("chromium not found") == 0  # said once, on stderr


def test_without_mermaid_the_session_stops_once_before_any_test(tmp_path: Path) -> None:
    done = session(tmp_path, "-p", "no_mermaid", RENDERING, PLAIN)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    (missing,) = [line for line in done.stderr.splitlines() if line.startswith("  ")]
    assert missing.startswith("  mermaid not installed: run npm ci --prefix tests/render ")
    assert "no tests ran" in done.stdout, done.stdout


def test_a_session_without_render_tests_does_not_need_chromium(tmp_path: Path) -> None:
    done = session(
        tmp_path, "-m", "not render", RENDERING, PLAIN, PROMPTER_CHROMIUM=str(tmp_path / "none")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert " passed, " in done.stdout and " deselected " in done.stdout, done.stdout
