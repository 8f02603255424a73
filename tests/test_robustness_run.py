"""`prompter run` when its own files are in the way: an unusable logs directory or task log, a
state that cannot be written mid-run or compacted at the end, a crash inside the engine.

Each ends in one clear message and a documented exit code, never an internal error, and no task
is left "running" in the state.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import Harness, fail_journal_writes


def run(h: Harness, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    proc = h.spawn(*args, **popen)  # type: ignore[arg-type]
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr


def two_tasks(h: Harness) -> None:
    h.task("a", depends_on=[], max_attempts=1)
    h.task("b", depends_on=["a"])


# -- the logs directory and the task logs ---------------------------------------------------------


@pytest.mark.parametrize("obstacle", ["logs is a file", "the report dir is a file"])
def test_an_unusable_logs_directory_stops_the_run_before_anything_runs(
    h: Harness, obstacle: str
) -> None:
    two_tasks(h)
    report = h.root / ".prompter"
    if obstacle == "logs is a file":
        report.mkdir()
        (report / "logs").write_text("my notes\n")
        blocker = report / "logs"
    else:
        report.write_text("my notes\n")
        blocker = report
    done = run(h)
    assert done.returncode == 2, done.stderr
    assert_clean(done)
    assert done.stderr == (
        f"prompter: .prompter{'/logs' * (blocker != report)}: not a directory "
        "(task logs go in .prompter/logs)\n"
    )
    assert h.calls() == []
    assert blocker.read_text() == "my notes\n"


def test_a_directory_where_a_task_log_goes_stops_the_run_before_anything_runs(
    h: Harness,
) -> None:
    # Issue 14: a directory where prompter expects a regular file is exit 2 before work starts.
    two_tasks(h)
    h.task("c", depends_on=[])
    (h.root / ".prompter" / "logs" / "a.log").mkdir(parents=True)
    done = run(h)
    assert done.returncode == 2, done.stderr
    assert_clean(done)
    assert ".prompter/logs/a.log: Is a directory (the log of task `a` goes there)" in done.stderr
    assert h.calls() == []


def test_a_task_log_that_cannot_be_opened_fails_that_task_with_the_reason(h: Harness) -> None:
    """One that becomes a directory once the run has started: that task fails, the rest go on."""
    log = h.root / ".prompter" / "logs" / "a.log"
    h.task("c", depends_on=[], verify_command=f"mkdir '{log}'")  # as agent code could
    h.task("a", depends_on=["c"], max_attempts=1)
    h.task("b", depends_on=["a"])
    done = run(h)
    assert done.returncode == 1, done.stderr
    assert_clean(done)
    status = h.tasks_status()
    why = "cannot open the task log .prompter/logs/a.log: Is a directory"
    assert status["a"] == ("failed", why)
    assert status["b"] == ("skipped", "dependency `a` failed")
    assert status["c"] == ("passed", None)
    assert (h.root / ".prompter" / "junit.xml").is_file()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_a_logs_directory_that_is_not_writable_stops_the_run_before_anything_runs(
    shared_dir: Path,
) -> None:
    h = Harness(shared_dir)
    h.settings["agent_command"] = ["/bin/true"]  # nobody may not reach this venv's python
    two_tasks(h)
    h.write()
    logs = shared_dir / ".prompter" / "logs"
    logs.mkdir(parents=True)  # root's, 0755: nobody may not write in it
    for path in (shared_dir, shared_dir / ".prompter", h.work):
        os.chown(path, 65534, -1)
    done = subprocess.run(
        [
            *("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"),
            *(sys.executable, "-m", "prompter", "run", "--progress", "none", str(h.workflow)),
        ],
        cwd=shared_dir,
        env={**os.environ, **h.env()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert_clean(done)
    assert done.stderr == "prompter: .prompter/logs: not writable (task logs go there)\n"
    assert not (shared_dir / ".prompter" / "state.json").exists()


# -- the state ------------------------------------------------------------------------------------


def test_a_directory_where_the_state_is_compacted_is_found_at_the_start(h: Harness) -> None:
    two_tasks(h)
    temp = h.root / ".prompter" / "state.json.tmp"
    temp.mkdir(parents=True)
    done = run(h)
    assert done.returncode == 2
    assert_clean(done)
    assert done.stderr.startswith(f"prompter: {Path('.prompter/state.json.tmp')}: not a file")
    assert h.calls() == []


def test_a_compaction_that_fails_at_the_end_warns_and_keeps_the_outcome(h: Harness) -> None:
    # The obstacle appears during the run: found only when the journal is folded at the end.
    h.task("a", depends_on=[], verify_command="mkdir ../.prompter/state.json.tmp")
    h.task("b", depends_on=["a"])
    done = run(h)
    assert done.returncode == 0, done.stderr
    assert_clean(done)
    assert "prompter: warning: the state was not compacted (" in done.stderr
    assert ".prompter/state.json.tmp: Is a directory); its journal holds" in done.stderr
    assert h.tasks_status() == {"a": ("passed", None), "b": ("passed", None)}
    assert (h.root / ".prompter" / "summary.md").is_file()


def _small_files() -> None:
    # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG, as on a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))


def test_a_state_write_that_fails_mid_run_stops_it_and_leaves_no_task_running(
    h: Harness,
) -> None:
    # The terminal record of `a` carries 60 KB of output: past the limit. Without its output it
    # fits, so `a` keeps its outcome; the snapshot at the end does not fit either.
    loud = "head -c 60000 /dev/zero | tr '\\0' x; exit 1"
    h.task("a", depends_on=[], verify_command=loud, max_attempts=1)
    h.task("b", depends_on=["a"])
    h.task("c", [{"sleep": 30}], depends_on=[])
    done = run(h, preexec_fn=_small_files)
    assert done.returncode == 2, done.stderr
    assert_clean(done)
    # report.html (its style and script alone) is past the limit too: said, and no more.
    warning, _, stderr = done.stderr.partition("\n")
    assert warning == (
        "prompter: warning: reports not written: .prompter/report.html: File too large"
    )
    assert stderr.startswith(
        "prompter: the state could not be written: "
        f"{Path('.prompter/state.json.journal')}: cannot write: File too large"
    )
    status = h.tasks_status()
    assert status["a"] == ("failed", "verify_command exited 1 (expected 0)")
    assert status["c"][0] == "interrupted"  # stopped at once, not after its 30 s
    assert "running" not in {s for s, _ in status.values()}
    assert not (h.root / ".prompter" / "state.json.tmp").exists()
    assert "state: .prompter/state.json" in done.stdout  # the run's own report still comes


def test_a_crash_inside_the_engine_leaves_no_task_running(
    h: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("prompter.run.run_attempt", broken)
    two_tasks(h)
    assert h.run() == 70
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err
    status = h.tasks_status()
    assert status["a"] == (
        "interrupted",
        "prompter stopped by an internal error (RuntimeError: boom)",
    )
    assert "b" not in status


def test_after_journal_writes_fail_the_run_still_reports_and_records_its_end(
    h: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Journal writes fail from the 4th on (a full disk that frees up again by the end): the
    # run stops with exit 2, but the snapshot at the end takes every record, the run's end
    # included, and what the run has to tell (its warnings) is still told.
    fail_journal_writes(monkeypatch, lambda n: n >= 4)
    h.settings["cpu_budget"] = 1
    h.task("a", depends_on=[], cpu_required=4)  # a demand above the budget: a run warning
    h.task("b", depends_on=["a"])
    h.task("c", depends_on=["b"])
    assert h.run() == 2
    err = capsys.readouterr().err
    assert "prompter: warning: task `a`: cpu_required = 4 exceeds the budget of 1" in err
    assert "prompter: the state could not be written: " in err
    assert "every record was saved at the end" in err
    monkeypatch.undo()
    (last,) = h.status()["runs"]
    assert last["status"] is not None and last["finished_at"]  # not "did not finish"
