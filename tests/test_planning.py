"""The admission policy and the simulated greedy schedule behind `prompter plan`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.admission import Demand, Limits
from prompter.cli import main
from prompter.config import load_workflow
from prompter.graph import DependencyGraph
from prompter.planning import Schedule, make_plan, simulate

from .graph_strategies import dags


def task(name: str, deps: list[str] | None = None, **extra: object) -> str:
    lines = [f'[[tasks]]\nname = "{name}"\nprompt = "p"\nverify_command = "true"']
    if deps is not None:
        lines.append("depends_on = [" + ", ".join(f'"{d}"' for d in deps) + "]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def fan_in(tmp_path: Path, slots: int) -> Path:
    """Six independent unit tasks plus one that depends on all six (the issue's example)."""
    leaves = [f"t{i}" for i in range(6)]
    text = f"[settings]\nmax_parallel_tasks = {slots}\n" + "".join(task(n, []) for n in leaves)
    path = tmp_path / f"fan{slots}.toml"
    path.write_text(text + task("join", leaves))
    return path


@pytest.mark.parametrize(("slots", "parallel"), [(6, 2), (4, 3), (1, 7)])
def test_fan_in_estimate(tmp_path: Path, slots: int, parallel: float) -> None:
    plan = make_plan(load_workflow(fan_in(tmp_path, slots)))
    assert (plan.sequential, plan.parallel) == (7, parallel)
    assert plan.lower_bound == max(2, 7 / slots)


def test_plan_json_keys_and_max_parallel_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--json", "--max-parallel", "4", str(fan_in(tmp_path, 6))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"mode", "order", "waves", "critical_path", "estimate"} <= out.keys()
    assert out["mode"] == "graph"
    assert out["order"][-1] == "join" and len(out["order"]) == 7
    assert out["waves"] == [[f"t{i}" for i in range(6)], ["join"]]
    assert out["critical_path"] == {"tasks": ["t0", "join"], "length": 2.0}
    assert out["estimate"]["sequential"] == 7 and out["estimate"]["parallel"] == 3
    assert out["estimate"]["speedup"] == pytest.approx(7 / 3, abs=1e-3)
    assert out["estimate"]["lower_bound"] == 2


def test_enable_parallel_false_means_one_slot(tmp_path: Path) -> None:
    path = fan_in(tmp_path, 6)
    path.write_text(
        path.read_text().replace("[settings]\n", "[settings]\nenable_parallel = false\n")
    )
    assert make_plan(load_workflow(path)).parallel == 7


def test_plan_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(fan_in(tmp_path, 4))]) == 0
    out = capsys.readouterr().out
    assert "waves (2):" in out
    assert "estimate with 4 slots: sequential 7 units, parallel 3 units, speedup 2.33x" in out


def test_priority_breaks_ties_then_critical_path(tmp_path: Path) -> None:
    text = "[settings]\nmax_parallel_tasks = 1\n" + task("a", []) + task("b", [], priority=5)
    text += task("c", []) + task("d", ["c"])  # c has more work behind it than a
    path = tmp_path / "p.toml"
    path.write_text(text)
    wf = load_workflow(path)
    limits = Limits(1, 8, 1000)
    sched = simulate(wf.graph, [1.0] * 4, limits, [Demand()] * 4, [t.priority for t in wf.tasks])
    starts = sorted(range(4), key=sched.start.__getitem__)
    assert [wf.tasks[i].name for i in starts] == ["b", "c", "a", "d"]


def test_exclusive_task_runs_alone_and_is_not_starved() -> None:
    # 0 exclusive (ready at once, but heads the queue only after 1 and 2 with more priority)
    graph = DependencyGraph([[], [], [], []])
    demands = [Demand(exclusive=True), Demand(), Demand(), Demand()]
    sched = simulate(graph, [1, 1, 1, 1], Limits(4, 8, 1000), demands, [0, 1, 1, 0])
    # 1 and 2 start first; the exclusive 0 heads the queue next, so 3 waits behind it.
    assert sched.start == (1.0, 0.0, 0.0, 2.0)


def test_demands_over_budget_are_clamped_and_noted(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(
        "[settings]\ncpu_budget = 2\n" + task("big", [], cpu_required=8) + task("small", [])
    )
    plan = make_plan(load_workflow(path))
    assert plan.parallel == 1  # clamped to 2 CPUs, still fits beside a 0-CPU task
    assert any("cpu_required = 8 exceeds the budget of 2" in n for n in plan.notes)


def test_sequential_plan_follows_the_happy_path(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        task("a", on_success="c") + task("b") + task("c", on_success="stop") + task("d")
    )
    plan = make_plan(load_workflow(path))
    assert plan.mode == "sequential"
    assert [plan.names[i] for i in plan.order] == ["a", "c"]
    assert plan.parallel == plan.sequential == 2


# -- properties of the simulated schedule ------------------------------------------------------


def check_schedule(
    graph: DependencyGraph,
    weights: list[float],
    limits: Limits,
    demands: list[Demand],
    sched: Schedule,
) -> None:
    n = len(graph)
    events = sorted({*sched.start, *sched.finish})
    for task in range(n):
        assert sched.finish[task] == pytest.approx(sched.start[task] + weights[task])
        for dep in graph.deps[task]:
            assert sched.start[task] >= sched.finish[dep] - 1e-9, "started before a dependency"
    for t in events:
        running = [i for i in range(n) if sched.start[i] <= t < sched.finish[i] and weights[i] > 0]
        assert len(running) <= limits.slots
        assert sum(demands[i].cpu for i in running) <= limits.cpu + 1e-9 or len(running) == 1
        assert sum(demands[i].memory for i in running) <= limits.memory + 1e-9 or len(running) == 1
        if any(demands[i].exclusive for i in running):
            assert len(running) == 1, "an exclusive task had company"


@settings(max_examples=200, deadline=None)
@given(dags(), st.integers(1, 5), st.data())
def test_simulation_respects_dependencies_and_limits(
    graph: DependencyGraph, slots: int, data: st.DataObject
) -> None:
    n = len(graph)
    weights = data.draw(st.lists(st.sampled_from([1.0, 2.0, 3.5]), min_size=n, max_size=n))
    demands = data.draw(
        st.lists(
            st.builds(
                Demand,
                st.sampled_from([0.0, 1.0, 2.0]),
                st.sampled_from([0.0, 100.0]),
                st.booleans(),
            ),
            min_size=n,
            max_size=n,
        )
    )
    priorities = data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n))
    limits = Limits(slots, 2.0, 150.0)
    sched = simulate(graph, weights, limits, demands, priorities)
    check_schedule(graph, weights, limits, demands, sched)


@settings(max_examples=200, deadline=None)
@given(dags(max_nodes=40), st.integers(1, 6), st.data())
def test_unconstrained_greedy_never_idles_and_meets_grahams_bound(
    graph: DependencyGraph, slots: int, data: st.DataObject
) -> None:
    n = len(graph)
    weights = data.draw(st.lists(st.sampled_from([1.0, 2.0, 5.0]), min_size=n, max_size=n))
    sched = simulate(graph, weights, Limits(slots, 1.0, 1.0), [Demand()] * n, [0] * n)
    check_schedule(graph, weights, Limits(slots, 1.0, 1.0), [Demand()] * n, sched)
    for t in {*sched.start, *sched.finish}:
        ready_waiting = [
            i
            for i in range(n)
            if sched.start[i] > t + 1e-9 and all(sched.finish[d] <= t + 1e-9 for d in graph.deps[i])
        ]
        running = [i for i in range(n) if sched.start[i] <= t < sched.finish[i]]
        if ready_waiting:
            assert len(running) == slots, f"slot idle at {t} while {ready_waiting} were ready"
    work = sum(weights)
    cp = graph.critical_path(weights).length
    assert sched.makespan >= max(cp, work / slots) - 1e-9
    assert sched.makespan <= work / slots + (1 - 1 / slots) * cp + 1e-9  # Graham (1966)
