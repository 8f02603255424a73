"""What a person watching a run sees: plain lines, the heartbeat, the live table."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from prompter.events import RunFinished, RunStarted, TaskFinished, TaskStarted
from prompter.progress import LiveProgress, PlainProgress, choose
from prompter.records import TaskRecord, TaskStatus

from .harness import Harness

STAMP = r"^\[\d\d:\d\d:\d\d\] "


def test_plain_lines_for_a_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = Harness(tmp_path)
    h.task(
        "fix",
        [{"exit": 0}],
        verify_command="test -f done || { touch done; exit 1; }",
        depends_on=[],
    )
    h.task("after", depends_on=["fix"])
    h.task("doomed", verify_command="exit 5", max_attempts=1, depends_on=[])
    h.task("never", depends_on=["doomed"])
    assert h.run() == 1
    *lines, pointer, delivered = capsys.readouterr().out.splitlines()
    assert all(re.match(STAMP, line) for line in lines)
    # After the run, unstamped lines say where the state, the logs and the reports are, and what
    # became of changes.patch.
    assert delivered == "changes: not in a git repository: no changes.patch"
    assert pointer == (
        "state: .prompter/state.json  logs: .prompter/logs/  "
        "reports: .prompter/junit.xml .prompter/summary.md"
    )
    text = "\n".join(re.sub(STAMP, "", line) for line in lines)
    assert "graph mode, 4 tasks" in text
    assert "▶ fix" in text and "▶ fix (attempt 2)" in text
    assert "↻ fix attempt 1 failed: verify_command exited 1 (expected 0); retrying in 0.0 s" in text
    assert re.search(r"✓ fix passed in [\d.]+ s, 2 attempts", text)
    assert "✗ doomed failed: verify_command exited 5 (expected 0)" in text
    assert "- never skipped: dependency `doomed` failed" in text
    assert re.search(r"run failed: 2 passed, 1 failed, 1 skipped in [\d.]+ s$", text)


def test_heartbeat_names_running_tasks() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, heartbeat_s=0.05)
    progress(
        RunStarted(run_id="r", workflow="w", mode="graph", tasks=("a", "b"), reused=(), slots=2)
    )
    progress(TaskStarted(task="b", attempt=1, at=time.time() - 75))
    progress(TaskStarted(task="a", attempt=1))

    async def beat() -> None:
        with anyio.move_on_after(0.18):
            await progress.heartbeat()

    anyio.run(beat)
    # The slots are a limit, not a claim of how many run at once (a chain of two runs one).
    assert out.getvalue().splitlines()[0].endswith("run r: w, graph mode, 2 tasks, 2 slots")
    beats = [line for line in out.getvalue().splitlines() if "running:" in line]
    assert len(beats) >= 2
    assert re.search(r"… running: a \([\d.]+ s\), b \(1m1[45]s\)$", beats[0])


def test_live_table_renders_and_escapes_markup() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    live = LiveProgress(console)
    live(
        RunStarted(
            run_id="r", workflow="w", mode="graph", tasks=("[bold]x", "b"), reused=(), slots=2
        )
    )
    live(TaskStarted(task="[bold]x", attempt=1))
    record = TaskRecord(
        name="[bold]x",
        fingerprint="f",
        status=TaskStatus.FAILED,
        reason="verify_command exited 1 [red]",
        run_id="r",
        started_at=time.time() - 1,
        finished_at=time.time(),
    )
    live(TaskFinished(record=record))
    live(RunFinished(run_id="r", status="failed", reason=None))
    text = buffer.getvalue()
    assert "▶ [bold]x" in text  # shown while running, literally
    assert "✗ [bold]x failed: verify_command exited 1 [red]" in text
    assert "run failed: 1 failed" in text


def test_auto_is_plain_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(choose("auto", io.StringIO()), PlainProgress)
    assert choose("none") is None
    assert isinstance(choose("rich"), LiveProgress)
