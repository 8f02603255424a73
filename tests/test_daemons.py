"""No process outlives its task: daemons (`setsid`, double forks) are found and killed.

Real processes throughout: shells, `setsid`, `setsid -f`, double forks, and the real `prompter`
CLI. Each test's daemons sleep for a number of seconds nobody else uses (`sleep 9NNNNNNNNK`),
so /proc finds them by that argument; they report through FIFOs when they have escaped, so a
clean-up that merely came first cannot pass a test.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from prompter import processes
from prompter.processes import child, groups, run_process, supervise, sweep

from .harness import ClaudeHarness, Harness

pytestmark = pytest.mark.skipif(
    not sweep._sweep_supported(), reason="needs Linux with pidfds (the subreaper sweep)"
)


@pytest.fixture
def marker() -> str:
    return f"9{random.randrange(10**8, 10**9)}"


@pytest.fixture(autouse=True)
def _no_leftover_registered() -> Iterator[None]:
    yield
    assert not groups.live_groups
    assert not sweep._enclosures


def spawn_daemons(marker: str, tag: str, scrubbed: bool = False) -> str:
    """Shell code starting three daemons that leave the group: `setsid` in the background, a
    double fork, `setsid -f` (and with `scrubbed`, one more with an empty environment, so no
    token). It goes on once each has escaped, with their pids in $pids."""
    report = 'echo $$ > "$1"; exec /usr/bin/sleep ' + marker + tag
    code = (
        'd=$(mktemp -d); mkfifo "$d/a" "$d/b" "$d/c" "$d/d"; '
        f"setsid /bin/sh -c '{report}1' sh \"$d/a\" & "
        'read p1 < "$d/a"; '
        f"( ( /bin/sh -c '{report}2' sh \"$d/b\" & ) & ); "
        'read p2 < "$d/b"; '
        f"setsid -f /bin/sh -c '{report}3' sh \"$d/c\"; "
        'read p3 < "$d/c"; pids="$p1 $p2 $p3"; '
    )
    if scrubbed:
        code += (
            f"env -i /usr/bin/setsid -f /bin/sh -c '{report}4' sh \"$d/d\"; "
            'read p4 < "$d/d"; pids="$pids $p4"; '
        )
    return code + 'rm -r "$d"; '


def marked(marker: str) -> list[tuple[int, str]]:
    """Processes whose command line holds `marker`, with their state (Z for a zombie)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and int(name) != os.getpid():
            found.append((int(name), stat.rsplit(")", 1)[1].split()[0]))
    return found


def zombie_children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == parent:
                found.append(int(name))
    return found


def _gone_soon(pid: int) -> bool:
    """Whether the process has exited (a zombie at most) within 5 s."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 5)[0])
    finally:
        os.close(fd)


def kill_marked(marker: str) -> None:
    for pid, _ in marked(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


# --- run_process, while the caller owns its descendants ---------------------------------------


@pytest.fixture(params=["posix_spawn", "popen", "anyio"])
def layer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Both spawn paths of the lean layer, and the anyio fallback."""
    if request.param == "anyio":
        monkeypatch.setattr(supervise, "lean_supported", lambda: False)
    elif request.param == "posix_spawn":
        monkeypatch.chdir(tmp_path)
    else:
        monkeypatch.setattr(child, "_posix_spawn_fits", lambda *_: False)
    return str(request.param)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ending", "timeout"), [("exit 0", None), ("exit 3", None), ("sleep 100", 0.5)]
)
async def test_daemons_die_with_the_command_that_started_them(
    tmp_path: Path, marker: str, layer: str, ending: str, timeout: float | None
) -> None:
    try:
        async with processes.owning_descendants() as owning:
            assert owning
            with anyio.fail_after(20):
                result = await run_process(
                    sh(spawn_daemons(marker, "1") + ending), cwd=tmp_path, timeout=timeout
                )
            assert result.timed_out == (timeout is not None)
            if timeout is None:
                assert result.returncode == int(ending.split()[1])
            assert result.duration_s < 5  # a daemon holding the output pipe does not delay it
            assert marked(marker) == []
            assert zombie_children(os.getpid()) == []
    finally:
        kill_marked(marker)


@pytest.mark.anyio
async def test_a_running_command_keeps_its_daemons_while_another_one_ends(
    tmp_path: Path, marker: str, layer: str
) -> None:
    # A starts daemons (one with an emptied environment: no token), says so, and waits for B
    # to have ended; then they must still be there. A's own end takes them down.
    ready, done = tmp_path / "ready", tmp_path / "done"
    os.mkfifo(ready)
    os.mkfifo(done)
    script_a = (
        spawn_daemons(marker, "5", scrubbed=True)
        + f'echo > {ready}; read x < {done}; kill -0 $pids && echo "all alive"'
    )
    script_b = f"read x < {ready}; " + spawn_daemons(marker, "6") + "exit 0"
    results = {}
    b_ended = anyio.Event()

    async def run(name: str, script: str) -> None:
        results[name] = await run_process(sh(script), cwd=tmp_path, timeout=20)
        if name == "b":
            b_ended.set()

    try:
        async with processes.owning_descendants():
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(run, "a", script_a)
                    tg.start_soon(run, "b", script_b)
                    await b_ended.wait()  # B's end, its sweep included
                    assert [m for m in marked(marker) if f"{marker}6" in _cmd(m[0])] == []
                    await anyio.to_thread.run_sync(done.write_text, "\n")
            assert results["a"].output.strip() == "all alive", results["a"].output
            assert results["b"].ok
            assert marked(marker) == []  # A's own, and the token-less one at the latest here
            assert zombie_children(os.getpid()) == []
    finally:
        kill_marked(marker)


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.anyio
async def test_orphans_that_exit_by_themselves_are_reaped(tmp_path: Path, layer: str) -> None:
    """Orphans become prompter's children while it is a subreaper: one that exits by itself
    (here before the command ends: the shell waits until it is a zombie) must be reaped, in
    the command's session or out of it. No zombie is left, but a running command's leader."""
    zombie = 'until [ "$(cut -d" " -f3 /proc/$p/stat)" = Z ]; do :; done; '
    script = (
        "mkfifo a b; "
        "( ( /bin/sh -c 'echo $$ > a' & ) & ); read p < a; " + zombie + "echo $p; "
        "setsid -f /bin/sh -c 'echo $$ > b'; read p < b; " + zombie + "echo $p; "
        "exit 0"
    )
    async with processes.owning_descendants():
        with anyio.fail_after(20):
            result = await run_process(sh(script), cwd=tmp_path)
        assert result.ok, result.output
        orphans = [int(line) for line in result.output.split()]
        assert len(orphans) == 2
        assert zombie_children(os.getpid()) == []
        assert not any(Path(f"/proc/{pid}").exists() for pid in orphans)


@pytest.mark.anyio
async def test_a_stray_without_a_token_is_killed_when_nothing_else_runs(
    tmp_path: Path, marker: str, layer: str
) -> None:
    # It reports once it is in its own session, so the group's clean-up cannot have caught it.
    script = (
        "mkfifo f; env -i /usr/bin/setsid -f /bin/sh -c "
        f"'echo $$ > f; exec /usr/bin/sleep {marker}8' sh; read p < f; echo $p"
    )
    try:
        async with processes.owning_descendants():
            with anyio.fail_after(20):
                result = await run_process(sh(script), cwd=tmp_path)
            assert result.ok, result.output
            assert _gone_soon(int(result.output))
            assert marked(marker) == []
            assert zombie_children(os.getpid()) == []
    finally:
        kill_marked(marker)


@pytest.mark.anyio
async def test_terminate_all_also_kills_daemons(tmp_path: Path, marker: str) -> None:
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    script = spawn_daemons(marker, "7") + f'echo "$pids" > {ready}; sleep 100'
    try:
        async with processes.owning_descendants():
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: run_process(sh(script), cwd=tmp_path))
                    told = await anyio.to_thread.run_sync(ready.read_text)
                    daemons = [int(pid) for pid in told.split()]
                    assert len(daemons) == 3
                    processes.terminate_all()
                    # No waiting in terminate_all (the emergency exit follows it): they are
                    # dead (zombies, or gone) shortly after.
                    assert all([_gone_soon(pid) for pid in daemons])
            assert marked(marker) == []
            assert zombie_children(os.getpid()) == []
    finally:
        kill_marked(marker)


# --- the prompter CLI ---------------------------------------------------------------------------

CHECK = """\
import os, sys
from pathlib import Path
marker = Path(sys.argv[1]).read_text().strip()
prompter = int(sys.argv[2])
bad = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) in (os.getpid(), os.getppid()):
        continue
    try:
        cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if marker.encode() in cmdline:
        bad.append(f"{name} alive: {cmdline!r}")
    if fields[0] == "Z" and int(fields[1]) == prompter:
        bad.append(f"{name} zombie child of prompter")
print("leftovers:", bad or "none")
sys.exit(1 if bad else 0)
"""


def checker(root: Path, marker: str) -> str:
    """Shell code failing when a marked process or a zombie child of prompter ($PPID of the
    shell prompter started) exists; the marker is read from a file so no command line holds it."""
    (root / "check.py").write_text(CHECK)
    (root / "marker").write_text(marker)
    return f"{sys.executable} {root / 'check.py'} {root / 'marker'} $PPID"


def test_no_daemon_outlives_an_attempt_of_the_cli_pass_fail_or_timeout(
    tmp_path: Path, marker: str
) -> None:
    """One task, four attempts: the agent times out; the check fails; the check times out;
    both pass. Agent and check start daemons in every attempt; each agent from the second on,
    and a task after it, verify that none is left (and no zombie child of prompter)."""
    h = Harness(tmp_path)
    check = checker(tmp_path, marker)
    counter = tmp_path / "attempt"
    agent = (
        f'a="$1"; if [ "$a" != 1 ]; then {check} || exit 97; fi; '
        + spawn_daemons(marker, "3")
        + f'echo "$a" > {counter}; if [ "$a" = 1 ]; then exec sleep 100; fi'
    )
    verify = (
        spawn_daemons(marker, "4")
        + f'a=$(cat {counter}); [ "$a" = 2 ] && exit 1; [ "$a" = 3 ] && exec sleep 100; exit 0'
    )
    h.task(
        "daemons",
        agent_command=["/bin/sh", "-c", agent, "agent", "{attempt}"],
        verify_command=verify,
        max_attempts=4,
        timeout=5,
        verify_timeout=5,
    )
    h.task("after", agent_command=["/bin/sh", "-c", check], depends_on=["daemons"])
    try:
        proc = h.spawn()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        tasks = json.loads((tmp_path / ".prompter" / "state.json").read_text())["tasks"]
        reasons = [a.get("reason") for a in tasks["daemons"]["attempts"]]
        assert reasons == [
            "agent timed out after 5 s",
            "verify_command exited 1 (expected 0)",
            "verify_command timed out after 5 s",
            None,
        ], reasons
        assert tasks["after"]["status"] == "passed"
        assert marked(marker) == []
    finally:
        kill_marked(marker)


def test_concurrent_cli_tasks_keep_each_others_daemons(tmp_path: Path, marker: str) -> None:
    """`long` starts daemons and waits for `short` and `then` (which ran after `short` ended, so
    after its sweep); its daemons must still be alive then, also the one without a token."""
    h = Harness(tmp_path)
    ready, done = tmp_path / "ready", tmp_path / "done"
    os.mkfifo(ready)
    os.mkfifo(done)
    long = (
        spawn_daemons(marker, "5", scrubbed=True)
        + f"echo > {ready}; read x < {done}; kill -0 $pids"
    )
    h.task("long", agent_command=["/bin/sh", "-c", long], depends_on=[])
    short = spawn_daemons(marker, "6")
    h.task(
        "short",
        agent_command=["/bin/sh", "-c", f"read x < {ready}; {short}"],
        verify_command=short,
        depends_on=[],
    )
    h.task(
        "then",
        agent_command=["/bin/sh", "-c", f"echo > {done}"],
        depends_on=["short"],
    )
    try:
        proc = h.spawn()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
        assert marked(marker) == []
    finally:
        kill_marked(marker)


@pytest.mark.parametrize("second", [False, True])
def test_a_run_stopped_by_sigterm_leaves_no_daemon(
    tmp_path: Path, marker: str, second: bool
) -> None:
    """SIGTERM (and, with `second`, then SIGINT: the emergency exit, with agents that ignore
    SIGTERM) while agents with daemons run."""
    h = Harness(tmp_path)
    ready = tmp_path / "ready"
    os.mkfifo(ready)
    trap = "trap '' TERM; " if second else ""
    for n in (1, 2):
        agent = trap + spawn_daemons(marker, str(n)) + f'echo "$pids" > {ready}; sleep 100'
        h.task(f"t{n}", agent_command=["/bin/sh", "-c", agent], depends_on=[])
    try:
        proc = h.spawn()
        daemons: list[str] = []
        while len(daemons) < 6:  # each open returns once a writer has written and closed it
            with open(ready) as f:
                daemons += f.read().split()
        proc.send_signal(signal.SIGTERM)  # with `second`, the agents ignore it: a 2 s grace …
        if second:
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)  # … unless told again: the emergency exit, 130
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == (130 if second else 143), out + err
        # After the emergency exit's SIGKILL the kernel may need a moment to finish them.
        assert [pid for pid in map(int, daemons) if not _gone_soon(pid)] == []
        assert [pid for pid, _ in marked(marker) if not _gone_soon(pid)] == []
    finally:
        kill_marked(marker)


def test_prompter_is_a_subreaper_only_during_a_run() -> None:
    libc = ctypes.CDLL(None, use_errno=True)

    def subreaper() -> int:
        value = ctypes.c_int(-1)
        assert libc.prctl(37, ctypes.byref(value), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
        return value.value

    async def run() -> int:
        async with processes.owning_descendants():
            return subreaper()

    assert anyio.run(run) == 1
    assert subreaper() == 0


def test_daemons_of_claude_code_tools_die_with_the_query(tmp_path: Path, marker: str) -> None:
    """The Claude CLI (the fake one, through the real SDK) runs a command that starts daemons:
    in a query that answers (`after` checks, while `hangs` may still run, that they are gone),
    and in one that times out."""
    h = ClaudeHarness(tmp_path)
    pids = tmp_path / "pids"
    bash = [spawn_daemons(marker, tag) + f'echo "$pids" >> {pids}' for tag in "12"]
    h.claude("answers", [{"bash": bash[0]}], depends_on=[])
    h.claude("hangs", [{"bash": bash[1], "stall": True}], timeout=6, max_attempts=1, depends_on=[])
    h.task(
        "after",
        agent="command",
        agent_command=["/bin/sh", "-c", checker(tmp_path, marker + "1")],
        depends_on=["answers"],
    )
    try:
        proc = h.spawn()
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, out + err  # `hangs` timed out
        status = h.tasks_status()
        assert status["answers"] == ("passed", None)
        assert status["hangs"] == ("failed", "agent timed out after 6 s")
        assert status["after"] == ("passed", None)
        assert len(pids.read_text().split()) == 6
        assert [pid for pid in map(int, pids.read_text().split()) if not _gone_soon(pid)] == []
        assert marked(marker) == []
    finally:
        kill_marked(marker)
