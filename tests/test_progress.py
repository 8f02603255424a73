"""What a person watching a run sees: plain lines, the heartbeat, the live table."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from prompter.events import (
    AgentLimitChanged,
    AgentRefused,
    Event,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskStarted,
)
from prompter.progress import LiveProgress, PlainProgress, RunView, choose
from prompter.records import AgentLimitChange, TaskRecord, TaskStatus

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
        "reports: .prompter/junit.xml .prompter/summary.md .prompter/report.html"
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


# -- the agent limit ---------------------------------------------------------------------------

HOSTILE_NAME = "[bold]x \x1b[2J\u202eevil\nsecond"
SHOWN_NAME = "[bold]x \\x1b[2J\\u202eevil second"  # escaped, on one line, no markup


def limit(at: float, level: int, cause: str, maximum: int = 8) -> AgentLimitChanged:
    return AgentLimitChanged(
        change=AgentLimitChange(at=at, limit=level, maximum=maximum, cause=cause), at=at
    )


def plain_lines(events: list[Event]) -> tuple[PlainProgress, list[str]]:
    out = io.StringIO()
    progress = PlainProgress(out)
    for event in events:
        progress(event)
    return progress, [re.sub(STAMP, "", line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([(3, "API 429")], ["agents: 3 of 8 (API 429)"]),
        (
            [(3, "API 429"), (4, "sessions ended without a rate limit"), (8, "sessions ended")],
            [
                "agents: 3 of 8 (API 429)",
                "agents: 4 of 8 (sessions ended without a rate limit)",
                "agents: 8 of 8 again",
            ],
        ),
        (  # a pause at the same limit is a change too: it says why
            [(1, "API 529"), (1, "API 429; no new session for 10 s")],
            ["agents: 1 of 8 (API 529)", "agents: 1 of 8 (API 429; no new session for 10 s)"],
        ),
        (  # a cut after a recovery is a cut again
            [(4, "API 429"), (8, "sessions ended"), (5, "API 529")],
            ["agents: 4 of 8 (API 429)", "agents: 8 of 8 again", "agents: 5 of 8 (API 529)"],
        ),
    ],
)
def test_the_plain_progress_prints_a_line_at_each_change_of_the_agent_limit(
    changes: list[tuple[int, str]], expected: list[str]
) -> None:
    now = time.time()
    _, lines = plain_lines(
        [limit(now + i, level, cause) for i, (level, cause) in enumerate(changes)]
    )
    assert lines == expected


def test_a_pause_at_a_maximum_of_one_says_why_rather_than_again() -> None:
    _, lines = plain_lines([limit(time.time(), 1, "API 429; no new session for 10 s", maximum=1)])
    assert lines == ["agents: 1 of 1 (API 429; no new session for 10 s)"]


def test_a_refused_session_is_a_plain_line_and_the_task_waits_not_runs() -> None:
    now = time.time()
    reason = "Claude API rate limit or overload (HTTP 429): \x1b[31mslow down\x1b[0m\nnow"
    progress, lines = plain_lines(
        [
            RunStarted(
                run_id="r",
                workflow="w",
                mode="graph",
                tasks=(HOSTILE_NAME, "b"),
                reused=(),
                slots=8,
            ),
            TaskStarted(task=HOSTILE_NAME, attempt=1, at=now - 20),
            TaskStarted(task="b", attempt=1, at=now - 20),
            limit(now - 12, 3, "API 429"),
            AgentRefused(task=HOSTILE_NAME, reason=reason, at=now - 12),
            AgentRefused(task="b", reason="rate-limited", retry_in_s=29.4, at=now - 12),
        ]
    )
    assert lines[-2] == (
        f"⏸ {SHOWN_NAME}: the API refused the agent session (Claude API rate limit or overload "
        "(HTTP 429): \\x1b[31mslow down\\x1b[0m now); waits for the agent limit"
    )
    assert lines[-1] == (
        "⏸ b: the API refused the agent session (rate-limited); waits for the agent limit "
        "(no new session for 29 s)"
    )
    view = progress.view
    assert view.running == {} and set(view.refused) == {HOSTILE_NAME, "b"}
    assert view.queued == 0  # waiting for the limit, not queued afresh
    progress.beat()
    beat = progress.stream.getvalue().splitlines()[-1]  # type: ignore[attr-defined]
    assert re.search(
        rf"… waiting for the agent limit: {re.escape(SHOWN_NAME)}, b; "
        r"agents: 3 of 8 — API 429 1[23] s ago$",
        beat,
    ), beat
    for text in [*lines, beat]:
        assert "\x1b" not in text and "\u202e" not in text
    # The same attempt starts again: the task runs, and waits no more.
    progress(TaskStarted(task=HOSTILE_NAME, attempt=1))
    assert HOSTILE_NAME in view.running and HOSTILE_NAME not in view.refused
    assert re.sub(STAMP, "", progress.stream.getvalue().splitlines()[-1]) == f"▶ {SHOWN_NAME}"  # type: ignore[attr-defined]


def test_the_agent_limit_says_the_cause_of_its_last_cut_while_it_grows_back() -> None:
    now = time.time()
    view = RunView()
    assert view.agents(now) is None  # never changed
    view.update(limit(now - 75, 3, "API 529"))
    assert view.agents(now) == "agents: 3 of 8 — API 529 1m15s ago"
    view.update(limit(now - 30, 4, "sessions ended without a rate limit"))
    assert view.agents(now) == "agents: 4 of 8 — API 529 1m15s ago"
    view.update(limit(now - 5, 2, "API 429; no new session for 29 s (as it said)"))
    assert (
        view.agents(now) == "agents: 2 of 8 — API 429 5 s ago; no new session for 29 s (as it said)"
    )
    view.update(limit(now, 8, "sessions ended without a rate limit"))
    assert view.agents(now) is None  # at the maximum: nothing to say
