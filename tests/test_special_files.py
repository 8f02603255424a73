"""A FIFO, a socket or a directory where prompter expects one of its files (state, journal, lock,
task log, junit.xml, summary.md) is one clear message and a documented exit code, at once:
never a hang (a FIFO blocks whoever opens it), never a signal left unanswered.

Each case runs the real `prompter` in a subprocess with a timeout: a hang fails the test.
"""

from __future__ import annotations

import array
import fcntl
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Harness

LIMIT_S = 3.0  # what "at once" means here: python's start-up plus a few file operations

KINDS = {"fifo": "a FIFO", "socket": "a socket"}
# A directory in those places was already refused, except as the lock (for `status`); the tests
# of the other places are in test_state.py, test_reports.py and test_robustness_run.py.


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def make(path: Path, kind: str, sockets: list[socket.socket]) -> None:
    """A `kind` special file at `path`, where a regular file is expected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        # Bound in a short folder (sun_path holds ~108 bytes), then moved: it stays a socket.
        short = Path(tempfile.mkdtemp(prefix="pr-"))
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(short / "s"))
        sockets.append(s)
        os.rename(short / "s", path)
        short.rmdir()


def is_kind(path: Path, kind: str) -> bool:
    mode = path.lstat().st_mode
    return {"fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK}[kind](mode)


def cli_in_time(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI from the harness root; it must end within LIMIT_S (a hang fails)."""
    start = time.monotonic()
    done = h.cli(*args, timeout=LIMIT_S)
    assert time.monotonic() - start <= LIMIT_S
    return done


@pytest.fixture
def h(h: Harness) -> Harness:
    """The shared harness with one task, `a`, written."""
    h.task("a", depends_on=[])
    h.write()
    return h


def ran(h: Harness) -> None:
    """A state with a record and the reports, as a run leaves them."""
    assert h.run() == 0
    for name in ("junit.xml", "summary.md"):
        (h.root / ".prompter" / name).unlink()


COMMANDS = {
    "status": ("status",),
    "status --json": ("status", "--json"),
    "report": ("report",),
    "run": ("run", "--progress", "none", "prompter.toml"),
    "plan": ("plan", "prompter.toml"),
    "clear-state": ("clear-state",),
}


# -- the state and its journal ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["state.json", "state.json.journal"])
@pytest.mark.parametrize("command", ["status", "report", "run", "clear-state"])
def test_a_special_state_file_is_refused_with_exit_2(
    h: Harness, sockets: list[socket.socket], command: str, name: str, kind: str
) -> None:
    path = h.root / ".prompter" / name
    make(path, kind, sockets)
    done = cli_in_time(h, *COMMANDS[command])
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr == f"prompter: .prompter/{name}: is {KINDS[kind]}, not a prompter state file\n"
    )
    assert is_kind(path, kind)  # left as it was
    assert h.calls() == []


@pytest.mark.parametrize("command", ["status", "report", "run"])
def test_a_device_as_the_state_is_refused_with_exit_2(h: Harness, command: str) -> None:
    path = h.root / ".prompter" / "state.json"
    path.parent.mkdir()
    path.symlink_to(os.devnull)  # the link is followed: what counts is what it leads to
    done = cli_in_time(h, *COMMANDS[command])
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "prompter: .prompter/state.json: is a character device, not a prompter state file\n"
    )
    assert path.is_symlink()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["state.json", "state.json.journal"])
def test_plan_warns_about_a_special_state_file_and_plans(
    h: Harness, sockets: list[socket.socket], name: str, kind: str
) -> None:
    make(h.root / ".prompter" / name, kind, sockets)
    done = cli_in_time(h, *COMMANDS["plan"])
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        f"prompter: warning: .prompter/{name}: is {KINDS[kind]}, not a prompter state file; "
        "planned without measured durations\n"
    )
    assert "critical path: a" in done.stdout


# -- the lock -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "socket"])
@pytest.mark.parametrize("command", ["status", "status --json", "run"])
def test_a_special_lock_file_is_refused_with_exit_2(
    h: Harness, sockets: list[socket.socket], command: str, kind: str
) -> None:
    ran(h)
    path = h.root / ".prompter" / "state.json.lock"
    path.unlink()
    make(path, kind, sockets)
    done = cli_in_time(h, *COMMANDS[command])
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"prompter: .prompter/state.json.lock: is {KINDS[kind]}, not a regular file; move it away\n"
    )
    assert is_kind(path, kind)


def test_status_refuses_a_lock_file_that_is_a_directory(h: Harness) -> None:
    ran(h)
    path = h.root / ".prompter" / "state.json.lock"
    path.unlink()
    path.mkdir()
    done = cli_in_time(h, "status")
    assert done.returncode == 2, done.stderr
    assert done.stderr == "prompter: .prompter/state.json.lock: Is a directory; move it away\n"
    assert path.is_dir()


# -- task logs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_special_task_log_stops_the_run_before_anything_runs(
    h: Harness, sockets: list[socket.socket], kind: str
) -> None:
    h.task("b", depends_on=["a"])
    h.write()
    path = h.root / ".prompter" / "logs" / "b.log"
    make(path, kind, sockets)
    done = cli_in_time(h, *COMMANDS["run"])
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"prompter: .prompter/logs/b.log: is {KINDS[kind]}, not a regular file (the log of task "
        "`b` goes there); move it away\n"
    )
    assert h.calls() == []
    assert is_kind(path, kind)


def test_a_task_log_that_becomes_a_fifo_during_the_run_fails_that_task_at_once(
    h: Harness,
) -> None:
    """Made after the run's check, by an earlier task: the task that logs there fails with the
    reason, the run goes on, and nothing waits for a reader."""
    h.tasks.clear()
    h.task("maker", depends_on=[], verify_command="mkfifo ../.prompter/logs/b.log")
    h.task("b", depends_on=["maker"], max_attempts=1)
    h.task("c", depends_on=["maker"])
    h.write()
    done = cli_in_time(h, *COMMANDS["run"])
    assert done.returncode == 1, done.stderr
    assert h.tasks_status() == {
        "maker": ("passed", None),
        "b": (
            "failed",
            "cannot open the task log .prompter/logs/b.log: is a FIFO, not a regular file",
        ),
        "c": ("passed", None),
    }
    assert stat.S_ISFIFO((h.root / ".prompter" / "logs" / "b.log").lstat().st_mode)


def test_sigterm_is_honoured_while_a_task_log_is_a_fifo(h: Harness) -> None:
    """SIGTERM as the run meets a FIFO where a log goes: it stops (143), or it had already
    ended (1), within the limit. Before, it blocked in open() for good, deaf to signals."""
    h.tasks.clear()
    h.task("maker", depends_on=[], verify_command="mkfifo ../.prompter/logs/b.log")
    h.task("b", depends_on=["maker"], max_attempts=1)
    proc = h.spawn()
    try:
        fifo = h.root / ".prompter" / "logs" / "b.log"
        deadline = time.monotonic() + 30
        while not fifo.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "no FIFO made"
            time.sleep(0.01)
        time.sleep(0.2)  # the run reaches task b
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=LIMIT_S)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode in (143, 1)


# -- junit.xml and summary.md -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["junit.xml", "summary.md"])
def test_report_refuses_a_special_file_where_a_report_goes(
    h: Harness, sockets: list[socket.socket], name: str, kind: str
) -> None:
    ran(h)
    path = h.root / ".prompter" / name
    make(path, kind, sockets)
    done = cli_in_time(h, "report", "--format", "junit" if name == "junit.xml" else "markdown")
    assert done.returncode == 2, done.stderr
    what = f"is {KINDS[kind]}, not a regular file"
    assert done.stderr == f"prompter: .prompter/{name}: cannot write: {what}\n"
    assert is_kind(path, kind)
    assert [p.name for p in (h.root / ".prompter").iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["junit.xml", "summary.md"])
def test_run_warns_about_a_special_file_where_a_report_goes_and_keeps_its_exit_code(
    h: Harness, sockets: list[socket.socket], name: str, kind: str
) -> None:
    path = h.root / ".prompter" / name
    make(path, kind, sockets)
    done = cli_in_time(h, *COMMANDS["run"])
    assert done.returncode == 0, done.stderr
    what = f"is {KINDS[kind]}, not a regular file"
    assert done.stderr == f"prompter: warning: reports not written: .prompter/{name}: {what}\n"
    assert is_kind(path, kind)
    assert h.tasks_status() == {"a": ("passed", None)}


def test_the_action_reads_no_log_that_is_a_fifo(tmp_path: Path) -> None:
    """The action quotes a failed task's log in its annotations: a FIFO there is no log."""
    fifo = tmp_path / "a.log"
    os.mkfifo(fifo)
    code = (
        "import sys; from pathlib import Path; from prompter.github.action import _log_tail; "
        "print(_log_tail(Path(sys.argv[1]), 0))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fifo)],
        capture_output=True,
        text=True,
        timeout=LIMIT_S * 2,  # imports the action's modules
        check=True,
    )
    assert done.stdout == "(log not readable: is a FIFO, not a regular file)\n"


# -- a signal, whatever the run is stuck on -------------------------------------------------------


def stuck_run(h: Harness) -> subprocess.Popen[str]:
    """A run whose console is a pipe nobody reads: once it is full (64 KiB), the event loop
    blocks in write(), where the loop's own signal handling cannot run."""
    h.tasks.clear()
    h.settings.update(agent_command=["true"], max_parallel_tasks=4)
    for i in range(300):
        h.task(f"t{i:03d}-{'x' * 150}", depends_on=[])
    proc = h.spawn()  # stdout is a pipe: never read here
    assert proc.stdout is not None
    full = fcntl.fcntl(proc.stdout.fileno(), F_GETPIPE_SZ) - 4096  # a line more does not fit
    deadline = time.monotonic() + 60
    while unread(proc.stdout.fileno()) < full:
        assert time.monotonic() < deadline and proc.poll() is None, "the run never got stuck"
        time.sleep(0.05)
    time.sleep(0.5)  # the next line does not fit
    assert proc.poll() is None
    return proc


F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def unread(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_a_run_stuck_on_its_console_within_the_deadline(
    h: Harness, signum: int
) -> None:
    from prompter.signals import STOP_WITHIN_S

    proc = stuck_run(h)
    try:
        start = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=STOP_WITHIN_S + LIMIT_S)
        assert time.monotonic() - start >= STOP_WITHIN_S - 0.5  # the orderly stop had its time
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 128 + signum


def test_a_second_signal_ends_a_stuck_run_at_once(h: Harness) -> None:
    proc = stuck_run(h)
    try:
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=LIMIT_S)
        assert time.monotonic() - start < 1.5
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143
