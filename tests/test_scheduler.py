"""Properties of the graph scheduler over random DAGs, failures and limits, read off its events.

The attempts here are in-process (a sleep and a scripted verdict) so that hypothesis can try
hundreds of graphs; tests/test_run.py drives the same scheduler with real processes.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompter.admission import Limits, demands_for
from prompter.attempts import AttemptContext, Feedback
from prompter.config import Task, Workflow, load_workflow
from prompter.events import AttemptFinished, Event, TaskFinished, TaskStarted
from prompter.fingerprints import fingerprints
from prompter.ledger import Ledger
from prompter.records import AttemptRecord, TaskStatus
from prompter.scheduler import GraphScheduler


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 14))
    deps = [
        draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        for i in range(n)
    ]
    order = draw(st.permutations(range(n)))  # file order differs from dependency order
    tasks = []
    for i in range(n):
        tasks.append(
            {
                "name": f"t{i}",
                "depends_on": [f"t{d}" for d in deps[i]],
                "max_attempts": draw(st.integers(1, 3)),
                "on_failure": draw(st.sampled_from(["retry", "retry", "next", "stop"])),
                "priority": draw(st.integers(-1, 1)),
                "exclusive": draw(st.booleans()) and draw(st.booleans()),
                "cpu_required": draw(st.sampled_from([0, 0, 1, 2])),
            }
        )
    return {
        "tasks": [tasks[i] for i in order],
        "slots": draw(st.integers(1, 4)),
        "agents": draw(st.integers(1, 4)),
        "cpu": draw(st.sampled_from([2.0, 3.0])),
        # verdicts[name][k]: does attempt k+1 pass?
        "verdicts": {
            t["name"]: draw(st.lists(st.booleans(), min_size=3, max_size=3)) for t in tasks
        },
        "durations": {t["name"]: draw(st.sampled_from([0.0, 0.001, 0.003])) for t in tasks},
    }


def build(tmp: Path, scenario: dict[str, Any]) -> Workflow:
    lines = [
        "[settings]",
        f"max_parallel_tasks = {scenario['slots']}",
        f"max_parallel_agents = {scenario['agents']}",
        f"cpu_budget = {scenario['cpu']}",
        "retry_delay = 0",
        'agent = "command"',
        'agent_command = ["unused"]',
    ]
    for t in scenario["tasks"]:
        lines.append('[[tasks]]\nprompt = "p"\nverify_command = "true"')
        lines += [f"{k} = {json.dumps(v)}" for k, v in t.items()]
    path = tmp / "wf.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_workflow(path)


def execute(workflow: Workflow, scenario: dict[str, Any]) -> tuple[list[Event], dict[str, int]]:
    events: list[Event] = []
    agents_now = {"now": 0, "max": 0}

    async def attempt(
        ctx: AttemptContext, task: Task, number: int, fb: Feedback | None, session: str | None
    ) -> AttemptRecord:
        started = time.time()
        agents_now["now"] += 1  # the whole attempt is its agent phase here
        agents_now["max"] = max(agents_now["max"], agents_now["now"])
        await anyio.sleep(scenario["durations"][task.name])
        agents_now["now"] -= 1
        ok = scenario["verdicts"][task.name][number - 1]
        return AttemptRecord(
            number=number,
            started_at=started,
            finished_at=time.time(),
            ok=ok,
            reason=None if ok else "verify_command exited 1 (expected 0)",
        )

    limits = Limits(scenario["slots"], scenario["cpu"], 1e9)
    ctx = AttemptContext(
        workdir=Path("."),
        logs_dir=Path("."),
        check_interval=0,
        agents={},
    )
    ledger = Ledger("run", fingerprints(workflow), lambda r, d: None, [events.append])
    scheduler = GraphScheduler(
        workflow,
        range(len(workflow.tasks)),
        ctx,
        ledger,
        limits,
        [1.0] * len(workflow.tasks),
        rng=random.Random(0),
        attempt_runner=attempt,
        max_agents=min(scenario["agents"], scenario["slots"]),
    )

    async def main() -> None:
        with anyio.fail_after(20):  # "the run always terminates"
            await scheduler.run()

    anyio.run(main)
    return events, agents_now


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios())
def test_scheduler_invariants(tmp_path: Path, scenario: dict[str, Any]) -> None:
    workflow = build(tmp_path, scenario)
    events, agents = execute(workflow, scenario)
    tasks = {t.name: t for t in workflow.tasks}
    index = workflow.index
    deps = {
        t.name: [workflow.tasks[d].name for d in workflow.graph.deps[index[t.name]]]
        for t in workflow.tasks
    }
    limits = Limits(scenario["slots"], scenario["cpu"], 1e9)
    demand = dict(zip(tasks, demands_for(workflow, limits), strict=True))

    finished: dict[str, TaskStatus] = {}
    reasons: dict[str, str | None] = {}
    running: set[str] = set()
    waiting_retry: set[str] = set()
    stopped = False
    started_ever: set[str] = set()
    unconstrained = not any(d.cpu or d.exclusive for d in demand.values())
    for event in events:
        if isinstance(event, AttemptFinished) and unconstrained and not stopped:
            # A completion from outside: the scheduler has finished reacting to everything
            # before it, so no slot may be idle while a never-started task is ready.
            ready = [
                t
                for t in tasks
                if t not in started_ever
                and t not in finished
                and all(finished.get(d) is TaskStatus.PASSED for d in deps[t])
            ]
            if ready:
                # Every attempt starts with its agent (here it is nothing else): a ready task
                # waits in the queue, not in a slot, while the agent limit is reached.
                full = min(scenario["slots"], scenario["agents"])
                assert len(running) >= full, f"idle slot while {ready} ready"
        if isinstance(event, TaskStarted):
            name = event.task
            assert name not in finished, f"{name} started after it finished"
            assert all(finished.get(d) is TaskStatus.PASSED for d in deps[name]), (
                f"{name} started before its dependencies passed"
            )
            assert not stopped, "a task started after the run was stopped"
            running.add(name)
            started_ever.add(name)
            waiting_retry.discard(name)
            assert len(running) <= scenario["slots"]
            assert (
                sum(demand[r].cpu for r in running) <= scenario["cpu"] + 1e-9 or len(running) == 1
            )
            if any(demand[r].exclusive for r in running):
                assert len(running) == 1, f"an exclusive task had company: {running}"
        elif isinstance(event, AttemptFinished):
            running.discard(event.task)
            if event.retry_in_s is not None:
                waiting_retry.add(event.task)
                assert event.attempt.number < tasks[event.task].max_attempts
        elif isinstance(event, TaskFinished):
            name = event.record.name
            assert name not in finished, f"{name} reached two terminal states"
            finished[name] = event.record.status
            reasons[name] = event.record.reason
            running.discard(name)
            waiting_retry.discard(name)
            if event.record.status is TaskStatus.FAILED and tasks[name].on_failure == "stop":
                stopped = True
    assert set(finished) == set(tasks), "every task ends in exactly one terminal state"
    assert agents["max"] <= min(scenario["agents"], scenario["slots"])
    for name, status in finished.items():
        if (
            status is TaskStatus.SKIPPED
            and reasons[name]
            and reasons[name].startswith("dependency")
        ):
            root = reasons[name].split("`")[1]
            assert finished[root] is TaskStatus.FAILED
            assert root in {workflow.tasks[a].name for a in workflow.graph.ancestors([index[name]])}
        if status is TaskStatus.PASSED:
            assert all(finished[d] is TaskStatus.PASSED for d in deps[name])
