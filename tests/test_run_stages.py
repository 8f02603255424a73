"""The stages of a run (`run`, `selection`, `isolation`, `signals`, the engines' results), each
run on its own: real workflow files, real git repositories, real agent processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from prompter import exits, isolation
from prompter.config import Workflow, load_workflow
from prompter.engines import EngineResult
from prompter.fingerprints import fingerprints
from prompter.planning import limits_for
from prompter.records import RunStatus, State, TaskRecord, TaskStatus
from prompter.run import RunError, RunOptions, choose_engine, outcome, run_workflow
from prompter.selection import describe_dry_run, select
from prompter.signals import watch_signals
from prompter.state import StateStore

# -- helpers -------------------------------------------------------------------------------------


def write_workflow(root: Path, settings: dict[str, Any], tasks: list[dict[str, Any]]) -> Workflow:
    """A workflow in `root`, its tasks run by a real process (`sh`) in `root/work`."""
    (root / "work").mkdir(exist_ok=True)
    settings = {
        "working_directory": "work",
        "agent": "command",
        "agent_command": ["sh", "-c", "echo {task} > {task}.out"],
        "retry_delay": 0,
        **settings,
    }
    lines = ["[settings]"] + [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    for given in tasks:
        task = {"prompt": f"do {given['name']}", "verify_command": "true", **given}
        lines += ["", "[[tasks]]"] + [f"{k} = {json.dumps(v)}" for k, v in task.items()]
    path = root / "prompter.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_workflow(path)


def passed(workflow: Workflow, *names: str) -> State:
    """A state in which `names` passed with the definitions they have now."""
    prints = fingerprints(workflow)
    records = {
        n: TaskRecord(name=n, status=TaskStatus.PASSED, fingerprint=prints[n], run_id="r0")
        for n in names
    }
    return State(tasks=records)


def diamond(root: Path) -> Workflow:
    """a → b, a → c, (b, c) → d; e alone."""
    return write_workflow(
        root,
        {},
        [
            {"name": "a", "depends_on": []},
            {"name": "b", "depends_on": ["a"]},
            {"name": "c", "depends_on": ["a"]},
            {"name": "d", "depends_on": ["b", "c"]},
            {"name": "e", "depends_on": []},
        ],
    )


def names(workflow: Workflow, indices: Any) -> list[str]:
    return [workflow.tasks[i].name for i in sorted(indices)]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout


def git_repo(root: Path) -> None:
    git(root, "init", "-q")
    git(root, "config", "user.email", "u@example.com")
    git(root, "config", "user.name", "User")
    (root / "README").write_text("hello\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")


# -- select --------------------------------------------------------------------------------------


def test_select_takes_the_named_task_with_what_it_needs_that_has_not_passed(
    tmp_path: Path,
) -> None:
    workflow = diamond(tmp_path)
    prints = fingerprints(workflow)
    chosen = select(workflow, passed(workflow, "a", "b"), prints, named=("d",))
    assert names(workflow, chosen.run) == ["c", "d"]  # a and b passed: not again
    assert names(workflow, chosen.reused) == ["a", "b"]
    assert chosen.reach == chosen.run
    fresh = select(workflow, passed(workflow, "a", "b"), prints, named=("d",), fresh=True)
    assert names(workflow, fresh.run) == ["a", "b", "c", "d"] and not fresh.reused
    only = select(workflow, State(), prints, named=("d",), only=True)
    assert names(workflow, only.run) == ["d"]


def test_select_drops_a_pass_whose_dependency_runs_again(tmp_path: Path) -> None:
    workflow = diamond(tmp_path)
    chosen = select(workflow, passed(workflow, "b", "c", "d", "e"), fingerprints(workflow))
    # a did not pass, so what is built on it runs again; e stands on its own.
    assert names(workflow, chosen.run) == ["a", "b", "c", "d"]
    assert names(workflow, chosen.reused) == ["e"]


def test_select_in_sequential_mode_starts_at_the_named_task_and_may_reach_any(
    tmp_path: Path,
) -> None:
    workflow = write_workflow(tmp_path, {}, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    state = passed(workflow, "a", "b")
    chosen = select(workflow, state, fingerprints(workflow), named=("b",))
    assert chosen.start == 1 and chosen.run == (1,) and chosen.reach is None
    assert names(workflow, chosen.reused) == ["a"]  # the task named runs, whatever passed
    first = select(workflow, state, fingerprints(workflow))
    assert first.start == 0 and names(workflow, first.reused) == ["a", "b"]


def test_the_dry_run_lists_the_selection_in_graph_order(tmp_path: Path) -> None:
    workflow = diamond(tmp_path)
    chosen = select(workflow, passed(workflow, "e"), fingerprints(workflow))
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        describe_dry_run(workflow, chosen, stream)
    text = out.read_text()
    assert "would run 4 tasks in graph mode" in text
    assert "  d  (after b, c)\n" in text
    assert "  e: passed in an earlier run, unchanged: not run again\n" in text


@pytest.mark.parametrize(
    ("mode", "tasks", "only", "message"),
    [
        ("graph", ("nope",), False, "--task: no such task `nope`"),
        ("sequential", ("a", "b"), False, "sequential mode runs from one task, not 2"),
        ("sequential", ("a",), True, "--only has no meaning in sequential mode"),
    ],
)
def test_a_task_option_the_run_cannot_follow_is_exit_2_before_anything_runs(
    tmp_path: Path, mode: str, tasks: tuple[str, ...], only: bool, message: str
) -> None:
    # A workflow is in graph mode when its tasks have `depends_on`.
    deps: dict[str, Any] = {"depends_on": []} if mode == "graph" else {}
    workflow = write_workflow(tmp_path, {}, [{"name": "a", **deps}, {"name": "b", **deps}])
    assert workflow.mode == mode
    options = RunOptions(report_dir=tmp_path / ".prompter", tasks=tasks, only=only)
    with pytest.raises(RunError, match=message):
        run_workflow(workflow, options)
    assert StateStore(options.state_path).load().runs == []  # no run was recorded
    assert not list((tmp_path / "work").iterdir())  # no agent ran


# -- the engine ----------------------------------------------------------------------------------


def test_choose_engine_picks_by_mode_and_says_what_the_run_announces(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    graph = diamond(tmp_path / "g")
    state = passed(graph, "e")
    limits, _ = limits_for(graph, 3)
    choice = choose_engine(graph, select(graph, state, fingerprints(graph)), limits, state, False)
    assert choice.slots == 3
    assert choice.planned == ("a", "b", "c", "d") and choice.reused == ("e",)

    (tmp_path / "s").mkdir()
    sequential = write_workflow(tmp_path / "s", {}, [{"name": "x"}])
    limits, _ = limits_for(sequential, 3)
    chosen = select(sequential, State(), fingerprints(sequential))
    choice = choose_engine(sequential, chosen, limits, State(), False)
    assert choice.slots == 1 and choice.planned == ("x",) and choice.reused == ()


def test_outcome_a_signal_comes_first_then_the_engines_verdict() -> None:
    stopped = outcome([signal.SIGTERM], EngineResult(failed=False, reason=None))
    assert (stopped.status, stopped.exit_code) == (RunStatus.INTERRUPTED, exits.SIGTERM)
    assert stopped.reason == "interrupted by SIGTERM"
    failed = outcome([], EngineResult(failed=True, reason="run stopped by `a`"))
    assert (failed.status, failed.exit_code, failed.reason) == (
        RunStatus.FAILED,
        exits.FAILED,
        "run stopped by `a`",
    )
    ok = outcome([], EngineResult(failed=False, reason=None))
    assert (ok.status, ok.exit_code, ok.reason) == (RunStatus.PASSED, exits.OK, None)


def test_a_graph_run_reports_what_it_reused_and_what_a_failure_left_unrun(
    tmp_path: Path,
) -> None:
    workflow = diamond(tmp_path)
    options = RunOptions(report_dir=tmp_path / ".prompter", state_file=None)
    first = run_workflow(workflow, options)
    assert (first.status, first.exit_code, first.isolation) == (RunStatus.PASSED, 0, "shared")
    assert sorted(first.records) == ["a", "b", "c", "d", "e"] and first.reused == ()
    assert (tmp_path / "work" / "d.out").read_text() == "d\n"  # a real agent ran
    # b now fails: d after it is skipped; a, c and e stand from the first run.
    workflow = write_workflow(
        tmp_path,
        {},
        [
            {"name": "a", "depends_on": []},
            {"name": "b", "depends_on": ["a"], "verify_command": "false", "max_attempts": 1},
            {"name": "c", "depends_on": ["a"]},
            {"name": "d", "depends_on": ["b", "c"]},
            {"name": "e", "depends_on": []},
        ],
    )
    second = run_workflow(workflow, options)
    assert (second.status, second.exit_code) == (RunStatus.FAILED, exits.FAILED)
    assert second.reused == ("a", "c", "e")
    assert {n: r.status for n, r in second.records.items()} == {
        "b": TaskStatus.FAILED,
        "d": TaskStatus.SKIPPED,
    }
    assert second.not_run == ()


def test_a_sequential_run_reports_the_passes_it_found_standing_as_it_went(
    tmp_path: Path,
) -> None:
    tasks = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    workflow = write_workflow(tmp_path, {}, tasks)
    options = RunOptions(report_dir=tmp_path / ".prompter")
    assert run_workflow(workflow, options).status is RunStatus.PASSED
    tasks[1]["prompt"] = "do b differently"  # b changed: it runs, and c after it
    workflow = write_workflow(tmp_path, {}, tasks)
    again = run_workflow(workflow, options)
    assert again.status is RunStatus.PASSED and again.reused == ("a",)
    assert sorted(again.records) == ["b", "c"] and again.not_run == ()


def test_the_engines_judge_a_failure_each_in_their_own_way(tmp_path: Path) -> None:
    # Sequential: a failure a jump moved on from still fails the run.
    tasks = [
        {"name": "a", "verify_command": "false", "on_failure": "next"},
        {"name": "b"},
    ]
    workflow = write_workflow(tmp_path, {}, tasks)
    result = run_workflow(workflow, RunOptions(report_dir=tmp_path / ".prompter"))
    assert result.records["b"].status is TaskStatus.PASSED
    assert (result.status, result.exit_code) == (RunStatus.FAILED, exits.FAILED)
    assert result.reason is None  # nothing stopped it early


# -- isolation -----------------------------------------------------------------------------------


def prepare(workflow: Workflow, slots: int) -> isolation.Prepared:
    async def go() -> isolation.Prepared:
        return await isolation.prepare(workflow, "r1", slots, workflow.path.parent / ".prompter")

    return anyio.run(go)


def test_prepare_isolation_shares_the_tree_when_worktrees_are_not_wanted_or_cannot_help(
    tmp_path: Path,
) -> None:
    git_repo(tmp_path)
    shared = write_workflow(tmp_path, {"isolation": "shared"}, [{"name": "a"}])
    assert prepare(shared, 4) == isolation.Prepared(integration=None)
    auto = write_workflow(tmp_path, {"isolation": "auto"}, [{"name": "a"}])
    assert prepare(auto, 1).integration is None  # one task at a time: nothing to isolate


def test_prepare_isolation_refuses_worktrees_outside_git(tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path, {"isolation": "worktree"}, [{"name": "a"}])
    assert workflow.mode == "sequential"
    with pytest.raises(isolation.Refused, match='isolation = "worktree" needs a git repository'):
        prepare(workflow, 2)
    # The run says it as exit 2.
    with pytest.raises(RunError, match="needs a git repository"):
        run_workflow(workflow, RunOptions(report_dir=tmp_path / ".prompter"))


def test_prepare_then_land_an_integration_line_leaves_no_worktree_behind(tmp_path: Path) -> None:
    git_repo(tmp_path)
    workflow = write_workflow(tmp_path, {"isolation": "worktree"}, [{"name": "a"}])

    async def go() -> tuple[isolation.Prepared, Any]:
        prepared = await isolation.prepare(workflow, "r1", 2, tmp_path / ".prompter")
        assert prepared.integration is not None
        warnings: list[str] = []
        landing = await isolation.land(prepared.integration, False, False, warnings)
        assert warnings == []
        return prepared, landing

    prepared, landing = anyio.run(go)
    assert landing.landed == () and prepared.recovered == ()
    assert "refs/prompter/r1" not in git(tmp_path, "for-each-ref")
    assert not (tmp_path / ".git" / "prompter" / "r1").exists()


def test_a_worktree_run_lands_its_tasks_work_in_the_users_tree(tmp_path: Path) -> None:
    git_repo(tmp_path)
    workflow = write_workflow(
        tmp_path,
        {"isolation": "worktree"},
        [{"name": "a", "depends_on": []}, {"name": "b", "depends_on": []}],
    )
    result = run_workflow(workflow, RunOptions(report_dir=tmp_path / ".prompter"))
    assert (result.status, result.isolation) == (RunStatus.PASSED, "worktree")
    assert sorted(result.landed) == ["work/a.out", "work/b.out"]
    assert (tmp_path / "work" / "a.out").read_text() == "a\n"


# -- signals -------------------------------------------------------------------------------------


class Stoppable:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.stopped = anyio.Event()

    def stop(self, reason: str) -> None:
        self.reasons.append(reason)
        self.stopped.set()


def test_the_first_signal_stops_the_engine_and_is_noted(tmp_path: Path) -> None:
    engine = Stoppable()
    noted: list[int] = []

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, noted, engine)  # type: ignore[arg-type]
            await anyio.sleep(0.1)  # the receiver is in place
            os.kill(os.getpid(), signal.SIGTERM)
            with anyio.fail_after(3):  # well within the backstop's deadline
                await engine.stopped.wait()
            tg.cancel_scope.cancel()

    before = signal.getsignal(signal.SIGTERM)
    anyio.run(go)
    assert noted == [signal.SIGTERM]
    assert engine.reasons == ["interrupted by SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) == before  # the backstop's handler is gone
