"""Fan-out state: `RunRecord.job` (`run --job`), `records.merge` over the states of jobs that saw
different tasks, and `prompter state merge` on real files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.cli import main
from prompter.places import workflow_identity
from prompter.records import RunRecord, RunStatus, State, TaskRecord, TaskStatus, merge
from prompter.run import RunError, RunOptions, run_workflow
from prompter.state import StateStore

from .harness import Harness, prompter_cli

# -- the job a run records ------------------------------------------------------------------------


def test_a_run_records_its_job_and_none_outside_a_fan_out(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("a", depends_on=[])
    assert h.run("--job", "p-a.1_X", "--report-dir", "ja") == 0
    assert [r.job for r in StateStore(tmp_path / "ja" / "state.json").load().runs] == ["p-a.1_X"]
    assert h.run("--report-dir", "local") == 0
    text = (tmp_path / "local" / "state.json").read_text("utf-8")
    assert '"job"' not in text  # omitted, as every unset optional field
    assert StateStore(tmp_path / "local" / "state.json").load().runs[0].job is None


@pytest.mark.parametrize("job", ["", "a b", "a/b", "x" * 101, "ä", "a\n"])
def test_a_bad_job_id_is_a_usage_error(tmp_path: Path, job: str) -> None:
    h = Harness(tmp_path)
    h.task("a", depends_on=[])
    h.write()
    done = prompter_cli("run", "--job", job, "prompter.toml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "argument --job: not a job id" in done.stderr
    assert not (tmp_path / ".prompter" / "state.json").exists()


def test_run_options_refuse_a_bad_job_id(tmp_path: Path) -> None:
    from prompter.config import load_workflow

    h = Harness(tmp_path)
    h.task("a", depends_on=[])
    workflow = load_workflow(h.write())
    with pytest.raises(RunError, match="not a job id"):
        run_workflow(workflow, RunOptions(report_dir=tmp_path / "r", job="no job"))


def test_a_state_written_before_jobs_loads(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "tasks": {},
        "runs": [{"run_id": "r", "workflow": "w.toml", "started_at": 1.0, "status": "passed"}],
    }
    (tmp_path / "state.json").write_text(json.dumps(old))
    assert StateStore(tmp_path / "state.json").load().runs[0].job is None


# -- records.merge over jobs ----------------------------------------------------------------------


def _run(job: str, start: float, status: RunStatus = RunStatus.PASSED) -> RunRecord:
    return RunRecord(
        run_id=f"run-{job}",
        workflow="w.toml",
        workflow_id="w.toml",
        started_at=start,
        finished_at=start + 50,
        status=status,
        job=job,
    )


def _task(name: str, run: RunRecord, status: TaskStatus, at: float, reason: str | None = None):
    return TaskRecord(
        name=name,
        fingerprint=f"f-{name}",
        status=status,
        reason=reason,
        run_id=run.run_id,
        started_at=at,
        finished_at=at + (0 if status is TaskStatus.SKIPPED else 10),
    )


def _jobs() -> dict[str, State]:
    """A diamond a -> b, a -> c, b + c -> d over four jobs, each with its imports: b fails, so
    job p-d (which imported p-b's and p-c's states) records d skipped."""
    ra, rb, rc, rd = (
        _run("p-a", 0),
        _run("p-b", 100, RunStatus.FAILED),
        _run("p-c", 100),
        _run("p-d", 200, RunStatus.FAILED),
    )
    a = _task("a", ra, TaskStatus.PASSED, 1)
    b = _task("b", rb, TaskStatus.FAILED, 101, "verify_command exited 1 (expected 0)")
    c = _task("c", rc, TaskStatus.PASSED, 102)
    d = _task("d", rd, TaskStatus.SKIPPED, 201, "dependency `b` failed")
    return {
        "p-a": State(tasks={"a": a}, runs=[ra]),
        "p-b": State(tasks={"a": a, "b": b}, runs=[ra, rb]),
        "p-c": State(tasks={"a": a, "c": c}, runs=[ra, rc]),
        "p-d": State(tasks={"a": a, "b": b, "c": c, "d": d}, runs=[ra, rb, rc, rd]),
    }


def test_merge_keeps_every_job_run_and_each_task_where_it_ran() -> None:
    merged = merge(_jobs().values())
    assert [r.job for r in merged.runs] == ["p-a", "p-b", "p-c", "p-d"]
    assert {n: r.run_id for n, r in merged.tasks.items()} == {
        "a": "run-p-a",
        "b": "run-p-b",
        "c": "run-p-c",
        "d": "run-p-d",
    }
    assert merged.tasks["d"].reason == "dependency `b` failed"
    # The final job sees only the leaves' exports: the same state.
    leaves = _jobs()
    assert merge([leaves["p-d"]]) == merge([leaves["p-a"], leaves["p-d"]]) == merged


def test_a_task_run_in_two_jobs_keeps_the_latest_record() -> None:
    early, late = _run("p-x", 0), _run("p-y", 100)
    first = State(tasks={"e": _task("e", early, TaskStatus.FAILED, 5)}, runs=[early])
    second = State(tasks={"e": _task("e", late, TaskStatus.PASSED, 105)}, runs=[late])
    for order in ([first, second], [second, first]):
        merged = merge(order)
        assert merged.tasks["e"].run_id == "run-p-y" and merged.tasks["e"].status == "passed"
        assert [r.run_id for r in merged.runs] == ["run-p-x", "run-p-y"]


@settings(max_examples=60, deadline=None)
@given(st.permutations(["p-a", "p-b", "p-c", "p-d"]), st.integers(1, 4))
def test_merge_of_job_states_does_not_depend_on_their_order(order: list[str], n: int) -> None:
    jobs = _jobs()
    chosen = [jobs[j] for j in order[:n]]
    once = merge(chosen)
    assert once.model_dump_json() == merge(reversed(chosen)).model_dump_json()
    assert merge([once, *chosen]).model_dump_json() == once.model_dump_json()
    assert merge([*chosen, jobs[order[0]]]).model_dump_json() == once.model_dump_json()


# -- prompter state merge -----------------------------------------------------------------------


def _write(path: Path, state: State) -> Path:
    """A state file as the store writes it: through a run's journal, then compacted."""
    with StateStore(path) as _:
        pass
    store = StateStore(path)
    store.open()
    for run in state.runs:
        store.begin_run(run)
    for record in state.tasks.values():
        store.record(record, durable=True)
    store.close()
    return path


def _files(tmp_path: Path) -> list[Path]:
    return [_write(tmp_path / job / "state.json", s) for job, s in _jobs().items()]


def merge_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    done = prompter_cli("state", "merge", *args, cwd=tmp_path)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout, done.stderr


def test_state_merge_writes_one_state_of_all_jobs(tmp_path: Path) -> None:
    files = _files(tmp_path)
    code, out, err = merge_cli(tmp_path, "-o", "merged/state.json", *map(str, files))
    assert (code, err) == (0, "")
    assert out == (
        "merged 4 states into merged/state.json: 4 tasks (1 failed, 2 passed, 1 skipped), "
        "4 runs, 4 jobs: p-a, p-b, p-c, p-d\n"
    )
    written = StateStore(tmp_path / "merged" / "state.json").load()
    assert written == merge(StateStore(f).load() for f in files)
    assert (tmp_path / "merged" / "state.json.journal").read_bytes() == b""  # all in the snapshot
    assert main(["status", "--state-file", str(tmp_path / "merged" / "state.json")]) == 0


def test_state_merge_again_changes_nothing_and_takes_in_what_is_new(tmp_path: Path) -> None:
    files = _files(tmp_path)
    out = tmp_path / "out.json"
    assert merge_cli(tmp_path, "-o", str(out), *map(str, files[:2]))[0] == 0
    first = out.read_bytes()
    assert merge_cli(tmp_path, "-o", str(out), *map(str, files[:2]))[0] == 0
    assert out.read_bytes() == first  # idempotent
    assert merge_cli(tmp_path, "-o", str(out), str(files[1]))[0] == 0
    assert out.read_bytes() == first
    # OUT is one of the states merged: the rest can come later, one at a time.
    for f in files[2:]:
        assert merge_cli(tmp_path, "-o", str(out), str(f))[0] == 0
    assert StateStore(out).load() == merge(StateStore(f).load() for f in files)
    # OUT given as an input too is the same state.
    assert merge_cli(tmp_path, "-o", str(out), str(out), str(files[0]))[0] == 0
    assert StateStore(out).load() == merge(StateStore(f).load() for f in files)


def test_state_merge_refuses_another_workflow_and_leaves_out_alone(tmp_path: Path) -> None:
    files = _files(tmp_path)
    out = tmp_path / "out.json"
    assert merge_cli(tmp_path, "-o", str(out), str(files[0]))[0] == 0
    before = out.read_bytes()
    other_run = _run("p-z", 300).model_copy(update={"workflow_id": "other.toml"})
    foreign = _write(tmp_path / "foreign.json", State(runs=[other_run]))
    code, stdout, err = merge_cli(tmp_path, "-o", str(out), str(files[1]), str(foreign))
    assert code == 2 and stdout == ""
    assert err == (
        f"prompter: {foreign}: the state of another workflow (other.toml), not of the "
        f"workflow of {files[1]} (w.toml); only states of one workflow merge\n"
    )
    assert out.read_bytes() == before
    # A state that does not say whose it is (an older prompter's) merges with any.
    anonymous = _run("p-old", 1).model_copy(update={"workflow_id": None})
    old = _write(tmp_path / "old.json", State(runs=[anonymous]))
    assert merge_cli(tmp_path, "-o", str(out), str(old))[0] == 0


def test_state_merge_checks_against_the_workflow_named(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text(
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
    )
    assert workflow_identity(tmp_path / "w.toml") == str(tmp_path / "w.toml")  # no git here
    files = _files(tmp_path)  # their workflow_id is "w.toml": not this file's identity
    code, _, err = merge_cli(tmp_path, "--workflow", "w.toml", "-o", "out.json", str(files[0]))
    assert code == 2
    assert err.startswith(f"prompter: {files[0]}: the state of another workflow (w.toml), not of")
    assert not (tmp_path / "out.json").exists()
    mine = _run("p-a", 0).model_copy(update={"workflow_id": str(tmp_path / "w.toml")})
    ok = _write(tmp_path / "mine.json", State(runs=[mine]))
    assert merge_cli(tmp_path, "--workflow", "w.toml", "-o", "out.json", str(ok))[0] == 0
    code, _, err = merge_cli(tmp_path, "--workflow", "nope.toml", "-o", "out.json", str(ok))
    assert code == 2 and err == "prompter: nope.toml: no such workflow file\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "corrupt state, not a prompter state file"),
        (b'{"name": "package"}', 'corrupt state, not a prompter state file (no "version" key)'),
        (b'{"version": 99}', "written by a newer prompter"),
    ],
)
def test_state_merge_refuses_a_damaged_input_without_touching_out(
    tmp_path: Path, content: bytes, message: str
) -> None:
    files = _files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    out = tmp_path / "out.json"
    code, _, err = merge_cli(tmp_path, "-o", str(out), str(files[0]), str(bad))
    assert code == 2 and err.startswith(f"prompter: {bad}: {message}"), err
    assert not out.exists() and not (tmp_path / "out.json.lock").exists()
    assert merge_cli(tmp_path, "-o", str(out), str(files[0]))[0] == 0
    before = out.read_bytes()
    assert merge_cli(tmp_path, "-o", str(out), str(bad))[0] == 2
    assert out.read_bytes() == before
    # A damaged journal beside an input is located too.
    journal = files[1].with_name("state.json.journal")
    journal.write_bytes(b'{"task": 1}\n{"run": {}}\n')
    code, _, err = merge_cli(tmp_path, "-o", str(out), str(files[1]))
    assert code == 2 and err.startswith(f"prompter: {journal}:1: corrupt journal entry")
    assert out.read_bytes() == before


def test_state_merge_usage_errors(tmp_path: Path) -> None:
    files = _files(tmp_path)
    assert merge_cli(tmp_path, "-o", "out.json")[0] == 2  # no STATE
    assert merge_cli(tmp_path, str(files[0]))[0] == 2  # no -o
    code, _, err = merge_cli(tmp_path, "-o", "out.json", "missing.json")
    assert code == 2 and err == "prompter: missing.json: no such state file\n"
    os.mkdir(tmp_path / "dir.json")
    code, _, err = merge_cli(tmp_path, "-o", "out.json", "dir.json")
    assert code == 2 and "dir.json: is a directory" in err
    # A damaged OUT is refused as it is, not replaced.
    (tmp_path / "out.json").write_text("{oops")
    code, _, err = merge_cli(tmp_path, "-o", "out.json", str(files[0]))
    assert code == 2 and "out.json: corrupt state" in err
    assert (tmp_path / "out.json").read_text() == "{oops"


def test_state_merge_waits_for_no_run_holding_out(tmp_path: Path) -> None:
    files = _files(tmp_path)
    shutil.copy(files[0], tmp_path / "out.json")
    with StateStore(tmp_path / "out.json"):
        code, _, err = merge_cli(tmp_path, "-o", "out.json", str(files[1]))
    assert code == 2 and "is locked by another prompter run" in err
    assert StateStore(tmp_path / "out.json").load() == StateStore(files[0]).load()
