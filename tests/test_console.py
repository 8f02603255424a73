"""What a person sees at the console: hostile text in progress lines, the live view and
`status`; the live view with hundreds of tasks or after an error; `--progress rich` without a
terminal; the heartbeat; `clear-state` without a state; `init` at its question and with
--force; `clean` without git.

The live view is exercised in a real pseudo-terminal where it matters (the cursor, TERM).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.console import Console

from prompter.events import (
    AgentLimitChanged,
    AgentRefused,
    AttemptFinished,
    RunFinished,
    RunStarted,
    TaskFinished,
    TaskStarted,
)
from prompter.progress import LiveProgress, PlainProgress
from prompter.records import AgentLimitChange, AttemptRecord, TaskRecord, TaskStatus

from .harness import prompter_cli
from .init_session import init_env as fake_claude_env

STAMP = r"^\[\d\d:\d\d:\d\d\] "
# A file name an agent chose: a colour, a screen clear, a right-to-left override.
HOSTILE_FILE = "x\x1b[31mRED\x1b[2J\u202eevil"


def in_pty(
    argv: Sequence[str],
    cwd: Path,
    *,
    rows: int = 24,
    cols: int = 80,
    env: dict[str, str] | None = None,
    answer: tuple[bytes, bytes] | None = None,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """Run `argv` on a pseudo-terminal of the given size; (exit code, everything it wrote).
    `answer`: (when this is seen, write that)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    full_env.update({"TERM": "xterm-256color", **(env or {})})
    proc = subprocess.Popen(
        list(argv), cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=full_env
    )
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child side is closed
                    break
                if not data:
                    break
                out += data
                if answer and answer[0] in out:
                    os.write(master, answer[1])
                    answer = None
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"timed out; output so far: {out[-2000:]!r}")
        return proc.wait(timeout=10), out
    finally:
        os.close(master)


def prompter_in_pty(cwd: Path, *args: str, **kw: Any) -> tuple[int, bytes]:
    return in_pty([sys.executable, "-m", "prompter", *args], cwd, **kw)


def workflow(path: Path, tasks: list[dict[str, Any]], **settings: Any) -> Path:
    settings = {"agent": "command", "agent_command": ["true"], "retry_delay": 0, **settings}
    lines = ["[settings]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    defaults = {"prompt": "x", "verify_command": "true", "depends_on": []}
    for task in tasks:
        keys = {**defaults, **task}
        lines += ["", "[[tasks]]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def record(
    name: str, status: TaskStatus, reason: str | None = None, took: float = 1.0
) -> TaskRecord:
    now = time.time()
    return TaskRecord(
        name=name,
        fingerprint="f",
        status=status,
        reason=reason,
        run_id="r",
        started_at=now - took,
        finished_at=now,
    )


def last_frame(output: str) -> list[str]:
    """The lines of the live table's last redraw (rich moves the cursor up, then rewrites)."""
    frame = re.split(r"(?:\x1b\[2K\x1b\[1A)+\x1b\[2K", output)[-1]
    return [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in frame.split("\n")]


# -- hostile text ------------------------------------------------------------------------------


def conflicting_run(tmp_path: Path) -> Path:
    """Two parallel tasks in worktrees create the same file, named by an agent with terminal
    escapes and a bidi override in it: the second fails with a reason that quotes the name."""
    repo, barrier = tmp_path / "repo", tmp_path / "barrier"
    barrier.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    make = (  # both agents start before either writes: the same base, a conflict
        "import os, pathlib, time\n"
        f"b = pathlib.Path({str(barrier)!r})\n"
        "(b / os.environ['PROMPTER_TASK']).touch()\n"
        "end = time.time() + 30\n"
        "while len(list(b.iterdir())) < 2 and time.time() < end:\n"
        "    time.sleep(0.02)\n"
        f"open({HOSTILE_FILE!r}, 'w').write(os.environ['PROMPTER_TASK'])\n"
    )
    workflow(
        repo / "wf.toml",
        [{"name": "a", "max_attempts": 1}, {"name": "b", "max_attempts": 1}],
        agent_command=[sys.executable, "-c", make],
        isolation="worktree",
    )
    return repo


def test_a_reason_quoting_an_agents_file_name_never_reaches_the_console_raw(
    tmp_path: Path,
) -> None:
    repo = conflicting_run(tmp_path)
    done = prompter_cli("run", "--progress", "plain", "wf.toml", cwd=repo)
    assert done.returncode == 1, done.stderr
    progress = [line for line in done.stdout.splitlines() if re.match(STAMP, line)]
    failed = [line for line in progress if "failed: merge conflict" in line]
    assert failed, done.stdout
    assert "\\x1b[31mRED\\x1b[2J\\u202eevil" in failed[0]  # shown, as escapes
    status = prompter_cli("status", "wf.toml", cwd=repo)
    assert "in x\\x1b[31mRED\\x1b[2J\\u202eevil" in status.stdout  # `a` or `b` lost the race
    for text in ["\n".join(progress), status.stdout]:
        assert "\x1b" not in text and "\u202e" not in text


def test_the_live_view_shows_names_and_reasons_literally() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, height=30, color_system=None)
    live = LiveProgress(console)
    names = (":smile: x", "ends in a backslash \\")
    live(RunStarted(run_id="r", workflow="w", mode="graph", tasks=names, reused=(), slots=2))
    for name in names:
        live(TaskStarted(task=name, attempt=1))
    reason = "merge conflict with `a` in :warning: \x1b[2J\u202eevil\nsecond line"
    for name in names:
        live(TaskFinished(record=record(name, TaskStatus.FAILED, reason)))
    live(RunFinished(run_id="r", status="failed", reason="stopped by `:x:` \x1b[31m"))
    text = buffer.getvalue()
    assert "▶ :smile: x" in text and "😄" not in text  # no emoji codes
    assert "✗ ends in a backslash \\ failed" in text  # the backslash is not doubled
    assert "in :warning: \\x1b[2J\\u202eevil second line" in text and "⚠" not in text
    assert "run failed (stopped by `:x:` \\x1b[31m): 2 failed" in text
    assert "\x1b[2J" not in text and "\u202e" not in text and "\x1b[31m" not in text


def test_status_columns_line_up_for_wide_characters(tmp_path: Path) -> None:
    workflow(
        tmp_path / "wf.toml",
        [{"name": "测试任务"}, {"name": "ab", "verify_command": "exit 3", "max_attempts": 1}],
    )
    assert prompter_cli("run", "--progress", "none", "wf.toml", cwd=tmp_path).returncode == 1
    done = prompter_cli("status", "wf.toml", cwd=tmp_path)
    rows = done.stdout.splitlines()[:3]
    # The status column starts at the same place on the screen in every row.
    starts = {
        cell_len(row[: row.index(word)])
        for row, word in zip(rows, ("status", "passed", "failed"), strict=True)
    }
    assert len(starts) == 1, rows


def test_status_json_total_cost_is_a_number_of_one_type(tmp_path: Path) -> None:
    done = prompter_cli("status", "--json", cwd=tmp_path)  # no state: nothing has run
    assert done.returncode == 0, done.stderr
    assert '"total_cost_usd": 0.0' in done.stdout  # as with tasks: 0.0, not 0


# -- the live view -----------------------------------------------------------------------------


def test_the_live_view_fits_a_small_terminal_and_keeps_counts_and_failures_in_view() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=60, height=12, color_system=None)
    live = LiveProgress(console)
    names = tuple(f"task-{i:03d}" for i in range(300))
    live(RunStarted(run_id="r", workflow="w", mode="graph", tasks=names, reused=(), slots=100))
    for name in names[:100]:
        live(TaskStarted(task=name, attempt=1))
    live(TaskFinished(record=record(names[0], TaskStatus.FAILED, "verify_command exited 1")))
    live._draw()  # the last frame, whatever the redraw rate
    frame = [line for line in last_frame(buffer.getvalue()) if line.strip()]
    assert len(frame) <= 11, frame  # 12 rows: one spare for the cursor
    assert frame[0].startswith("elapsed") and "1 failed" in frame[0]
    assert any(re.fullmatch(r"… and \d+ more running\s*", line) for line in frame), frame
    assert any(line.startswith("200 queued") for line in frame), frame
    assert any("✗ task-000 failed: verify_command exited 1" in line for line in frame), frame


def test_the_live_view_keeps_up_with_hundreds_of_tasks() -> None:
    """Every event used to redraw every running task: 300 running tasks cost ~50 ms of the event
    loop per event, minutes for a run of a few hundred tasks."""
    console = Console(file=io.StringIO(), force_terminal=True, width=100, height=24)
    live = LiveProgress(console)
    names = tuple(f"task-{i:03d}" for i in range(300))
    started = time.perf_counter()
    live(RunStarted(run_id="r", workflow="w", mode="graph", tasks=names, reused=(), slots=300))
    for name in names:
        live(TaskStarted(task=name, attempt=1))
    for name in names:
        live(TaskFinished(record=record(name, TaskStatus.PASSED)))
    live(RunFinished(run_id="r", status="passed", reason=None))
    assert time.perf_counter() - started < 3.0


def test_a_long_name_is_cut_to_one_row_while_live() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=40, height=10, color_system=None)
    live = LiveProgress(console)
    live(RunStarted(run_id="r", workflow="w", mode="graph", tasks=("n" * 150,), reused=(), slots=1))
    live(TaskStarted(task="n" * 150, attempt=1))
    frame = [line for line in last_frame(buffer.getvalue()) if line.strip()]
    assert len(frame) == 2 and frame[1].startswith("▶ nnn") and "…" in frame[1], frame


def test_the_live_view_shows_the_agent_limit_and_refused_tasks_as_waiting() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, height=12, color_system=None)
    live = LiveProgress(console)
    names = ("[red]a :x:", "b", "c")
    live(RunStarted(run_id="r", workflow="w", mode="graph", tasks=names, reused=(), slots=8))
    for name in names:
        live(TaskStarted(task=name, attempt=1))
    now = time.time()
    change = AgentLimitChange(at=now - 12, limit=3, maximum=8, cause="API 429")
    live(AgentLimitChanged(change=change, at=change.at))
    live(AgentRefused(task=names[0], reason="HTTP 429 \x1b[2J", retry_in_s=None))
    live._draw()
    frame = [line.rstrip() for line in last_frame(buffer.getvalue()) if line.strip()]
    assert frame[0].startswith("elapsed")
    assert re.fullmatch(r"agents: 3 of 8 — API 429 1[23] s ago", frame[1]), frame
    assert not any(names[0] in line for line in frame), frame  # waiting, not running
    assert "1 waiting for the agent limit" in frame, frame
    # Back at the maximum: the line goes; the task runs again, the same attempt.
    back = AgentLimitChange(at=now, limit=8, maximum=8, cause="sessions ended")
    live(AgentLimitChanged(change=back, at=now))
    live(TaskStarted(task=names[0], attempt=1))
    live._draw()
    frame = [line.rstrip() for line in last_frame(buffer.getvalue()) if line.strip()]
    assert not any(line.startswith("agents:") for line in frame), frame
    assert not any("waiting" in line for line in frame), frame
    assert any(line.startswith("▶ [red]a :x:") for line in frame), frame
    assert "\x1b[2J" not in buffer.getvalue()


def test_the_cursor_comes_back_when_a_run_ends_by_an_internal_error(tmp_path: Path) -> None:
    workflow(tmp_path / "wf.toml", [{"name": "a", "verify_command": "sleep 5"}])
    # An internal error in the middle of a run (a bug): RunFinished never comes.
    inject = (
        "import sys, anyio, prompter.scheduler as s\n"
        "async def run(self):\n"
        "    await anyio.sleep(1.2)\n"
        "    raise RuntimeError('injected')\n"
        "s.GraphScheduler.run = run\n"
        "sys.argv = ['prompter', 'run', 'wf.toml']\n"
        "from prompter.cli import run as main\n"
        "main()\n"
    )
    code, out = in_pty([sys.executable, "-c", inject], tmp_path)
    assert code == 70, out
    assert b"internal error: RuntimeError: injected" in out
    hidden = out.rfind(b"\x1b[?25l")
    assert hidden >= 0 and out.find(b"\x1b[?25h", hidden) > hidden, out[-500:]


def test_progress_rich_without_a_terminal_prints_lines_as_the_run_goes(tmp_path: Path) -> None:
    workflow(tmp_path / "wf.toml", [{"name": "a"}, {"name": "b", "depends_on": ["a"]}])
    done = prompter_cli("run", "--progress", "rich", "wf.toml", cwd=tmp_path)  # a pipe
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(re.match(STAMP + "▶ a$", line) for line in lines), done.stdout
    assert any(re.match(STAMP + "✓ b passed", line) for line in lines), done.stdout
    # TERM=dumb: a terminal that cannot move the cursor gets the lines too.
    code, out = prompter_in_pty(
        tmp_path, "run", "--fresh", "--progress", "rich", "wf.toml", env={"TERM": "dumb"}
    )
    assert code == 0, out
    assert re.search(rb"\] \xe2\x96\xb6 a\r\n", out), out  # "▶ a", stamped, as it started
    assert b"\x1b[" not in out


def test_a_live_run_on_a_terminal_ends_with_its_table_and_summary(tmp_path: Path) -> None:
    workflow(
        tmp_path / "wf.toml",
        [
            {"name": "ok"},
            {"name": "bad", "verify_command": "exit 4", "max_attempts": 1},
            {"name": "after", "depends_on": ["bad"]},
        ],
    )
    code, out = prompter_in_pty(tmp_path, "run", "wf.toml", rows=20, cols=70)
    assert code == 1, out
    text = out.decode()
    assert "\x1b[?25h" in text  # the cursor is shown again
    assert "run failed: 1 passed, 1 failed, 1 skipped" in text
    assert "✗ bad failed: verify_command exited 4 (expected 0)" in text


# -- time and the heartbeat -------------------------------------------------------------------


def test_durations_round_into_the_next_unit() -> None:
    out = io.StringIO()
    plain = PlainProgress(out)
    for took in (59.97, 3599.7, 9.0):
        plain(TaskFinished(record=record("t", TaskStatus.PASSED, took=took)))
    lines = [re.sub(STAMP, "", line) for line in out.getvalue().splitlines()]
    assert lines[0] == "✓ t passed in 1m00s"  # not "60.0 s"
    assert lines[1] == "✓ t passed in 1h00m"  # not "59m60s"
    assert lines[2] == "✓ t passed in 9.0 s"


def test_the_heartbeat_names_retries_waiting_and_keeps_to_one_short_line() -> None:
    out = io.StringIO()
    plain = PlainProgress(out)
    names = tuple(f"t{i:02d}" for i in range(31))
    plain(RunStarted(run_id="r", workflow="w", mode="graph", tasks=names, reused=(), slots=30))
    for name in names:
        plain(TaskStarted(task=name, attempt=1))
    attempt = AttemptRecord(number=1, started_at=time.time() - 1, finished_at=time.time())
    plain(AttemptFinished(task="t30", attempt=attempt, retry_in_s=120.0))
    out.truncate(0)
    out.seek(0)
    plain.beat()
    (line,) = out.getvalue().splitlines()
    assert re.match(STAMP + r"… running: t00 \([\d.]+ s\), t01 ", line), line
    assert re.search(r", … and 10 more; waiting to retry: t30 \(in (1m59s|2m00s)\)$", line), line
    # Nothing running, a retry waiting out its backoff: the heartbeat still says so.
    quiet = PlainProgress(io.StringIO())
    quiet(RunStarted(run_id="r", workflow="w", mode="graph", tasks=("a",), reused=(), slots=1))
    quiet(TaskStarted(task="a", attempt=1))
    quiet(AttemptFinished(task="a", attempt=attempt, retry_in_s=60.0))
    quiet.beat()
    assert "… waiting to retry: a (in " in quiet.stream.getvalue()  # type: ignore[attr-defined]


# -- clear-state, clean ------------------------------------------------------------------------


def test_clear_state_without_a_state_creates_nothing(tmp_path: Path) -> None:
    for args in (["clear-state"], ["clear-state", "--report-dir", "typo"]):
        done = prompter_cli(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("nothing to clear: no state at ")
    assert list(tmp_path.iterdir()) == []  # no .prompter/, no typo/, no lock file


def test_clean_without_git_says_so(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    no_git = tmp_path / "bin"
    no_git.mkdir()
    done = prompter_cli("clean", cwd=tmp_path, env={**os.environ, "PATH": str(no_git)})
    assert done.returncode == 2
    assert done.stderr == "prompter: git is not installed (not found on PATH): cannot clean\n"


# -- init --------------------------------------------------------------------------------------

VALID = """[settings]
agent = "claude"

[[tasks]]
name = "tests"
prompt = "Add tests."
verify_command = "true"
depends_on = []
"""


def init_env(repo: Path, answer_text: str) -> dict[str, str]:
    return fake_claude_env(repo, [{"result": answer_text}])


def test_init_ctrl_d_at_the_question_writes_nothing_and_is_no_internal_error(
    tmp_path: Path,
) -> None:
    env = init_env(tmp_path, f"Here.\n\n```toml\n{VALID}```\n")
    code, out = prompter_in_pty(tmp_path, "init", env=env, answer=(b"[y/N] ", b"\x04"))
    assert code == 1, out
    assert b"not written: prompter.toml was not confirmed" in out
    assert b"internal error" not in out
    assert not (tmp_path / "prompter.toml").exists()


def test_init_force_keeps_the_files_permissions_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "prompter.toml"
    target.write_text("# mine\n")
    target.chmod(0o644)
    env = init_env(tmp_path, f"Here.\n\n```toml\n{VALID}```\n")
    done = prompter_cli("init", "--force", "--yes", cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    # As proposed, with the `verify_first = true` that `init` adds to new workflows.
    assert target.read_text() == VALID.replace("[settings]\n", "[settings]\nverify_first = true\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert not list(tmp_path.glob(".prompter-init-*"))


def test_init_terminated_stops_claude_and_exits_143(tmp_path: Path) -> None:
    """The Claude Code CLI has a process group of its own: SIGTERM to `prompter init` (a CI
    job's timeout) must not leave it working, and spending, after prompter is gone."""
    env = init_env(tmp_path, "")
    (tmp_path / "plan.json").write_text(json.dumps({"init": [{"hang": True}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "prompter", "init", "--yes"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    calls = tmp_path / "claude-state" / "calls.jsonl"
    deadline = time.monotonic() + 30
    while not calls.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    cli = json.loads(calls.read_text().splitlines()[0])["pid"]
    time.sleep(0.5)  # the CLI is waiting on its `sleep` child
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    try:
        assert proc.returncode == 143, err
        assert err == "prompter init: interrupted by SIGTERM: nothing written\n"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(cli, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the Claude Code CLI outlived prompter init")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli, signal.SIGKILL)  # its group: the CLI and its `sleep`
    assert not (tmp_path / "prompter.toml").exists()


def test_the_heartbeat_says_what_a_running_agent_last_reported() -> None:
    # Claude Code retrying an unreachable API backs off for minutes: the heartbeat says why a
    # task runs that long, until its attempt ends.
    import io

    from prompter.events import AgentNote, AttemptFinished, RunStarted, TaskStarted
    from prompter.progress import PlainProgress
    from prompter.records import AttemptRecord

    out = io.StringIO()
    progress = PlainProgress(out)
    progress(RunStarted(run_id="r", workflow="wf", mode="graph", tasks=("a",), reused=(), slots=1))
    progress(TaskStarted(task="a", attempt=1))
    progress(
        AgentNote(task="a", text="Claude Code is retrying (\x1b[31mred\x1b[0m; retry 3 of 10)")
    )
    progress.beat()
    lines = out.getvalue().splitlines()
    assert lines[-2].endswith("… a: Claude Code is retrying (\\x1b[31mred\\x1b[0m; retry 3 of 10)")
    assert "… running: a (" in lines[-1] and lines[-1].endswith(
        "; Claude Code is retrying (\\x1b[31mred\\x1b[0m; retry 3 of 10))"
    ), lines[-1]
    attempt = AttemptRecord(number=1, started_at=0.0, finished_at=1.0, reason="x")
    progress(AttemptFinished(task="a", attempt=attempt, retry_in_s=5.0))
    progress(TaskStarted(task="a", attempt=2))
    progress.beat()
    assert "retrying" not in out.getvalue().splitlines()[-1]
