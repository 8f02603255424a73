"""Fixtures every test file may use, one definition each, and the checks of a whole session.

Plain helpers live in modules of their own (harness.py, toml_text.py, ...), imported by the test
files; no test file imports another.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompter import identity

from . import mermaid_render
from .harness import ClaudeHarness, Harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    """A workflow in `tmp_path` whose agents are tests/agents/fake_agent.py."""
    return Harness(tmp_path)


@pytest.fixture
def c(tmp_path: Path) -> ClaudeHarness:
    """A workflow in `tmp_path` whose tasks default to Claude Code (tests/agents/fake_claude.py)."""
    return ClaudeHarness(tmp_path)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="prompter-shared-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _default_sigterm_after_each_test() -> Iterator[None]:
    """An in-process run leaves its late-SIGTERM handler (signals.finish_after_the_loop) behind:
    pytest's process gets its default back, so each run installs its own."""
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _undecided_identity_after_each_test() -> Iterator[None]:
    """Who a run's processes run as is decided once per process (identity.settle): a run made
    in-process by one test (as root, on a tree another user owns) must not make every later
    test start its processes as that user."""
    try:
        yield
    finally:
        identity._children, identity._settled = None, False


# -- the `render` marker: tests that render mermaid in headless Chromium -------------------------


def render_tools_missing() -> list[str]:
    """What the `render` tests need and this machine lacks (scripts/test installs both)."""
    missing = []
    for need in (mermaid_render.chromium, mermaid_render.mermaid_js):
        try:
            need()
        except RuntimeError as exc:
            missing.append(str(exc))
    return missing


def pytest_collection_finish(session: pytest.Session) -> None:
    """A missing browser or mermaid stops the session before the first test, in one message,
    instead of failing each render test minutes into the run (and never skips them)."""
    if session.config.option.collectonly:
        return
    wanting = [item for item in session.items if item.get_closest_marker("render")]
    if not wanting:
        return
    missing = render_tools_missing()
    if missing:
        lines = [
            f"{len(wanting)} selected tests render mermaid in headless Chromium "
            "(marker `render`), and this machine cannot:",
            *(f"  {line}" for line in missing),
            "scripts/test installs what is missing (as root, on Debian or Ubuntu); "
            '`-m "not render"` runs the other tests.',
        ]
        raise pytest.UsageError("\n".join(lines))
