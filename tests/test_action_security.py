"""The action's own defences, run on this machine as the runner runs its entrypoint (as root).

The container test (test_container_security.py) shows what agent code can reach; these show
what the action does around it and gives back: the runner's file-command folder is root's alone
while agents run and the runner user's again after, also when a second signal ends prompter at
once; a root-owned workspace is lent to uid 65532 and returned to root.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .action_step import ENTRYPOINT
from .harness import needs_root
from .runner_model import outputs

RUNNER_UID = 1001
LENT_UID = 65532

WORKFLOW = """\
[settings]
agent = "command"
# Deaf to SIGTERM: a stop waits out its grace period, when a second signal can come.
agent_command = ["sh", "-c", "trap '' TERM; id -u > agent-uid.txt; sleep $PAUSE"]
isolation = "shared"

[[tasks]]
name = "work"
prompt = "go"
verify_command = "test $(id -u) = 65532"
depends_on = []
"""


@pytest.fixture
def root() -> Iterator[Path]:
    """A folder other users can pass through (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="prompter-action-security-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def start(root: Path, pause: str) -> tuple[subprocess.Popen[str], Path, Path]:
    ws = root / "workspace"
    ws.mkdir()
    (ws / "prompter.toml").write_text(WORKFLOW, "utf-8")
    files = root / "file_commands"
    files.mkdir(mode=0o755)
    for name in ("set_output_1", "set_env_1", "step_summary_1"):
        (files / name).touch()
        os.chown(files / name, RUNNER_UID, RUNNER_UID)
    os.chown(files, RUNNER_UID, RUNNER_UID)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "PAUSE": pause,
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(ws),
        "GITHUB_OUTPUT": str(files / "set_output_1"),
        "GITHUB_ENV": str(files / "set_env_1"),
        "GITHUB_STEP_SUMMARY": str(files / "step_summary_1"),
        "INPUT_WORKFLOW": "prompter.toml",
        "INPUT_UPLOAD_ARTIFACT": "false",
    }
    proc = subprocess.Popen(
        [str(ENTRYPOINT)],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, ws, files


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"not started (exit {proc.poll()})"


def runner_owns(files: Path) -> bool:
    st = files.stat()
    return st.st_uid == RUNNER_UID and stat.S_IMODE(st.st_mode) == 0o755


def test_the_file_commands_are_locked_while_agents_run_and_the_workspace_lent(
    root: Path,
) -> None:
    needs_root()
    proc, ws, files = start(root, "1")
    try:
        wait_for(ws / "agent-uid.txt", proc)
        # While the agent works: the runner's folder is root's alone, the workspace lent.
        st = files.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
        assert ws.stat().st_uid == LENT_UID
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert (ws / "agent-uid.txt").read_text() == f"{LENT_UID}\n"
    assert runner_owns(files)
    assert all(p.stat().st_uid == RUNNER_UID for p in files.iterdir())
    assert outputs((files / "set_output_1").read_text("utf-8"))["status"] == "passed"
    not_roots = [str(p) for p in [ws, *ws.rglob("*")] if p.lstat().st_uid != 0]
    assert not not_roots, not_roots[:20]


def test_a_second_signal_still_gives_the_runners_files_back(root: Path) -> None:
    needs_root()
    proc, ws, files = start(root, "60")
    try:
        wait_for(ws / "agent-uid.txt", proc)
        assert files.stat().st_uid == 0
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # no more grace: the emergency exit
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out  # the second signal's code: it ended prompter
    assert runner_owns(files), files.stat()
