"""Reports of a merged fan-out state: a timeline lane per job, cost per job and in total, the job
of each testcase, and the job a skipped task's dependency failed in."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from prompter.config import Workflow
from prompter.fingerprints import fingerprints
from prompter.records import AgentLimitChange, RunRecord, State, TaskStatus, merge
from prompter.report import summary
from prompter.report.junit import build_junit
from prompter.report.view_model import analyse, utc_text

from .built_states import T0, blocks, record, write_toml
from .mermaid_render import render

JOBS = ("p-a", "p-b", "p-d")


def _run(job: str, start: float, end: float, status: str) -> RunRecord:
    return RunRecord(
        run_id=f"run-{job}",
        workflow="fan.toml",
        workflow_id="fan.toml",
        started_at=start,
        finished_at=end,
        status=status,
        job=job,
    )


def fan_out(tmp_path: Path) -> tuple[Workflow, State]:
    """Three jobs: p-a runs a and e; p-b runs b (fails, 2 attempts) and c, after a; p-d runs f
    and records d (after b and c) skipped. Merged as the final job merges them."""
    workflow = write_toml(
        tmp_path / "fan.toml",
        [
            {"name": "a", "depends_on": []},
            {"name": "e", "depends_on": []},
            {"name": "b", "depends_on": ["a"]},
            {"name": "c", "depends_on": ["a"]},
            {"name": "d", "depends_on": ["b", "c"]},
            {"name": "f", "depends_on": []},
        ],
    )
    ra = _run("p-a", T0, T0 + 40, "passed")
    rb = _run("p-b", T0 + 60, T0 + 120, "failed")
    rd = _run("p-d", T0 + 140, T0 + 170, "failed")
    a = record("a", TaskStatus.PASSED, T0 + 1, 30, run_id=ra.run_id)
    e = record("e", TaskStatus.PASSED, T0 + 2, 20, run_id=ra.run_id)
    b = record(
        "b",
        TaskStatus.FAILED,
        T0 + 61,
        50,
        attempts=2,
        output="boom",
        reason="verify_command exited 1 (expected 0)",
        run_id=rb.run_id,
    )
    c = record("c", TaskStatus.PASSED, T0 + 62, 30, run_id=rb.run_id)
    d = record(
        "d", TaskStatus.SKIPPED, T0 + 141, 0, reason="dependency `b` failed", run_id=rd.run_id
    )
    f = record("f", TaskStatus.PASSED, T0 + 142, 25, run_id=rd.run_id)
    prints = fingerprints(workflow)
    for task in (a, e, b, c, d, f):
        task.fingerprint = prints[task.name]
    states = [
        State.model_construct(version=1, tasks={"a": a, "e": e}, runs=[ra]),
        State.model_construct(version=1, tasks={"a": a, "b": b, "c": c}, runs=[ra, rb]),
        State.model_construct(
            version=1, tasks={"a": a, "b": b, "c": c, "d": d, "f": f}, runs=[ra, rb, rd]
        ),
    ]
    return workflow, merge(states)


def test_facts_of_a_fan_out_are_all_its_jobs(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    facts = analyse(state, workflow)
    assert [j.job for j in facts.jobs] == list(JOBS)
    assert all(v.current for v in facts.tasks)  # every job's tasks, not only the last job's
    assert facts.result == "failed"
    assert facts.wall_s == pytest.approx(170)  # the first job's start to the last job's end
    assert [round(j.cost_usd, 2) for j in facts.jobs] == [0.02, 0.03, 0.01]
    assert facts.cost_usd == pytest.approx(0.06)
    assert {v.name: (v.job, v.cause_job) for v in facts.tasks} == {
        "a": ("p-a", None),
        "e": ("p-a", None),
        "b": ("p-b", None),
        "c": ("p-b", None),
        "d": ("p-d", "p-b"),
        "f": ("p-d", None),
    }


def test_summary_has_a_lane_and_a_cost_per_job(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    text = summary.build_summary(state, workflow)
    assert "### Jobs" in text
    assert "| p-a | ✅ passed | 2 | 2 | 0 | 0 | 40.0 s | $0.02 |" in text
    assert "| p-b | ❌ failed | 2 | 1 | 1 | 0 | 1m00s | $0.03 |" in text
    assert "| p-d | ❌ failed | 2 | 1 | 0 | 1 | 30.0 s | $0.01 |" in text
    assert "| **total** | ❌ failed | 6 | 4 | 1 | 1 | 2m50s | **$0.06** |" in text
    assert "3 jobs of a fan-out, the first started" in text
    # The task table: the job of each task, and where a skipped task's dependency failed.
    assert "| d | ⏭️ skipped in p-d |" in text
    assert "dependency \\`b\\` failed \\(in job p-b\\)" in text
    assert "(earlier run)" not in text and "(changed since)" not in text
    flow, _legend, gantt = blocks(text)
    # The graph is coloured across all jobs: nothing is "passed earlier".
    assert ":::reused" not in flow and "t4[" in flow and ":::skipped" in flow
    sections = [line.strip() for line in gantt.splitlines() if line.strip().startswith("section")]
    assert sections == ["section #106;ob p-a", "section #106;ob p-b", "section #106;ob p-d"]
    assert "One section per job of the fan-out." in text


def test_a_single_run_keeps_one_lane_and_no_jobs_section(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    local = State.model_construct(
        version=1,
        tasks=state.tasks,
        runs=[r.model_copy(update={"job": None}) for r in state.runs],
    )
    text = summary.build_summary(local, workflow)
    assert "### Jobs" not in text and " in p-" not in text and "(in job" not in text
    gantt = blocks(text)[-1]
    assert [line for line in gantt.splitlines() if "section" in line] == ["  section #97;ttempts"]
    assert "prompter.job" not in build_junit(local, workflow)


def test_a_local_run_after_a_fan_out_is_reported_alone(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    later = RunRecord(
        run_id="local",
        workflow="fan.toml",
        started_at=T0 + 500,
        finished_at=T0 + 530,
        status="passed",
    )
    f = record("f", TaskStatus.PASSED, T0 + 501, 20, run_id="local")
    state = State.model_construct(
        version=1, tasks={**state.tasks, "f": f}, runs=[*state.runs, later]
    )
    facts = analyse(state, workflow)
    assert facts.jobs == () and [v.name for v in facts.tasks if v.current] == ["f"]
    assert "### Jobs" not in summary.build_summary(state, workflow)


def test_junit_names_the_job_of_each_testcase(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    root = ET.fromstring(build_junit(state, workflow))
    suite = root.find("testsuite")
    assert suite is not None
    props = {
        p.get("name"): p.get("value")
        for p in suite.iter("property")
        if p.get("name", "").startswith("prompter.jobs")
    }
    assert props == {"prompter.jobs": "p-a p-b p-d"}
    assert suite.get("timestamp") == utc_text(T0, "%Y-%m-%dT%H:%M:%S")  # the first job's start
    jobs = {}
    for case in suite.iter("testcase"):
        values = {p.get("name"): p.get("value") for p in case.iter("property")}
        jobs[case.get("name")] = (values.get("prompter.job"), values.get("prompter.cause_job"))
        assert "from_earlier_run" not in values
    assert jobs == {
        "a": ("p-a", None),
        "e": ("p-a", None),
        "b": ("p-b", None),
        "c": ("p-b", None),
        "d": ("p-d", "p-b"),
        "f": ("p-d", None),
    }
    skipped = suite.find("testcase[@name='d']/skipped")
    assert skipped is not None and skipped.get("message") == "dependency `b` failed"
    assert root.get("failures") == "1" and root.get("skipped") == "1"


def test_a_job_interrupted_with_all_its_tasks_passed_is_not_green(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    passed = {n: r for n, r in state.tasks.items() if r.status is TaskStatus.PASSED}
    runs = [
        r.model_copy(update={"status": "interrupted" if r.job == "p-a" else "passed"})
        for r in state.runs
    ]
    state = State.model_construct(version=1, tasks=passed, runs=runs)
    assert analyse(state, workflow).result == "interrupted"
    assert 'type="interrupted"' in build_junit(state, workflow)


@pytest.mark.render
def test_a_merged_three_job_summary_renders(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    diagrams = blocks(summary.build_summary(state, workflow))
    verdicts = render(diagrams)
    for verdict, diagram in zip(verdicts, diagrams, strict=True):
        assert verdict.ok, f"mermaid failed: {verdict.error}\n{diagram}"
    flow, _legend, gantt = verdicts
    assert {flow.nodes[f"t{i}"] for i in range(6)} == {"a", "e", "b", "c", "d", "f"}
    for job in JOBS:
        assert f"job {job}" in gantt.text, gantt.text
    assert "✗ b (1/2)" in gantt.text and "✓ f" in gantt.text


def with_limits(state: State) -> State:
    """p-b's agent limit (of 4) went down to 2 and back; p-d's down to 3 until its end; p-a's
    never changed."""
    changes = {
        "p-b": [(65.0, 2, "API 429"), (90.0, 4, "sessions ended without a rate limit")],
        "p-d": [(150.0, 3, "API 529")],
    }
    runs = [
        r.model_copy(
            update={
                "agent_limit": [
                    AgentLimitChange(at=T0 + at, limit=level, maximum=4, cause=cause)
                    for at, level, cause in changes.get(r.job or "", [])
                ]
            }
        )
        for r in state.runs
    ]
    return State.model_construct(version=1, tasks=state.tasks, runs=runs)


def test_each_job_of_a_fan_out_shows_its_own_agent_limit(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    state = with_limits(state)
    text = summary.build_summary(state, workflow)
    lines = [line for line in text.splitlines() if line.startswith("**Agent limit")]

    def at(offset: float) -> str | None:
        return utc_text(T0 + offset, "%H:%M:%S")

    assert lines == [
        f"**Agent limit (job p-b)** (UTC): lowered to 2 of 4 at {at(65)} (API 429); "
        f"back to 4 at {at(90)}",
        f"**Agent limit (job p-d)** (UTC): lowered to 3 of 4 at {at(150)} (API 529); "
        "3 of 4 at the end",
    ]
    gantt = blocks(text)[-1]
    sections = [line.strip() for line in gantt.splitlines() if line.strip().startswith("section")]
    assert sections[:2] == ["section #97;gent limit, job p-b", "section #97;gent limit, job p-d"]
    ms = int(T0 * 1000)
    assert f"#50; of 4 :active, l0, {ms + 65_000}, {ms + 90_000}" in gantt
    assert (
        f"#51; of 4 :active, l1, {ms + 150_000}, {ms + 170_000}" in gantt
    )  # until p-d's run ended
    suite = ET.fromstring(build_junit(state, workflow)).find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.find("properties") or ()}
    assert props["agent_limit_lowest"] == "2" and props["agent_limit_maximum"] == "4"


@pytest.mark.render
def test_a_fan_out_timeline_with_agent_limits_renders(tmp_path: Path) -> None:
    workflow, state = fan_out(tmp_path)
    gantt = blocks(summary.build_summary(with_limits(state), workflow))[-1]
    (verdict,) = render([gantt])
    assert verdict.ok, f"mermaid failed: {verdict.error}\n{gantt}"
    for text in ("agent limit, job p-b", "agent limit, job p-d", "2 of 4", "3 of 4", "job p-a"):
        assert text in verdict.text, (text, verdict.text)
