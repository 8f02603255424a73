"""changes.patch and the action's `changed_files` / `patch_path`, on real git repositories."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from prompter.changes import quote_path, snapshot

from .action_step import run_step, workspace
from .harness import Harness

# An agent for these tests: per task and attempt, a list of file operations from the plan.
AGENT = r"""
import base64, json, os, sys
task, attempt = sys.argv[1], int(sys.argv[2])
steps = json.load(open(os.environ["FAKE_AGENT_PLAN"])).get(task) or [[]]
for op, *args in steps[min(attempt, len(steps)) - 1]:
    if op == "write":
        os.makedirs(os.path.dirname(args[0]) or ".", exist_ok=True)
        with open(args[0], "wb") as f:
            f.write(base64.b64decode(args[1]))
    elif op == "delete":
        os.remove(args[0])
    elif op == "rename":
        os.makedirs(os.path.dirname(args[1]) or ".", exist_ok=True)
        os.rename(args[0], args[1])
    elif op == "chmod":
        os.chmod(args[0], int(args[1], 8))
    elif op == "symlink":
        os.symlink(args[0], args[1])
    elif op == "git-init":  # a repository of its own, without a commit
        import subprocess
        subprocess.run(["git", "init", "-q", args[0]], check=True)
    elif op == "exit":
        sys.exit(int(args[0]))
"""

BINARY = bytes(range(256)) * 3  # every byte value, NUL included
OLD_TEXT = "".join(
    f"line {i}: the same text, long enough for rename detection\n" for i in range(40)
)


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=u@example.com", "-c", "user.name=User", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        input=input,
    )
    return done.stdout.decode("utf-8", "surrogateescape")


def write(path: str, data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return ["write", path, base64.b64encode(raw).decode()]


def repository(tmp_path: Path) -> Harness:
    """A harness whose root is a git repository with a commit, and the user's own uncommitted
    and untracked work on top of it (which is not the agents' and must stay out of the patch).
    `.prompter` is not ignored by the user: its own `.gitignore` must hide it."""
    tmp_path.mkdir(exist_ok=True)
    h = Harness(tmp_path)
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    h.settings["agent_command"] = [sys.executable, str(agent), "{task}", "{attempt}"]
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("agent.py\nagent.jsonl\nplan.json\nprompter.toml\n")
    (h.work / "app.py").write_text("line 1\nline 2\nline 3\n")
    (h.work / "image.bin").write_bytes(b"\x89PNG\0old")
    (h.work / "gone.txt").write_text("to be deleted\n")
    (h.work / "old.txt").write_text(OLD_TEXT)
    (h.work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "initial")
    (h.work / "app.py").write_text("line 1\nline 2 (the user's)\nline 3\n")
    (h.work / "scratch.txt").write_text("the user's untracked file\n")
    return h


def every_kind_of_change(h: Harness) -> None:
    """Two independent tasks: new text and binary files, a binary modified, a deletion, a
    rename, a mode change, a symlink, a new folder."""
    h.task(
        "a",
        [
            [
                write("new.txt", "a new file\n"),
                write("blob.bin", BINARY),
                write("image.bin", b"\x89PNG\0new\xff\xfe"),
                ["symlink", "new.txt", "link"],
            ]
        ],
        depends_on=[],
    )
    h.task(
        "b",
        [
            [
                ["delete", "gone.txt"],
                ["rename", "old.txt", "moved/old.txt"],
                ["chmod", "run.sh", "755"],
                write("deep/er/file.txt", "in a new folder\n"),
            ]
        ],
        depends_on=[],
    )


def tree_of(repo: Path) -> str:
    """The working tree as a git tree id (ignored files aside), through a private index."""
    return anyio.run(snapshot, repo, ())


def clean_clone(source: Path, commit: str, into: Path) -> Path:
    # --no-local: only what the commits reach, as a fetch from a remote gives (a local clone
    # would copy every object, the run's own snapshots included).
    git(source.parent, "clone", "-q", "--no-local", str(source), str(into))
    git(into, "checkout", "-q", "--detach", commit)
    return into


@pytest.mark.parametrize("isolation", ["worktree", "shared"])
def test_the_patch_reproduces_exactly_what_the_tasks_did_on_a_clean_clone(
    tmp_path: Path, isolation: str
) -> None:
    h = repository(tmp_path / "repo")
    h.settings["isolation"] = isolation
    every_kind_of_change(h)
    start = git(h.root, "rev-parse", "HEAD").strip()
    assert h.run() == 0
    assert h.tasks_status() == {"a": ("passed", None), "b": ("passed", None)}
    patch = h.root / ".prompter" / "changes.patch"
    text = patch.read_bytes()
    # Binary-safe, with the rename as a rename; nothing of the user's, nothing of prompter's.
    assert b"GIT binary patch" in text
    assert b"rename from work/old.txt\nrename to work/moved/old.txt" in text
    assert b"old mode 100644\nnew mode 100755" in text
    assert b"deleted file mode" in text and b"new file mode 120000" in text
    assert b"app.py" not in text and b"scratch.txt" not in text
    assert b".prompter" not in text
    # The report folder is not in `git status`, and the user's index and HEAD are as they were.
    status = git(h.root, "status", "--porcelain", "--untracked-files=all")
    assert ".prompter" not in status
    assert git(h.root, "rev-parse", "HEAD").strip() == start
    assert git(h.root, "diff", "--cached", "--name-only") == ""
    # On a clean clone of the starting commit, plus the user's own work of that moment, the
    # patch gives exactly the user's tree: every byte, mode and link.
    clone = clean_clone(h.root, start, tmp_path / "clone")
    (clone / "work" / "app.py").write_text("line 1\nline 2 (the user's)\nline 3\n")
    (clone / "work" / "scratch.txt").write_text("the user's untracked file\n")
    git(clone, "apply", "--check", str(patch))
    git(clone, "apply", str(patch))
    assert tree_of(clone) == tree_of(h.root)
    assert (clone / "work" / "blob.bin").read_bytes() == BINARY
    assert os.readlink(clone / "work" / "link") == "new.txt"
    # It applies to the starting commit alone too (the user's edits touch other files).
    bare = clean_clone(h.root, start, tmp_path / "bare")
    git(bare, "apply", "--check", str(patch))


def test_the_cli_says_where_the_patch_is_and_the_state_counts_the_files(tmp_path: Path) -> None:
    h = repository(tmp_path)
    h.task("a", [[write("new.txt", "x\n"), ["delete", "gone.txt"]]])
    done = h.cli("run", "--progress", "plain", str(h.write()))
    assert done.returncode == 0, done.stderr
    head = git(h.root, "rev-parse", "HEAD").strip()
    line = f"changes: .prompter/changes.patch (2 files changed since {head[:12]})"
    assert line in done.stdout.splitlines()
    (run,) = h.status()["runs"]
    assert run["changed_files"] == 2 and run["base_commit"] == head
    assert run["base_tree"] != git(h.root, "rev-parse", "HEAD^{tree}").strip()  # user's work
    shown = h.cli("status")
    assert shown.stdout.rstrip().endswith("(passed); changes.patch: 2 files"), shown.stdout


def test_outside_git_there_is_no_patch_and_the_run_says_so(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a", [{"write": {"new.txt": "x"}}])
    stale = tmp_path / ".prompter" / "changes.patch"
    stale.parent.mkdir()
    stale.write_text("an earlier run's patch\n")
    done = h.cli("run", "--progress", "plain", str(h.write()))
    assert done.returncode == 0, done.stderr
    assert "changes: not in a git repository: no changes.patch" in done.stdout.splitlines()
    assert not stale.exists()
    assert (h.work / "new.txt").read_text() == "x"
    assert h.status()["runs"][0]["changed_files"] is None


def test_a_run_that_changes_nothing_leaves_no_patch(tmp_path: Path) -> None:
    h = repository(tmp_path)
    h.task("a", [[]])
    stale = tmp_path / ".prompter" / "changes.patch"
    stale.parent.mkdir()
    stale.write_text("an earlier run's patch\n")
    done = h.cli("run", "--progress", "plain", str(h.write()))
    assert done.returncode == 0, done.stderr
    assert "changes: no file changed" in done.stdout.splitlines()
    assert not stale.exists()


def test_the_report_folder_hides_itself_from_git_wherever_it_is(tmp_path: Path) -> None:
    h = repository(tmp_path)
    h.task("a", [[write("new.txt", "x\n")]])
    assert h.run("--report-dir", "reports/nested/prompter") == 0
    folder = tmp_path / "reports" / "nested" / "prompter"
    assert (folder / ".gitignore").read_text() == "*\n"
    assert (folder / "changes.patch").exists()
    status = git(tmp_path, "status", "--porcelain", "--untracked-files=all")
    assert "reports" not in status and "work/new.txt" in status


def test_a_users_gitignore_or_folder_is_left_as_it_is(tmp_path: Path) -> None:
    h = repository(tmp_path)
    h.task("a", [[write("new.txt", "x\n")]])
    own = tmp_path / "mine"
    own.mkdir()
    (own / ".gitignore").write_text("*.log\n")
    assert h.run("--report-dir", "mine") == 0
    assert (own / ".gitignore").read_text() == "*.log\n"
    # A folder holding files of the user's gets none: `*` would hide them from git.
    shared = tmp_path / "docs"
    shared.mkdir()
    (shared / "notes.md").write_text("the user's\n")
    assert h.run("--report-dir", "docs") == 0
    assert not (shared / ".gitignore").exists()
    assert "docs/notes.md" in git(tmp_path, "status", "--porcelain", "--untracked-files=all")


def test_a_resumed_run_continues_the_patch_of_the_run_it_resumes(tmp_path: Path) -> None:
    h = repository(tmp_path / "repo")
    h.task("a", [[write("a.txt", "A\n")]], depends_on=[])
    h.task("b", [[["exit", "1"]]], depends_on=[], max_attempts=1)
    start = git(h.root, "rev-parse", "HEAD").strip()
    patch = h.root / ".prompter" / "changes.patch"
    assert h.run() == 1
    assert b"work/a.txt" in patch.read_bytes() and b"b.txt" not in patch.read_bytes()
    # The second run reruns `b` only; its patch holds both tasks' work, from the same start.
    h.plan["b"] = [[write("b.txt", "B\n")]]
    done = h.cli("run", "--progress", "plain", str(h.write()))
    assert done.returncode == 0, done.stdout + done.stderr
    text = patch.read_bytes()
    assert b"work/a.txt" in text and b"work/b.txt" in text
    first, second = h.status()["runs"]
    assert second["base_tree"] == first["base_tree"] and second["base_commit"] == start
    said = f"(2 files changed since {start[:12]}, the start of run {first['run_id']})"
    assert said in done.stdout
    clone = clean_clone(h.root, start, tmp_path / "clone")
    git(clone, "apply", str(patch))
    assert (clone / "work" / "a.txt").read_text() == "A\n"
    assert (clone / "work" / "b.txt").read_text() == "B\n"
    # Once HEAD has moved (the work committed), a resumed run starts a new patch on it.
    git(h.root, "add", "-A")
    git(h.root, "commit", "-qm", "the agents' work")
    h.task("c", [[write("c.txt", "C\n")]], depends_on=[])
    assert h.run() == 0
    text = patch.read_bytes()
    assert b"work/c.txt" in text and b"a.txt" not in text
    third = h.status()["runs"][2]
    assert third["base_commit"] == git(h.root, "rev-parse", "HEAD").strip()


def test_a_resumed_run_in_a_fresh_clone_without_the_start_covers_its_own_work(
    tmp_path: Path,
) -> None:
    """A CI re-run: a fresh checkout of the same commit, the state restored from an artifact.
    The first run's start held the user's uncommitted work, which the clone has not: git has
    no such tree there, so the patch is taken from this run's own start, with a warning."""
    h = repository(tmp_path / "repo")
    h.task("a", [[write("a.txt", "A\n")]], depends_on=[])
    h.task("b", [[["exit", "1"]]], depends_on=[], max_attempts=1)
    assert h.run() == 1
    start = git(h.root, "rev-parse", "HEAD").strip()
    clone = clean_clone(h.root, start, tmp_path / "ci")
    shutil.copytree(h.root / ".prompter", clone / ".prompter")
    again = Harness(clone, dict(h.settings), h.tasks, {"b": [[write("b.txt", "B\n")]]})
    done = again.cli("run", "--progress", "plain", str(again.write()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is not in this repository (a fresh clone?)" in done.stderr
    text = (clone / ".prompter" / "changes.patch").read_bytes()
    assert b"work/b.txt" in text and b"a.txt" not in text
    check = clean_clone(h.root, start, tmp_path / "check")
    git(check, "apply", "--check", str(clone / ".prompter" / "changes.patch"))


def test_hostile_names_are_quoted_one_per_line() -> None:
    assert quote_path("plain/ünïcode name.txt") == "plain/ünïcode name.txt"
    assert quote_path("a\nb") == '"a\\nb"'
    assert quote_path('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert quote_path("cr\rtab\t") == '"cr\\rtab\\t"'
    assert quote_path(os.fsdecode(b"latin\xe9")) == '"latin\\351"'
    assert quote_path("sep\u2028") == '"sep\\342\\200\\250"'


HOSTILE = {
    "line\nbreak.txt": "1",
    "ghadelimiter_0123456789abcdef": "2",
    'quo"te.txt': "3",
    "carriage\rreturn.txt": "4",
    "ünïcode.txt": "5",
}


@pytest.mark.parametrize("isolation", ["worktree", "shared"])
def test_the_action_outputs_changed_files_and_patch_path(tmp_path: Path, isolation: str) -> None:
    tasks: list[dict[str, Any]] = [
        {"name": "t", "prompt": "x", "verify_command": "true", "depends_on": []},
        {"name": "u", "prompt": "y", "verify_command": "true", "depends_on": []},
    ]
    ws = workspace(tmp_path, tasks, {"t": [{"write": HOSTILE}], "u": [{"write": {"x": "6"}}]})
    toml = ws / "prompter.toml"
    toml.write_text(
        toml.read_text().replace("[settings]", f'[settings]\nisolation = "{isolation}"')
    )
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "initial")
    start = git(ws, "rev-parse", "HEAD").strip()
    step = run_step(tmp_path, ws, {"upload_artifact": "false"})
    assert step.code == 0, step.stdout + step.stderr
    assert step.outputs["patch_path"] == ".prompter/changes.patch"
    names = step.outputs["changed_files"].split("\n")
    expected = sorted(quote_path(n) for n in [*HOSTILE, "x"])
    assert sorted(names) == expected
    assert '"line\\nbreak.txt"' in names and '"carriage\\rreturn.txt"' in names
    assert "changes: .prompter/changes.patch (6 files changed" in step.stdout
    clone = clean_clone(ws, start, tmp_path / "clone")
    git(clone, "apply", str(ws / step.outputs["patch_path"]))
    for name, content in HOSTILE.items():
        assert (clone / name).read_text() == content
    assert "prompter" not in git(ws, "status", "--porcelain").replace("prompter.toml", "")


def test_the_action_outside_git_has_empty_outputs(tmp_path: Path) -> None:
    tasks = [{"name": "t", "prompt": "x", "verify_command": "true"}]
    ws = workspace(tmp_path, tasks, {"t": [{"write": {"new.txt": "1"}}]})
    shutil.rmtree(ws / ".git")
    step = run_step(tmp_path, ws, {"upload_artifact": "false"})
    assert step.code == 0, step.stdout + step.stderr
    assert (step.outputs["patch_path"], step.outputs["changed_files"]) == ("", "")
    assert "changes: not in a git repository: no changes.patch" in step.stdout
    assert not (ws / ".prompter" / "changes.patch").exists()


def test_a_tracked_file_that_git_would_ignore_is_in_the_patch_too(tmp_path: Path) -> None:
    h = repository(tmp_path)
    (tmp_path / ".gitignore").write_text((tmp_path / ".gitignore").read_text() + "build/\n")
    (h.work / "build").mkdir()
    (h.work / "build" / "kept.txt").write_text("tracked although ignored\n")
    git(tmp_path, "add", "-f", ".gitignore", "work/build/kept.txt")
    git(tmp_path, "commit", "-qm", "a tracked file under an ignored folder")
    h.task("a", [[write("build/kept.txt", "changed\n")]])
    assert h.run() == 0
    assert b"work/build/kept.txt" in (tmp_path / ".prompter" / "changes.patch").read_bytes()


def test_a_recorded_start_that_is_no_object_id_is_not_given_to_git(tmp_path: Path) -> None:
    """The state may come from an artifact: its `base_tree` is data, never an option."""
    h = repository(tmp_path)
    h.task("a", [[write("a.txt", "A\n")]], depends_on=[])
    h.task("b", [[["exit", "1"]]], depends_on=[], max_attempts=1)
    assert h.run() == 1
    state_file = tmp_path / ".prompter" / "state.json"
    planted = tmp_path / "planted"
    state = json.loads(state_file.read_text())
    state["runs"][0]["base_tree"] = f"--output={planted}"
    state_file.write_text(json.dumps(state))
    h.plan["b"] = [[write("b.txt", "B\n")]]
    done = h.cli("run", "--progress", "plain", str(h.write()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is not in this repository" in done.stderr and not planted.exists()
    text = (tmp_path / ".prompter" / "changes.patch").read_bytes()
    assert b"work/b.txt" in text and b"a.txt" not in text


def test_what_the_user_edits_during_a_worktree_run_is_not_taken_for_the_tasks_work(
    tmp_path: Path,
) -> None:
    h = repository(tmp_path)
    del h.settings["agent_command"]  # the harness's own agent, which logs its calls
    h.task("a", [{"write": {"app.py": "the task's\n", "a.txt": "A"}, "sleep": 1.5}], depends_on=[])
    h.task("b", [{"write": {"b.txt": "B"}}], depends_on=[])
    proc = h.spawn()
    deadline = time.monotonic() + 30
    while not any(c["task"] == "b" for c in h.calls()):  # the run is going, `a` still sleeps
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    (h.work / "app.py").write_text("the user's, written during the run\n")
    (h.work / "run.sh").write_text("#!/bin/sh\necho the user's\n")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "kept your version of 1 file" in err  # app.py: the user's stays
    text = (tmp_path / ".prompter" / "changes.patch").read_bytes()
    assert b"work/a.txt" in text and b"work/b.txt" in text
    assert b"app.py" not in text and b"run.sh" not in text


@pytest.mark.parametrize("isolation", ["worktree", "shared"])
def test_a_state_file_kept_in_the_repository_is_not_in_the_patch(
    tmp_path: Path, isolation: str
) -> None:
    h = repository(tmp_path)
    h.settings["isolation"] = isolation
    h.task("a", [[write("a.txt", "A\n")]], depends_on=[])
    h.task("b", [[write("b.txt", "B\n")]], depends_on=[])
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "st.json.journal").write_text("")  # there at the start already
    assert h.run("--state-file", "kept/st.json") == 0
    assert (tmp_path / "kept" / "st.json").exists()
    text = (tmp_path / ".prompter" / "changes.patch").read_bytes()
    assert b"work/a.txt" in text and b"work/b.txt" in text
    assert b"st.json" not in text


def test_a_run_that_cannot_start_leaves_no_earlier_patch_behind(tmp_path: Path) -> None:
    h = repository(tmp_path)
    h.task("a", [[write("a.txt", "A\n")]], depends_on=[])
    h.task("b", [[write("b.txt", "B\n")]], depends_on=[])
    assert h.run() == 0
    patch = tmp_path / ".prompter" / "changes.patch"
    assert patch.exists()
    # Worktrees required where they cannot work: the next run stops before any task runs.
    (tmp_path / ".gitmodules").write_text("")
    h.settings["isolation"] = "worktree"
    assert h.run("--fresh") == 2
    assert not patch.exists()


def test_a_tree_git_cannot_snapshot_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    h = repository(tmp_path)
    h.settings["isolation"] = "shared"
    h.task("a", [[["git-init", "sub"], write("sub/x", "x\n")]])
    done = h.cli("run", "--progress", "plain", str(h.write()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prompter: warning: changes.patch not written: git add failed" in done.stderr
    assert "changes: changes.patch not written" in done.stdout
    assert not (tmp_path / ".prompter" / "changes.patch").exists()


def test_an_interrupted_runs_work_is_in_the_patch_of_the_run_that_lands_it(
    tmp_path: Path,
) -> None:
    h = repository(tmp_path)
    del h.settings["agent_command"]  # the harness's own agent, which logs its calls
    h.task("quick", [{"write": {"quick.txt": "Q"}}], depends_on=[])
    h.task("slow", [{"write": {"slow.txt": "S"}, "sleep": 30}], depends_on=[])
    proc = h.spawn()
    h.wait_until("quick")  # merged into the run's line, not into the user's tree
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 143, err
    # The tree is as it was (quick's work waits under a ref): nothing changed in it.
    assert "changes: no file changed" in out.splitlines()
    patch = tmp_path / ".prompter" / "changes.patch"
    assert not patch.exists()
    h.plan["slow"] = [{"write": {"slow.txt": "S"}}]
    assert h.run() == 0
    text = patch.read_bytes()
    assert b"work/quick.txt" in text and b"work/slow.txt" in text


@pytest.mark.parametrize("isolation", ["worktree", "shared"])
def test_a_file_a_sparse_checkout_leaves_out_is_not_a_deletion(
    tmp_path: Path, isolation: str
) -> None:
    """A skip-worktree file (what a sparse checkout leaves out) is absent from the tree without
    being deleted: the snapshots start from the user's index, whose bits say so."""
    h = repository(tmp_path)
    h.settings["isolation"] = isolation
    del h.settings["agent_command"]  # the harness's own agent
    (h.work / "elsewhere.txt").write_text("not checked out here\n")
    git(h.root, "add", "work/elsewhere.txt")
    git(h.root, "commit", "-qm", "elsewhere")
    git(h.root, "update-index", "--skip-worktree", "work/elsewhere.txt")
    (h.work / "elsewhere.txt").unlink()
    h.task("a", [{"write": {"new.txt": "x"}}], depends_on=[])
    assert h.run() == 0
    text = (h.root / ".prompter" / "changes.patch").read_text()
    assert "new.txt" in text
    assert "elsewhere" not in text, text
