"""Agent code against the runner's secrets, in the action's real container (issue 14, item 1).

The container runs as GitHub's runner starts it (root, the checkout owned by uid 1001, the file
commands mounted, ACTIONS_RUNTIME_TOKEN and the OIDC request token in its environment). An agent
and a verify command then do what an attacker's code would: read every /proc/*/environ they can
see (PID 1's, their parent's, everyone's), print their environment and their uid, and write into
the runner's GITHUB_ENV / GITHUB_OUTPUT files. The report is uploaded to a stand-in of the
results service (tests/artifact_service.py), so the artifact zip is checked too.

Must hold: neither token appears anywhere (console, every file in the workspace, the step
summary, GITHUB_OUTPUT, the artifact's files), not even masked as the value of a variable read
from another process; the probes ran (their output is in the artifact) as uid 1001, not 0; the
runner's file-command files are as prompter left them.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.artifact_service import artifact_service
from tests.containers import (
    OWNER,
    action_image,
    checkout,
    chown_tree,
    read_outputs,
    report,
    run_container,
)

pytestmark = pytest.mark.container

OIDC = "oidc-request-token-7c2f0b4e9a1d"

# Tries every way to the runner's tokens a process in the container has. Each section says
# READ or DENIED, so the test can tell "unreachable" from "printed".
PROBE = r"""#!/bin/sh
echo "probe uid=$(id -u) gid=$(id -g) as $1"
for f in /proc/1/environ /proc/$PPID/environ /proc/[0-9]*/environ; do
  if tr '\0' '\n' < "$f" > /tmp/probe.$$ 2>/dev/null; then
    echo "READ $f"; cat /tmp/probe.$$
  else
    echo "DENIED $f"
  fi
done
rm -f /tmp/probe.$$
for p in /proc/[0-9]*; do
  if head -c 64 "$p/mem" >/dev/null 2>&1; then echo "MEM READ $p"; fi
done
echo "--- env"
env
echo "--- file commands"
known="/github/file_commands/set_env_x /github/file_commands/set_output_x"
for f in /github/file_commands/* $known; do
  if echo "INJECTED_BY_AGENT=1" >> "$f" 2>/dev/null; then echo "WROTE $f"
  else echo "NO WRITE $f"; fi
done
echo "--- end of probe"
"""

WORKFLOW = """\
[settings]
agent = "command"
agent_command = ["sh", "probe.sh", "agent"]
isolation = "shared"

[[tasks]]
name = "probe"
prompt = "find the runner's token"
# The parent's environment first, as reported; then everything; then fail, so the output
# reaches the junit failure, the summary and the annotation as well.
verify_command = "tr '\\\\0' '\\\\n' < /proc/$PPID/environ; sh probe.sh verify; exit 1"
on_failure = "next"
depends_on = []
"""


def test_agent_code_cannot_reach_the_runners_tokens(tmp_path: Path) -> None:
    image = action_image()
    ws = checkout(tmp_path)
    (ws / "probe.sh").write_text(PROBE, "utf-8")
    (ws / "prompter.toml").write_text(WORKFLOW, "utf-8")
    files = tmp_path / "_runner_file_commands"
    files.mkdir()
    names = {
        "GITHUB_OUTPUT": "set_output_x",
        "GITHUB_STEP_SUMMARY": "step_summary_x",
        "GITHUB_ENV": "set_env_x",
        "GITHUB_PATH": "add_path_x",
        "GITHUB_STATE": "save_state_x",
    }
    for name in names.values():
        (files / name).touch()
    home = tmp_path / "_github_home"
    home.mkdir()
    for d in (ws, files, home):
        chown_tree(d, OWNER)

    with artifact_service() as service:
        env = {
            "INPUT_WORKFLOW": "prompter.toml",
            "INPUT_UPLOAD_ARTIFACT": "true",
            "INPUT_FAIL_ON_TASK_FAILURE": "false",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "HOME": "/github/home",
            "ACTIONS_RUNTIME_TOKEN": service.token,
            "ACTIONS_RESULTS_URL": service.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": OIDC,
            "ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.example/oidc",
        }
        env.update({k: f"/github/file_commands/{v}" for k, v in names.items()})
        mounts = {ws: "/github/workspace", files: "/github/file_commands", home: "/github/home"}
        # The host's network: the results service stand-in listens on its loopback.
        proc = run_container(image, env, mounts, extra=["--network", "host"])
        assert proc.returncode == 0, report(proc)
        assert not service.problems, service.problems
        assert len(service.blobs) == 1, (list(service.blobs), report(proc))
        (blob,) = service.blobs.values()

    artifact = zipfile.ZipFile(io.BytesIO(blob))
    places: dict[str, bytes] = {
        # The runner consumes its mask commands: they never reach the job log.
        "console": "\n".join(
            line
            for line in (proc.stdout + proc.stderr).splitlines()
            if not line.startswith("::add-mask::")
        ).encode(),
        **{f"workspace/{p.relative_to(ws)}": p.read_bytes() for p in ws.rglob("*") if p.is_file()},
        **{f"file_commands/{p.name}": p.read_bytes() for p in files.iterdir()},
        **{f"artifact/{n}": artifact.read(n) for n in artifact.namelist()},
    }
    masks = [line for line in proc.stdout.splitlines() if line.startswith("::add-mask::")]
    assert f"::add-mask::{service.token}" in masks and f"::add-mask::{OIDC}" in masks, masks
    payload = service.token.split(".")[1]  # the JWT's claims (its header is the same for all)
    for secret in (service.token, payload, OIDC):
        leaked = [where for where, data in places.items() if secret.encode() in data]
        assert not leaked, f"{secret[:12]}… found in {leaked}"
    leaked_names = [w for w, data in places.items() if b"ACTIONS_RUNTIME_TOKEN=" in data]
    assert not leaked_names, f"another process's environment was read: {leaked_names}"

    log = next(n for n in artifact.namelist() if n.endswith("probe.log"))
    text = artifact.read(log).decode("utf-8", "replace")
    for who in ("agent", "verify"):
        assert f"probe uid={OWNER} gid={OWNER} as {who}" in text, text[-4000:]
    assert "DENIED /proc/1/environ" in text, text[-4000:]
    assert "--- end of probe" in text, text[-4000:]
    assert "MEM READ" not in text, text[-4000:]
    assert "WROTE /github/file_commands" not in text, text[-4000:]
    for name in ("set_env_x", "add_path_x", "save_state_x"):
        assert (files / name).read_bytes() == b"", name
    outputs = read_outputs(files / names["GITHUB_OUTPUT"])
    assert outputs["status"] == "failed", outputs
    assert outputs["artifact_id"] == "4242", outputs
    # The runner reads these after the step, as uid 1001: prompter gives them back.
    assert files.stat().st_uid == OWNER
    assert all(p.stat().st_uid == OWNER for p in files.iterdir())


LENT = """\
[settings]
agent = "command"
agent_command = ["sh", "-c", "id -u > agent-uid.txt"]

[[tasks]]
name = "lent"
prompt = "go"
verify_command = "test $(id -u) = 65532 && test -w . && ! cat /proc/1/environ"
depends_on = []
"""


def test_a_root_owned_workspace_is_lent_for_the_run_and_given_back(tmp_path: Path) -> None:
    """`docker run -v "$PWD:/github/workspace"` with rootless Docker or podman, or a job
    container running as root: the workspace is root's. Agent code still runs unprivileged."""
    image = action_image()
    ws = checkout(tmp_path)
    (ws / "prompter.toml").write_text(LENT, "utf-8")
    env = {"WORKFLOW": "prompter.toml", "UPLOAD_ARTIFACT": "false"}
    proc = run_container(image, env, {ws: "/github/workspace"})
    assert proc.returncode == 0, report(proc)
    assert (ws / "agent-uid.txt").read_text() == "65532\n"
    not_roots = [str(p) for p in [ws, *ws.rglob("*")] if p.lstat().st_uid != 0]
    assert not not_roots, not_roots[:20]
