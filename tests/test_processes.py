"""run_process against real processes: exit codes, output capture, process-group clean-up."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prompter.processes import (
    ProcessResult,
    child,
    groups,
    readable,
    run_process,
    supervise,
    terminate_all,
)

# Everything readable() must have removed: C0 except \t and \n, DEL, C1 (ESC is in C0), and the
# bidirectional embeddings, overrides and isolates, which reorder how text displays.
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(autouse=True, params=["posix_spawn", "popen", "anyio"])
def _every_process_layer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every test runs on the pidfd/epoll layer, starting children with posix_spawn (the test
    runs in the children's directory, tmp_path) and with Popen, and on the anyio fallback used
    without pidfd."""
    if request.param == "anyio":
        monkeypatch.setattr(supervise, "lean_supported", lambda: False)
        return
    assert child.lean_supported(), "this kernel has no pidfd_open: the lean layer is off"
    if request.param == "posix_spawn":
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.setattr(child, "_posix_spawn_fits", lambda *_: False)


@pytest.fixture(autouse=True)
def _no_group_left_registered() -> Iterator[None]:
    yield
    assert not groups.live_groups


@pytest.fixture(autouse=True)
def _no_fd_leaked() -> Iterator[None]:
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert set(os.listdir("/proc/self/fd")) <= before


class Watch(io.BytesIO):
    """A log that lets a test wait until the child has printed `marker`."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker
        self.seen = anyio.Event()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        written = super().write(data)
        if self.marker in self.getvalue():
            self.seen.set()
        return written


def live_members(pgid: int) -> list[int]:
    """Processes in group `pgid` that are not zombies (orphaned zombies are init's to reap)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(entry))
    return members


async def assert_group_gone(pgid: int) -> None:
    # SIGKILL is delivered asynchronously: a member that did not hold the pipe may take a moment
    # to finish dying after run_process returned. Bounded, test-only wait.
    for _ in range(100):
        if not live_members(pgid):
            break
        await anyio.sleep(0.02)
    assert live_members(pgid) == []
    with pytest.raises(ChildProcessError):  # the leader was reaped: no zombie of ours
        os.waitpid(pgid, os.WNOHANG)


def first_int(text: str) -> int:
    match = re.search(r"\d+", text)
    assert match, text
    return int(match.group())


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


# --- readable -----------------------------------------------------------------------------------


def test_readable_examples() -> None:
    assert readable(b"\x1b[1;31mred\x1b[0m plain") == "red plain"
    assert readable(b"\x1b]0;window title\x07text\x1b]8;;http://x\x1b\\link") == "textlink"
    assert readable(b"a\r\nb\rc\n") == "a\nb\nc\n"
    assert readable(b"tab\tnul\x00bell\x07del\x7f") == "tab\tnulbelldel"
    assert readable(b"\xff\xfeok \xe2\x82\xac") == "\ufffd\ufffdok €"
    assert readable(b"\x1b(Bcharset \x1b7saved\x1b8") == "charset saved"
    # Trojan-source style reordering: shown in logical order (marks like U+200F stay).
    assert readable("a\u202eevil\u202c b\u2067c\u2069 \u200fd".encode()) == "aevil bc \u200fd"
    # An unterminated OSC must not swallow the rest of the output.
    assert readable(b"\x1b]0;no end\nstill here") == "0;no end\nstill here"


hostile_bytes = st.lists(
    st.sampled_from(
        [
            *(b"\x1b", b"[", b"]", b"\x07", b"\\", b"\r", b"\n", b"\x00", b"\x9b", b"\xc2\x9b"),
            *(b"\xc2\x9c", b"\xff", b"\xe2\x82", b"m", b"0", b";", b"P", b"(", b"a", b"\t", b" "),
        ]
    ),
    max_size=60,
).map(b"".join)


@given(st.binary(max_size=4000) | hostile_bytes)
def test_readable_never_raises_and_leaves_no_controls(data: bytes) -> None:
    text = readable(data)
    assert FORBIDDEN.search(text) is None
    assert "\x1b" not in text and "\r" not in text
    assert readable(text.encode()) == text  # nothing left to clean


# --- results and output -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_exit_codes(tmp_path: Path) -> None:
    ok = await run_process(["true"], cwd=tmp_path)
    assert ok == ProcessResult(0, False, ok.duration_s, "", 0)
    assert ok.ok
    failed = await run_process(sh("exit 3"), cwd=tmp_path)
    assert (failed.returncode, failed.ok, failed.timed_out) == (3, False, False)
    killed = await run_process(sh("kill -TERM $$"), cwd=tmp_path)
    assert killed.returncode == -signal.SIGTERM
    assert not killed.ok


@pytest.mark.anyio
async def test_output_merged_in_order_and_logged(tmp_path: Path) -> None:
    log = io.BytesIO()
    result = await run_process(
        sh("echo one; echo two >&2; echo three; printf four >&2"), cwd=tmp_path, log=log
    )
    assert result.output == "one\ntwo\nthree\nfour"
    assert log.getvalue() == b"one\ntwo\nthree\nfour"
    assert result.output_bytes == 18
    assert not log.closed


@pytest.mark.anyio
async def test_cwd_env_stdin_and_own_session(tmp_path: Path) -> None:
    code = (
        "import os, sys; print(os.getcwd()); print(os.environ['FOO']); "
        "print(sys.stdin.read() == ''); print(os.getsid(0) == os.getpgrp() == os.getpid())"
    )
    result = await run_process([sys.executable, "-c", code], cwd=tmp_path, env={"FOO": "bar"})
    assert result.output.split("\n") == [str(tmp_path), "bar", "True", "True", ""]


@pytest.mark.anyio
async def test_the_program_is_found_on_the_path_of_its_environment(tmp_path: Path) -> None:
    # posix_spawnp would search prompter's own PATH: a different one must still be honoured.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "only-here").write_text("#!/bin/sh\necho found\n")
    (bin_dir / "only-here").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = await run_process(["only-here"], cwd=tmp_path, env=env)
    assert (result.returncode, result.output) == (0, "found\n")
    missing = await run_process(["only-here"], cwd=tmp_path)
    assert missing.spawn_error == "command not found: only-here"


@pytest.mark.anyio
async def test_no_inherited_descriptor_reaches_the_child(tmp_path: Path) -> None:
    # Like a descriptor prompter's own parent leaked to it (a shell's `exec 7>file`, a make
    # jobserver): Popen closes it in the child, so posix_spawn must too.
    leaked = os.open(tmp_path / "leaked", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(leaked, True)
    child._inherited_fds.cache_clear()
    try:
        result = await run_process(["ls", "/proc/self/fd"], cwd=tmp_path)
    finally:
        os.close(leaked)
        child._inherited_fds.cache_clear()
    assert sorted(int(fd) for fd in result.output.split()) == [0, 1, 2, 3]  # 3: ls's listing


@pytest.mark.anyio
async def test_signals_python_ignores_are_default_again_in_the_child(tmp_path: Path) -> None:
    # Python ignores SIGPIPE; a child that inherited that would loop on EPIPE in a pipeline
    # (`yes | head -1`) instead of dying quietly.
    result = await run_process(["grep", "^SigIgn:", "/proc/self/status"], cwd=tmp_path)
    ignored = int(result.output.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


@pytest.mark.anyio
async def test_posix_spawn_starts_children_only_in_our_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    layer = request.node.callspec.params["_every_process_layer"]
    started: list[str] = []
    spawn = child._posix_spawn

    def spy(argv: list[str], env: dict[str, str] | None, output: int) -> int:
        started.append(argv[0])
        return spawn(argv, env, output)

    monkeypatch.setattr(child, "_posix_spawn", spy)
    here = await run_process(["true"], cwd=Path.cwd())
    elsewhere = await run_process(["true"], cwd=tmp_path.parent)
    assert here.ok and elsewhere.ok
    # posix_spawn cannot change directory: elsewhere, Popen starts the child.
    assert started == (["true"] if layer == "posix_spawn" else [])


@pytest.mark.anyio
async def test_head_and_tail_are_kept_and_the_middle_counted(tmp_path: Path) -> None:
    async def run(head: int, tail: int) -> ProcessResult:
        return await run_process(
            ["printf", "abcdefghij"], cwd=tmp_path, head_bytes=head, tail_bytes=tail
        )

    assert (await run(3, 4)).output == "abc\n[… 3 bytes omitted …]\nghij"
    assert (await run(6, 4)).output == "abcdefghij"
    assert (await run(20, 0)).output == "abcdefghij"
    nothing = await run(0, 0)
    assert (nothing.output, nothing.output_bytes) == ("\n[… 10 bytes omitted …]\n", 10)


# --- timeouts -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    result = await run_process(sh("echo $$; sleep 100 & sleep 100"), cwd=tmp_path, timeout=0.5)
    assert result.timed_out and not result.ok
    assert result.returncode == -signal.SIGTERM
    assert 0.5 <= result.duration_s < 2.5
    await assert_group_gone(first_int(result.output))


@pytest.mark.anyio
async def test_timeout_lets_the_process_clean_up_within_grace(tmp_path: Path) -> None:
    script = "trap 'echo cleaning up; exit 7' TERM; echo $$; sleep 100 & wait"
    result = await run_process(sh(script), cwd=tmp_path, timeout=0.5)
    assert result.timed_out
    assert result.returncode == 7
    assert result.output.endswith("cleaning up\n")
    await assert_group_gone(first_int(result.output))


@pytest.mark.anyio
async def test_process_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    # The ignored disposition is inherited by `sleep`, so the whole group shrugs off SIGTERM.
    result = await run_process(
        sh("trap '' TERM; echo $$; sleep 100"), cwd=tmp_path, timeout=0.3, grace_s=0.5
    )
    assert result.timed_out
    assert result.returncode == -signal.SIGKILL
    assert 0.8 <= result.duration_s < 3
    await assert_group_gone(first_int(result.output))


# --- cancellation -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cancellation_kills_the_group_and_propagates(tmp_path: Path) -> None:
    log = Watch(b"\n")
    started = time.monotonic()
    with anyio.move_on_after(0.5) as scope:
        await run_process(sh("echo $$; sleep 100 & sleep 100"), cwd=tmp_path, log=log)
        pytest.fail("run_process returned instead of propagating the cancellation")
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2.5
    await assert_group_gone(first_int(log.getvalue().decode()))


@pytest.mark.anyio
async def test_cancelled_run_still_reads_output_during_grace(tmp_path: Path) -> None:
    log = Watch(b"ready")
    script = "trap 'echo bye; exit 0' TERM; echo $$ ready; sleep 100 & wait"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_process(sh(script), cwd=tmp_path, log=log))
        await log.seen.wait()
        tg.cancel_scope.cancel()
    assert log.getvalue().endswith(b"bye\n")
    await assert_group_gone(first_int(log.getvalue().decode()))


@pytest.mark.anyio
async def test_cancellation_sigkills_a_process_ignoring_sigterm(tmp_path: Path) -> None:
    log = Watch(b"ready")
    started = time.monotonic()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: run_process(
                    sh("trap '' TERM; echo $$ ready; sleep 100"), cwd=tmp_path, log=log, grace_s=0.4
                )
            )
            await log.seen.wait()
            scope.cancel()
    assert 0.4 <= time.monotonic() - started < 3
    await assert_group_gone(first_int(log.getvalue().decode()))


# --- leftovers ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_background_children_are_killed_when_the_leader_exits(tmp_path: Path) -> None:
    # One child holds the output pipe open (which would hang a naive reader), one does not.
    script = "echo $$; sleep 100 & sleep 100 >/dev/null 2>&1 & echo done"
    with anyio.fail_after(10):
        result = await run_process(sh(script), cwd=tmp_path)
    assert result.ok
    assert result.output.endswith("done\n")
    assert result.duration_s < 2
    await assert_group_gone(first_int(result.output))


@pytest.mark.anyio
async def test_a_process_escaping_the_group_does_not_hang_us(tmp_path: Path) -> None:
    # setsid puts the child in a session of its own, out of our reach; it keeps the pipe open.
    # The leader waits on a FIFO until then, or our clean-up would kill it before it escapes.
    script = (
        "mkfifo escaped; setsid sh -c 'echo escaped $$; echo > escaped; exec sleep 100' & "
        "read line < escaped; echo done"
    )
    with anyio.fail_after(10):
        result = await run_process(sh(script), cwd=tmp_path)
    escaped = first_int(result.output.partition("escaped")[2])
    try:
        assert result.returncode == 0
        assert result.duration_s < 3
    finally:
        os.kill(escaped, signal.SIGKILL)


@pytest.mark.anyio
async def test_terminate_all_kills_every_running_group(tmp_path: Path) -> None:
    terminate_all()  # nothing running: a no-op
    logs = [Watch(b"ready"), Watch(b"ready")]
    results: list[ProcessResult] = []

    async def run(log: Watch) -> None:
        results.append(await run_process(sh("echo ready; sleep 100"), cwd=tmp_path, log=log))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for log in logs:
                tg.start_soon(run, log)
            for log in logs:
                await log.seen.wait()
            terminate_all()
    assert [(r.returncode, r.timed_out) for r in results] == [(-signal.SIGKILL, False)] * 2


# --- spawn errors -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_spawn_errors_are_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("not a program\n")
    (tmp_path / "orphan.sh").write_text("#!/nonexistent/interpreter\n")
    (tmp_path / "orphan.sh").chmod(0o755)
    cases = [
        (["no-such-command-xyz"], tmp_path, "command not found: no-such-command-xyz"),
        (["./data.txt"], tmp_path, "permission denied: ./data.txt"),
        (["./orphan.sh"], tmp_path, "interpreter not found for: ./orphan.sh"),
        (["true"], tmp_path / "nope", f"no such directory: {tmp_path / 'nope'}"),
        (["true"], tmp_path / "data.txt", f"not a directory: {tmp_path / 'data.txt'}"),
        ([], tmp_path, "empty command"),
        (["tr\0ue"], tmp_path, "invalid command 'tr\\x00ue': embedded null byte"),
    ]
    for argv, cwd, message in cases:
        result = await run_process(argv, cwd=cwd)
        assert result.spawn_error == message
        assert (result.returncode, result.timed_out, result.ok) == (None, False, False)
        assert (result.output, result.output_bytes) == ("", 0)


# --- hostile output -----------------------------------------------------------------------------

MAKE_BLOCK = r"""
piece = (
    b"\x00\x01 nul \xff\xfe\xc3( invalid \xe2\x82 \x1b[31mred\x1b[0m \x1b]0;title\x07 \r\n"
    + b"x" * 200_000 + b"\x1b[2K\r" + bytes(range(256)) + b"\x1b]8;;unterminated"
)
block = (piece * (2**20 // len(piece) + 1))[: 2**20]
"""
PRODUCER = MAKE_BLOCK + "import sys\nfor _ in range(100): sys.stdout.buffer.write(block)\n"
RUNNER = r"""
import json, sys
from pathlib import Path
import anyio
from prompter.processes import run_process

async def main():
    with open(sys.argv[2], "wb") as log:
        return await run_process([sys.executable, "-c", sys.argv[1]], cwd=Path.cwd(), log=log)

result = anyio.run(main)
# VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's size across exec (Linux), so a
# big pytest process would count against us. VmHWM is this program's own peak, in KiB.
status = Path("/proc/self/status").read_text()
peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
print(json.dumps({"returncode": result.returncode, "output": result.output,
                  "output_bytes": result.output_bytes, "peak_kib": peak}))
"""


def test_hostile_output_is_bounded_logged_and_readable(tmp_path: Path) -> None:
    # A fresh interpreter, so only run_process's own memory counts towards the peak.
    log_path = tmp_path / "output.log"
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, PRODUCER, str(log_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout)
    total = 100 * 2**20
    assert report["returncode"] == 0
    assert report["output_bytes"] == total
    assert report["peak_kib"] < 100 * 1024

    namespace: dict[str, bytes] = {}
    exec(MAKE_BLOCK, namespace)
    expected = hashlib.sha256()
    for _ in range(100):
        expected.update(namespace["block"])
    logged = hashlib.sha256()
    with log_path.open("rb") as log:
        while chunk := log.read(2**20):
            logged.update(chunk)
    assert log_path.stat().st_size == total
    assert logged.hexdigest() == expected.hexdigest()

    output = report["output"]
    marker = f"\n[… {total - 8 * 1024 - 56 * 1024} bytes omitted …]\n"
    assert marker in output
    assert len(output) <= 8 * 1024 + 56 * 1024 + len(marker)
    assert FORBIDDEN.search(output) is None
