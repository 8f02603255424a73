"""What the environment lacks is found before agents are paid for it, and never blamed on them
(issue 15, item 4): a Claude workflow without credentials exits 2 at once, naming what to set;
a verify command that cannot run (exit 126/127) fails its task as an environment error, without
a retry and without a word of it to the agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import Harness

FAKE_CLAUDE = Path(__file__).parent / "agents" / "fake_claude.py"
KEY = "sk-ant-api03-fake-key-for-the-fake-cli"
CREDENTIAL_VARS = (
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CONFIG_DIR",
    "PROMPTER_CLAUDE_CLI",
)
NAMED = (
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "`anthropic_api_key`",
    "`claude_code_oauth_token`",
    "claude /login",
    "apiKeyHelper",
    "CLAUDE_CODE_USE_BEDROCK",
)


class Project:
    """A folder with a Claude workflow (the fake CLI), run by the real CLI with an environment
    that holds no credential and a HOME of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.state = root / "claude-state"
        self.workflow = root / "prompter.toml"  # its state: .prompter/state.json
        self.write()

    def write(self, settings: str = "", tasks: str | None = None) -> None:
        tasks = (
            tasks
            if tasks is not None
            else ('[[tasks]]\nname = "a"\nprompt = "do a"\nverify_command = "true"\n')
        )
        self.workflow.write_text(
            f'[settings]\nisolation = "shared"\nclaude_cli_path = {json.dumps(str(FAKE_CLAUDE))}\n'
            f"{settings}\n{tasks}"
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
        return {**env, "HOME": str(self.home), "FAKE_CLAUDE_STATE": str(self.state), **extra}

    def prompter(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "prompter", *args],
            cwd=self.root,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return self.prompter("run", "--progress", "plain", *args, str(self.workflow), **extra)

    def claude_calls(self) -> int:
        calls = self.state / "calls.jsonl"
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    def status(self) -> dict[str, Any]:
        done = self.prompter("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def p(tmp_path: Path) -> Project:
    return Project(tmp_path)


def refused(done: subprocess.CompletedProcess[str]) -> bool:
    return done.returncode == 2 and "no credentials for Claude Code" in done.stderr


# -- credentials -------------------------------------------------------------------------------


def test_without_credentials_the_run_exits_2_at_once_naming_what_to_set(p: Project) -> None:
    started = time.monotonic()
    done = p.run()
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert took < 5, took
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr  # one message
    assert lines[0].startswith(f"prompter: {p.workflow}: no credentials for Claude Code (task `a`)")
    for name in NAMED:
        assert name in lines[0], name
    assert p.claude_calls() == 0  # no agent process started
    # No attempt, no run recorded: no state at all, or one without either.
    if (p.root / ".prompter" / "state.json").exists():
        status = p.status()
        assert status["tasks"] == {} and status["runs"] == [], status


def test_with_anthropic_api_key_it_goes_on_as_before(p: Project) -> None:
    done = p.run(ANTHROPIC_API_KEY=KEY)
    assert done.returncode == 0, done.stderr
    assert p.claude_calls() == 1
    assert p.status()["tasks"]["a"]["status"] == "passed"


@pytest.mark.parametrize(
    "env",
    [
        {"CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-token"},
        {"ANTHROPIC_AUTH_TOKEN": "gateway-token"},
        {"CLAUDE_CODE_USE_BEDROCK": "1"},
        {"CLAUDE_CODE_USE_VERTEX": "true"},
        {"CLAUDE_CODE_USE_FOUNDRY": "1"},
    ],
    ids=lambda env: next(iter(env)),
)
def test_each_variable_claude_code_reads_counts(p: Project, env: dict[str, str]) -> None:
    done = p.run("--dry-run", **env)
    assert done.returncode == 0 and "no credentials" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    "env",
    [{"ANTHROPIC_API_KEY": ""}, {"ANTHROPIC_API_KEY": "  "}, {"CLAUDE_CODE_USE_BEDROCK": "0"}],
    ids=["empty", "blank", "bedrock-0"],
)
def test_an_empty_variable_or_a_flag_turned_off_does_not_count(
    p: Project, env: dict[str, str]
) -> None:
    assert refused(p.run(**env))


def test_agent_env_is_the_environment_the_agent_gets(p: Project) -> None:
    p.write(settings=f'agent_env = {{ ANTHROPIC_API_KEY = "{KEY}" }}')
    done = p.run()
    assert done.returncode == 0, done.stderr
    assert p.claude_calls() == 1


def test_a_task_without_a_credential_is_named_when_another_has_one(p: Project) -> None:
    p.write(
        tasks=(
            '[[tasks]]\nname = "keyed"\nprompt = "x"\nverify_command = "true"\ndepends_on = []\n'
            f'agent_env = {{ CLAUDE_CODE_OAUTH_TOKEN = "{KEY}" }}\n'
            '[[tasks]]\nname = "bare"\nprompt = "x"\nverify_command = "true"\ndepends_on = []\n'
        )
    )
    done = p.run()
    assert refused(done), done.stderr
    assert "(task `bare`)" in done.stderr and "keyed" not in done.stderr
    assert p.claude_calls() == 0


def test_only_the_tasks_that_will_run_are_checked(p: Project) -> None:
    p.write(
        tasks=(
            '[[tasks]]\nname = "claude"\nprompt = "x"\nverify_command = "true"\ndepends_on = []\n'
            '[[tasks]]\nname = "script"\nprompt = "x"\nverify_command = "true"\ndepends_on = []\n'
            'agent = "command"\nagent_command = ["true"]\n'
        )
    )
    assert refused(p.run())
    done = p.run("--task", "script", "--only")
    assert done.returncode == 0, done.stderr


def test_a_command_workflow_needs_no_claude_credentials(tmp_path: Path) -> None:
    h = Harness(tmp_path)  # agent = "command"
    h.task("a")
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    done = subprocess.run(
        [sys.executable, "-m", "prompter", "run", "--progress", "none", str(h.write())],
        cwd=tmp_path,
        env={**env, **h.env(), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def login(folder: Path, content: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".credentials.json").write_text(json.dumps(content))


LOGIN = {"claudeAiOauth": {"accessToken": "sk-ant-oat01-x", "refreshToken": "sk-ant-ort01-y"}}


def test_a_claude_login_in_home_counts(p: Project) -> None:
    login(p.home / ".claude", LOGIN)
    done = p.run("--dry-run")
    assert done.returncode == 0 and "no credentials" not in done.stderr, done.stderr


def test_a_login_under_claude_config_dir_counts(p: Project) -> None:
    login(p.root / "config", LOGIN)
    assert refused(p.run())  # not where HOME is
    done = p.run("--dry-run", CLAUDE_CONFIG_DIR=str(p.root / "config"))
    assert done.returncode == 0 and "no credentials" not in done.stderr, done.stderr


def test_an_api_key_an_older_claude_code_saved_at_its_login_counts(p: Project) -> None:
    (p.home / ".claude.json").write_text(json.dumps({"primaryApiKey": ""}))
    assert refused(p.run())
    (p.home / ".claude.json").write_text(json.dumps({"primaryApiKey": KEY}))
    done = p.run("--dry-run")
    assert done.returncode == 0 and "no credentials" not in done.stderr, done.stderr


def test_an_empty_or_broken_credentials_file_does_not_count(p: Project) -> None:
    login(p.home / ".claude", {})
    assert refused(p.run())
    (p.home / ".claude" / ".credentials.json").write_text("{not json")
    assert refused(p.run())


def test_a_fifo_where_the_credentials_go_is_not_waited_on(p: Project) -> None:
    (p.home / ".claude").mkdir()
    os.mkfifo(p.home / ".claude" / ".credentials.json")
    assert refused(p.run())


@pytest.mark.parametrize(
    ("where", "settings"),
    [
        ("home/.claude/settings.json", {"apiKeyHelper": "/usr/local/bin/get-key"}),
        ("home/.claude/settings.json", {"env": {"ANTHROPIC_API_KEY": KEY}}),
        (".claude/settings.json", {"apiKeyHelper": "vault read -field=key anthropic"}),
        (".claude/settings.local.json", {"env": {"CLAUDE_CODE_USE_VERTEX": "1"}}),
    ],
    ids=["user-helper", "user-env", "project-helper", "local-env"],
)
def test_claude_code_settings_that_supply_a_credential_count(
    p: Project, where: str, settings: dict[str, object]
) -> None:
    path = p.root / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings))
    done = p.run("--dry-run")
    assert done.returncode == 0 and "no credentials" not in done.stderr, done.stderr


def test_settings_without_a_credential_do_not_count(p: Project) -> None:
    (p.root / ".claude").mkdir()
    (p.root / ".claude" / "settings.json").write_text(
        json.dumps({"apiKeyHelper": "", "env": {"ANTHROPIC_MODEL": "x"}, "model": "opus"})
    )
    assert refused(p.run())


def test_dry_run_prints_the_plan_and_the_problem_and_exits_0(p: Project) -> None:
    done = p.run("--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run: sequential mode, from a" in done.stdout
    (line,) = done.stderr.splitlines()
    assert line.startswith("prompter: warning: a run would stop here (exit 2): ")
    assert all(name in line for name in NAMED), line
    assert p.claude_calls() == 0


def test_init_names_the_variables_before_asking_claude(p: Project) -> None:
    (p.root / "plan.json").write_text(json.dumps({"init": [{"result": "none"}]}))
    extra = {
        "PROMPTER_CLAUDE_CLI": str(FAKE_CLAUDE),
        "FAKE_CLAUDE_PLAN": str(p.root / "plan.json"),
        "FAKE_CLAUDE_DEFAULT_KEY": "init",
    }
    done = p.prompter("init", "new.toml", "--yes", **extra)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("prompter init: no credentials for Claude Code: ")
    assert all(name in done.stderr for name in NAMED), done.stderr
    assert p.claude_calls() == 0 and not (p.root / "new.toml").exists()


# -- verify commands that cannot run: the environment's fault ----------------------------------


def shared(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    h.settings["isolation"] = "shared"
    return h


def only_first_attempts(h: Harness, *names: str) -> None:
    """Each task's agent ran once, and no prompt carried a failure back to it."""
    calls = h.calls()
    assert sorted((c["task"], c["attempt"]) for c in calls) == [(n, 1) for n in sorted(names)]
    assert not any("did not pass" in c["prompt"] for c in calls)


def test_a_command_not_found_fails_the_task_once_as_an_environment_error(tmp_path: Path) -> None:
    h = shared(tmp_path)
    h.task("t", verify_command="no-such-tool-xyz --check", max_attempts=3, depends_on=[])
    h.task("after", depends_on=["t"])
    h.task("independent", depends_on=[])
    assert h.run() == 1
    tasks = h.status()["tasks"]
    reason = tasks["t"]["reason"]
    assert reason.startswith("verify_command could not run (exit 127: command not found): ")
    assert "no-such-tool-xyz" in reason and "worktree_link" not in reason  # no worktree here
    assert [a["environment_error"] for a in tasks["t"]["attempts"]] == [True]
    assert tasks["after"]["status"] == "skipped" and tasks["independent"]["status"] == "passed"
    only_first_attempts(h, "t", "independent")
    log = (tmp_path / ".prompter" / "logs" / "t.log").read_text()
    assert "an environment error: not retried, not sent to the agent" in log
    junit = (tmp_path / ".prompter" / "junit.xml").read_text()
    assert 'type="environment_error"' in junit and "<failure" not in junit, junit
    summary = (tmp_path / ".prompter" / "summary.md").read_text()
    assert "failed (environment error)" in summary


def test_a_check_that_cannot_execute_exit_126_is_an_environment_error(tmp_path: Path) -> None:
    h = shared(tmp_path)
    (h.work / "check.sh").write_text("#!/bin/sh\nexit 0\n")  # not executable
    h.task("t", verify_command="./check.sh", max_attempts=3)
    assert h.run() == 1
    record = h.status()["tasks"]["t"]
    assert record["reason"].startswith("verify_command could not run (exit 126: cannot execute): ")
    assert "./check.sh" in record["reason"], record["reason"]
    assert len(record["attempts"]) == 1
    only_first_attempts(h, "t")


def test_sequential_mode_does_not_retry_it_either_and_follows_on_failure(tmp_path: Path) -> None:
    h = shared(tmp_path)
    h.task("t", verify_command="exit 127", max_attempts=3, on_failure="next")
    h.task("u")
    assert h.run() == 1
    tasks = h.status()["tasks"]
    assert len(tasks["t"]["attempts"]) == 1 and tasks["u"]["status"] == "passed"
    only_first_attempts(h, "t", "u")


def test_127_as_the_success_code_is_a_pass_and_other_codes_still_retry(tmp_path: Path) -> None:
    h = shared(tmp_path)
    h.task("ok", verify_command="exit 127", verify_success_code=127, depends_on=[])
    h.task(
        "flaky", [{}, {}], verify_command="test -f flag || { touch flag; exit 1; }", depends_on=[]
    )
    assert h.run() == 0
    attempts = {c["task"]: c["attempt"] for c in h.calls()}
    assert attempts == {"ok": 1, "flaky": 2}  # exit 1 is the agent's to fix: retried
    flaky = [c for c in h.calls() if c["task"] == "flaky"]
    assert "did not pass" in flaky[1]["prompt"]


# -- in the GitHub Action ----------------------------------------------------------------------


def claude_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / "prompter.toml").write_text(
        f"[settings]\nclaude_cli_path = {json.dumps(str(FAKE_CLAUDE))}\n\n"
        '[[tasks]]\nname = "a"\nprompt = "do a"\nverify_command = "true"\n'
    )
    return ws


def test_the_action_without_its_key_inputs_fails_the_step_naming_them(tmp_path: Path) -> None:
    from .action_step import run_step

    ws = claude_workspace(tmp_path)
    step = run_step(tmp_path, ws, {}, FAKE_CLAUDE_STATE=str(tmp_path / "claude-state"))
    assert step.code == 2, step.stderr
    (error,) = [c for c in step.of("error") if "no credentials" in c.data]
    assert "`anthropic_api_key` / `claude_code_oauth_token`" in error.data
    assert not (tmp_path / "claude-state" / "calls.jsonl").exists()
    # With the input, the same step runs the agent.
    again = run_step(
        tmp_path,
        ws,
        {"anthropic_api_key": KEY},
        FAKE_CLAUDE_STATE=str(tmp_path / "claude-state"),
    )
    assert again.code == 0, again.stderr
    assert (tmp_path / "claude-state" / "calls.jsonl").exists()


def test_the_actions_dry_run_warns_instead(tmp_path: Path) -> None:
    from .action_step import run_step

    ws = claude_workspace(tmp_path)
    step = run_step(tmp_path, ws, {"dry_run": "true"})
    assert step.code == 0 and step.outputs["status"] == "dry-run", step.stderr
    (warning,) = [c for c in step.of("warning") if "no credentials" in c.data]
    assert "a run would stop here (exit 2)" in warning.data
