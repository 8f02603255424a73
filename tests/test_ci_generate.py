"""`prompter ci generate`: the GitHub Actions workflow it writes (parsed back, linted as GitHub
users would), `--check`, errors, and `plan --jobs`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from prompter.cli import main
from prompter.config import load_workflow
from prompter.fanout.ci_workflow import MERGE_JOB, job_ids
from prompter.fanout.plan import workflow_grouping

from .action_files import REPO, tool

DIAMOND = """\
[settings]
max_parallel_tasks = 1
agent = "command"
agent_command = ["true"]

[[tasks]]
name = "A"
prompt = "a"
verify_command = "true"

[[tasks]]
name = "B"
prompt = "b"
verify_command = "true"
depends_on = ["A"]

[[tasks]]
name = "C"
prompt = "c"
verify_command = "true"
depends_on = ["A"]

[[tasks]]
name = "D"
prompt = "d"
verify_command = "true"
depends_on = ["B", "C"]

[[tasks]]
name = "E"
prompt = "e"
verify_command = "true"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()  # a repository root is all `ci generate` looks for
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "wf.toml").write_text(DIAMOND, "utf-8")
    return tmp_path


def generate(
    repo: Path, *extra: str, capsys: pytest.CaptureFixture[str] | None = None
) -> tuple[int, Path]:
    out = repo / ".github" / "workflows" / "prompter.yml"
    code = main(["ci", "generate", str(repo / "ci" / "wf.toml"), "-o", str(out), *extra])
    return code, out


def jobs_of(path: Path) -> dict[str, dict[str, object]]:
    data = yaml.safe_load(path.read_text("utf-8"))
    jobs = data["jobs"]
    assert isinstance(jobs, dict)
    return jobs


def action_inputs(job: dict[str, object]) -> dict[str, str]:
    steps = job["steps"]
    assert isinstance(steps, list) and steps[0]["uses"].startswith("actions/checkout@")
    return dict(steps[1]["with"])


def test_a_diamond_and_an_independent_task_get_a_job_each(repo: Path) -> None:
    code, out = generate(repo)
    assert code == 0
    jobs = jobs_of(out)
    assert list(jobs) == ["p-a", "p-e", "p-b", "p-c", "p-d", MERGE_JOB]
    assert "needs" not in jobs["p-a"] and "if" not in jobs["p-a"]
    assert jobs["p-b"]["needs"] == ["p-a"] and jobs["p-c"]["needs"] == ["p-a"]
    assert jobs["p-d"]["needs"] == ["p-b", "p-c"]  # not p-a: the transitive reduction
    assert jobs["p-d"]["if"] == "${{ !cancelled() }}"
    d = action_inputs(jobs["p-d"])
    assert d["workflow"] == "ci/wf.toml" and d["tasks"] == "D" and d["fanout_job"] == "p-d"
    assert d["fanout_imports"] == "p-a p-b p-c"
    assert d["anthropic_api_key"] == "${{ secrets.ANTHROPIC_API_KEY }}"
    merge = jobs[MERGE_JOB]
    assert merge["needs"] == ["p-a", "p-e", "p-b", "p-c", "p-d"]
    assert merge["if"] == "${{ !cancelled() }}"
    assert action_inputs(merge)["fanout_merge"] == "p-a p-e p-b p-c p-d"
    text = out.read_text("utf-8")
    assert "#   prompter ci generate ci/wf.toml -o .github/workflows/prompter.yml\n" in text
    assert re.search(r"^# prompter-fingerprint: [0-9a-f]{64}$", text, re.M)
    assert "  # 1 task: D\n  p-d:\n" in text


def test_the_jobs_match_the_grouping(repo: Path) -> None:
    workflow = load_workflow(repo / "ci" / "wf.toml")
    grouping = workflow_grouping(workflow, 3)
    code, out = generate(repo, "--max-jobs", "3")
    assert code == 0
    jobs = jobs_of(out)
    ids = job_ids([workflow.tasks[g[0]].name for g in grouping.groups])
    assert list(jobs) == [*ids, MERGE_JOB] and len(ids) <= 3
    for g, job in enumerate(ids):
        assert jobs[job].get("needs", []) == [ids[n] for n in grouping.needs[g]]
        names = [workflow.tasks[t].name for t in grouping.groups[g]]
        assert action_inputs(jobs[job])["tasks"] == " ".join(names)


def test_check_is_0_when_current_and_1_after_an_edit(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(repo)[0] == 0
    assert generate(repo, "--check")[0] == 0
    assert generate(repo, "--check", "--runs-on", "ubuntu-24.04")[0] == 1  # another option
    toml = repo / "ci" / "wf.toml"
    toml.write_text(DIAMOND.replace('prompt = "e"', 'prompt = "e, again"'), "utf-8")
    capsys.readouterr()
    assert generate(repo, "--check")[0] == 1
    err = capsys.readouterr().err
    assert "regenerate it with: prompter ci generate ci/wf.toml -o .github/workflows" in err
    assert generate(repo)[0] == 0 and generate(repo, "--check")[0] == 0


def test_check_of_a_missing_file_is_1_and_check_without_o_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(repo, "--check")[0] == 1
    assert "missing; write it with" in capsys.readouterr().err
    assert main(["ci", "generate", str(repo / "ci" / "wf.toml"), "--check"]) == 2


def test_bad_input_is_a_located_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ci", "generate", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text(DIAMOND.replace('depends_on = ["A"]', 'depends_on = ["Z"]', 1), "utf-8")
    assert main(["ci", "generate", str(broken)]) == 2
    assert re.search(
        r"broken\.toml:\d+:\d+: error: unknown dependency `Z`", capsys.readouterr().err
    )
    sequential = tmp_path / "seq.toml"
    sequential.write_text('[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n')
    assert main(["ci", "generate", str(sequential)]) == 2
    assert "graph mode" in capsys.readouterr().err
    expression = tmp_path / "expr.toml"
    expression.write_text(DIAMOND.replace('name = "E"', 'name = "E${{ github.token }}"'))
    assert main(["ci", "generate", str(expression)]) == 2
    assert "would evaluate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["ci", "generate", str(broken), "--max-jobs", "151"])
    assert exited.value.code == 2


def test_job_ids_are_safe_unique_and_short() -> None:
    ids = job_ids(["Build API", "build-api", "build_api", "é", "x" * 300, "x" * 300])
    assert ids[:4] == ["p-build-api", "p-build-api-2", "p-build-api-3", "p-task"]
    assert len(ids[4]) == len(ids[5]) == 100 and ids[5].endswith("-2")
    assert all(re.fullmatch(r"p-[a-z0-9-]+", i) for i in ids)


def test_names_with_blanks_go_one_per_line(tmp_path: Path) -> None:
    toml = tmp_path / "wf.toml"
    toml.write_text(DIAMOND.replace('name = "E"', 'name = "E, the end"'))
    out = tmp_path / "out.yml"
    assert main(["ci", "generate", str(toml), "-o", str(out), "--max-jobs", "1"]) == 0
    tasks = action_inputs(jobs_of(out)["p-a"])["tasks"]
    assert sorted(tasks.splitlines()) == ["A", "B", "C", "D", "E, the end"]


def lint(path: Path) -> None:
    for argv in (
        [tool("actionlint"), "-no-color", path.name],
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", path.name],
    ):
        done = subprocess.run(
            argv, cwd=path.parent, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"{argv[0]}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize(
    "extra", [(), ("--max-jobs", "2", "--uses", "./", "--runs-on", "ubuntu-24.04")]
)
def test_generated_workflows_pass_actionlint_and_the_schema(
    repo: Path, extra: tuple[str, ...]
) -> None:
    code, out = generate(repo, *extra)
    assert code == 0
    lint(out)


@pytest.mark.parametrize("example", ["fanout.toml", "pipeline.toml"])
def test_the_bundled_examples_generate_linted_workflows(tmp_path: Path, example: str) -> None:
    out = tmp_path / "prompter.yml"
    assert main(["ci", "generate", str(REPO / "examples" / example), "-o", str(out)]) == 0
    assert f"workflow: examples/{example}\n" in out.read_text("utf-8")
    lint(out)


def test_the_readme_shows_what_ci_generate_writes_for_the_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    section = readme.split("\n## Many machines\n", 1)[1].split("\n## ", 1)[0]
    command = "prompter ci generate examples/fanout.toml -o .github/workflows/prompter-fanout.yml"
    assert command in section
    shown = re.search(r"```yaml\n(# Generated by `prompter ci generate`.*?)```", section, re.S)
    assert shown, "the README's Many machines section shows the generated workflow"
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    assert main(command.split()[1:-2]) == 0  # the same file, to stdout
    written = capsys.readouterr().out
    # Only the header's command line differs: stdout has no -o.
    written = written.replace("#   prompter ci generate examples/fanout.toml\n", f"#   {command}\n")
    assert shown.group(1) == written


def test_plan_jobs_prints_the_grouping_and_both_estimates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", str(REPO / "examples" / "fanout.toml"), "--jobs", "50"]) == 0
    out = capsys.readouterr().out
    assert "5 tasks in 5 jobs (at most 50), 4 needs between them" in out
    assert "  p-release: release (needs p-api, p-cli)\n" in out
    assert re.search(r"estimate: 17\.2 min on CI .*; one machine 25\.8 min; lower bound 15\.8", out)
    assert main(["plan", str(REPO / "examples" / "fanout.toml"), "--jobs", "1", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert len(data["jobs"]) == 1 and len(data["jobs"][0]["tasks"]) == 5
    assert data["estimate"]["unit"] == "s"
