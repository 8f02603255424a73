"""What the action reads and writes besides the run: odd inputs, artifact names, file commands
that cannot be written, the per-step annotation budget, an unexpected error.

Each test runs `prompter-action` as the runner does (action_step.run_step) unless it is about
one function; the runner's parsing is modelled by runner_model.py. The artifact service that
fails now and then is in test_artifact.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .action_step import TASKS, Step, run_step, workspace
from .artifact_service import artifact_service
from .runner_model import Command, commands

RUNNER_KEEPS = 10  # annotations of one type per step; the runner drops the rest


def shown(step: Step, kind: str) -> list[Command]:
    """The annotations of `kind` the runner keeps for the step: the first ten printed."""
    return step.of(kind)[:RUNNER_KEEPS]


def assert_clean(step: Step) -> None:
    assert "Traceback" not in step.stderr, step.stderr


# --- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "1²"])
def test_non_ascii_digits_in_max_parallel_are_a_bad_input(tmp_path: Path, value: str) -> None:
    # str.isdigit() says yes to "²", which int() then refuses: it was a traceback (exit 1).
    step = run_step(tmp_path, workspace(tmp_path, TASKS[:1], {}), {"max_parallel": value})
    assert_clean(step)
    assert step.code == 2
    (error,) = step.of("error")
    assert error.data == f"input `max_parallel` must be a positive integer, not {value!r}"
    assert step.outputs["status"] == "invalid"


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e999"])
def test_an_infinite_max_cost_usd_is_a_bad_input(tmp_path: Path, value: str) -> None:
    # The workflow file refuses inf for max_cost_usd; the input took it, silently uncapped.
    step = run_step(tmp_path, workspace(tmp_path, TASKS[:1], {}), {"max_cost_usd": value})
    assert_clean(step)
    assert step.code == 2
    (error,) = step.of("error")
    assert error.data == f"input `max_cost_usd` must be a number above 0, not {value!r}"
    assert not (tmp_path / "agent.jsonl").exists()  # nothing ran


def test_one_task_per_line_also_for_a_single_line_block(tmp_path: Path) -> None:
    # `tasks: |` with one name gives "name\n": one name per line, even when it has spaces.
    tasks = [
        {"name": "fix the bug", "prompt": "x", "verify_command": "true"},
        {"name": "other", "prompt": "x", "verify_command": "exit 1", "max_attempts": 1},
    ]
    ws = workspace(tmp_path, tasks, {})
    step = run_step(tmp_path, ws, {"tasks": "fix the bug\n", "upload_artifact": "false"})
    assert_clean(step)
    assert step.code == 0, step.stdout
    assert (step.outputs["status"], step.outputs["passed"]) == ("passed", "1")
    log = (tmp_path / "agent.jsonl").read_text().splitlines()
    ran = [json.loads(line)["task"] for line in log]
    assert ran == ["fix the bug"]


@pytest.mark.parametrize("name", ["reports/pr 1", "a:b", 'say "hi"', "x?", "back\\slash"])
def test_an_artifact_name_the_service_refuses_is_a_bad_input_before_anything_runs(
    tmp_path: Path, name: str
) -> None:
    # actions/toolkit refuses these characters in a name (validateArtifactName): found only
    # after every agent had run (and been paid for), and then only as a warning.
    with artifact_service() as service:
        step = run_step(
            tmp_path,
            workspace(tmp_path, TASKS[:1], {}),
            {"artifact_name": name},
            ACTIONS_RUNTIME_TOKEN=service.token,
            ACTIONS_RESULTS_URL=service.url,
        )
    assert_clean(step)
    assert step.code == 2
    (error,) = step.of("error")
    assert error.data.startswith("input `artifact_name` cannot contain")
    assert error.data.endswith(f"not {name!r}")
    assert not (tmp_path / "agent.jsonl").exists()
    assert service.calls == []


def test_an_artifact_name_is_not_checked_when_nothing_is_uploaded(tmp_path: Path) -> None:
    step = run_step(
        tmp_path,
        workspace(tmp_path, TASKS[:1], {}),
        {"artifact_name": "a/b", "upload_artifact": "false"},
    )
    assert step.code == 0 and step.outputs["status"] == "passed"


# --- file commands that cannot be written -------------------------------------------------


def test_a_step_summary_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    # Was: a traceback after the run, so no annotations, no artifact, exit 1 for a green run.
    not_a_file = tmp_path / "summary_dir"
    not_a_file.mkdir()
    with artifact_service() as service:
        step = run_step(
            tmp_path,
            workspace(tmp_path, TASKS, {}),
            {},
            GITHUB_STEP_SUMMARY=str(not_a_file),
            ACTIONS_RUNTIME_TOKEN=service.token,
            ACTIONS_RESULTS_URL=service.url,
        )
    assert_clean(step)
    assert step.code == 1  # the task failure, as without the problem
    assert step.outputs["status"] == "failed" and step.outputs["artifact_id"] == "4242"
    assert [c.properties.get("title") for c in step.of("error")] == ["prompter: task bad failed"]
    warnings = [c.data for c in step.of("warning")]
    assert any(w.startswith("step summary not written") for w in warnings), warnings
    assert any("skipped (" in w for w in warnings)


@pytest.mark.parametrize("where", ["a directory", "a missing directory"])
def test_outputs_that_cannot_be_written_are_an_error_not_a_traceback(
    tmp_path: Path, where: str
) -> None:
    target = tmp_path / "out_dir"
    if where == "a directory":
        target.mkdir()
    else:
        target = target / "missing" / "set_output"
    step = run_step(
        tmp_path,
        workspace(tmp_path, TASKS[:1], {}),
        {"upload_artifact": "false"},
        GITHUB_OUTPUT=str(target),
    )
    assert_clean(step)
    assert step.code == 0  # the run's own exit code
    (error,) = step.of("error")
    assert error.data.startswith("step outputs not written")


# --- one annotation budget for the whole step ---------------------------------------------


def lint_tasks(count: int) -> list[dict[str, Any]]:
    """Tasks that each draw a workflow warning (`model` means nothing to a command agent)."""
    return [
        {"name": f"lint{i:02}", "prompt": "x", "verify_command": "true", "model": "m"}
        for i in range(count)
    ]


def test_run_outcome_warnings_survive_many_workflow_warnings(tmp_path: Path) -> None:
    # Workflow warnings went out one by one, uncapped: past the tenth the runner drops the
    # rest, so the skipped tasks and the missing artifact were never shown.
    tasks = [*lint_tasks(12), *TASKS]
    step = run_step(tmp_path, workspace(tmp_path, tasks, {}), {})  # no artifact service
    assert_clean(step)
    assert step.code == 1
    warnings = step.of("warning")
    assert len(warnings) <= RUNNER_KEEPS
    texts = [c.data for c in shown(step, "warning")]
    assert any(t.startswith("report artifact not uploaded") for t in texts), texts
    assert any("1 task skipped (dependency `bad` failed)" in t for t in texts), texts
    assert any(t.startswith("model has no effect") for t in texts)  # some of them
    assert texts[-1].startswith("5 more like this: listed in the job log")
    assert 'warning: model has no effect: task `lint11` uses agent = "command"' in step.stdout
    assert [c.properties.get("title") for c in step.of("error")] == ["prompter: task bad failed"]


def test_warnings_just_within_the_budget_are_all_shown(tmp_path: Path) -> None:
    tasks = [*lint_tasks(8), *TASKS]  # 8 workflow warnings + 1 skipped
    step = run_step(tmp_path, workspace(tmp_path, tasks, {}), {"upload_artifact": "false"})
    assert_clean(step)
    texts = [c.data for c in step.of("warning")]
    assert len(texts) == 9 and not any("more like this" in t for t in texts)


# --- an unexpected error ------------------------------------------------------------------


def test_an_unexpected_error_is_one_annotation_and_its_traceback_issues_no_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bug's traceback went to stderr as is, where the runner reads commands too: text in an
    # exception (a task name, a path an agent chose) could issue one. Now it is fenced.
    from prompter.github import action

    def broken(env: Any, console: Any) -> int:
        raise RuntimeError("boom\n::error::injected\n##[warning]old style")

    monkeypatch.setattr(action, "run_action", broken)
    # main() sets no_new_privs, which would stay on pytest's process and every later test's
    # children (sudo in the container tests then refuses to run): this test is about the fence.
    called: list[bool] = []
    monkeypatch.setattr("prompter.identity.no_new_privileges", lambda: called.append(True))
    # main() also takes the runner's credentials and file commands out of the environment, for
    # good: monkeypatch takes them first, so that it puts them back for the later tests.
    for name in (*action.RUNNER_CREDENTIALS, *action.FILE_COMMANDS):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exited:
        action.main()
    assert called == [True]
    out, err = capsys.readouterr()
    assert exited.value.code == 1
    found = commands(out + "\n" + err)
    assert [(c.name, c.properties.get("title")) for c in found] == [
        ("error", "prompter: internal error")
    ]
    assert found[0].data == "RuntimeError: boom ::error::injected ##[warning]old style"
    assert "Traceback (most recent call last)" in out  # shown, inside a fence


def test_an_unknown_task_is_named_as_the_input_that_named_it(tmp_path: Path) -> None:
    # The message named `--task`, a flag the action's user never gave.
    step = run_step(tmp_path, workspace(tmp_path, TASKS[:1], {}), {"tasks": "goood"})
    assert_clean(step)
    assert step.code == 2
    (error,) = step.of("error")
    assert error.data.startswith("input `tasks`: no such task `goood` in "), error.data
    assert error.data.endswith("; did you mean `good`?"), error.data
    assert "--task" not in step.stdout + step.stderr
