"""`junit.xml`: one testsuite for the workflow, one testcase per task, from the state alone.

The shape GitHub's JUnit consumers read (dorny/test-reporter, mikepenz/action-junit-report,
EnricoMi/publish-unit-test-result-action): one flat `<testsuites><testsuite>` level with
accurate `tests/failures/errors/skipped/time` (`time`: the run's wall time, as parallel tasks
overlap; the sum of task times is the suite property `task_time_s`); every testcase has
`classname` (the workflow's name), `name` (the task), `time`, and `file`/`line` (the workflow
file relative to the repository root, the task's `[[tasks]]` line) when the workflow is known.

- failed its verify command      -> `<failure message="verify_command exited 1 (expected 0)">`
                                    with the tail of the output as text;
- agent error or timeout         -> `<error>` (same, with the agent's output);
- skipped                        -> `<skipped message="dependency `a` failed">`;
- interrupted, or never finished -> `<error>`;
- the run failed as a whole while no task did (sequential mode's `max_iterations` or a
  forbidden revisit) -> one more testcase, `(run)`, with `<failure>` giving the reason; a run
  interrupted or unfinished while no task is red (a signal or a crash between two tasks) ->
  the same `(run)` testcase with `<error>`: a run that did not pass is never all green.
Each testcase has `<properties>`: attempts, cost, tokens, session id, run id, and in a fan-out
`prompter.job` (the job that recorded it) and, for a task skipped because a dependency failed
in another job, `prompter.cause_job`; with `verify_first`, `precheck` (passed or failed: the
verify command before any agent ran) and, for a task that passed on it alone,
`already_satisfied` = true (and 0 attempts); the suite lists the fan-out's jobs
(`prompter.jobs`) and, when the API's pushback lowered the agent limit, `agent_limit_lowest`
(of `agent_limit_maximum`).

Size: the output texts of all testcases together take at most `MAX_OUTPUT_BYTES` (shared
evenly, at most `MAX_CASE_OUTPUT_BYTES` each) and everything else at most `MAX_TASK_BYTES` per
task, so a file never exceeds `size_bound(tasks)`. Hostile output (NUL, ANSI, lone surrogates,
`]]>`) is cleaned before it reaches the XML writer; junit-xml 1.9 would raise on surrogates.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

from ..config import Workflow
from ..records import RunRecord, RunStatus, State, TaskRecord, TaskStatus
from ..text import report_line, xml_safe
from .pushback import lowest
from .view_model import (
    RunFacts,
    TaskView,
    analyse,
    attempt_failed_in_verify,
    utc_text,
)

MAX_OUTPUT_BYTES = 4 * 1024 * 1024
MAX_CASE_OUTPUT_BYTES = 16 * 1024
MAX_TASK_BYTES = 8 * 1024
_SUITE_BYTES = 64 * 1024  # the document's head, the suite's attributes and properties
_NAME_CHARS = 256  # task names are at most 200 characters in a valid workflow
RUN_CASE = "(run)"  # the testcase of a run that failed as a whole
_MESSAGE_CHARS = 256
_CUT = "[… earlier output cut; the task's log under logs/ has all of it]\n"


def size_bound(tasks: int) -> int:
    """The most bytes `build_junit` writes for a state of `tasks` tasks."""
    return MAX_OUTPUT_BYTES + MAX_TASK_BYTES * tasks + _SUITE_BYTES


def _xml_bytes(text: str) -> int:
    """UTF-8 bytes of `text` as XML character data (`&` `<` `>` become entities)."""
    return len(text.encode("utf-8")) + 4 * text.count("&") + 3 * (text.count("<") + text.count(">"))


def fit_tail(text: str, max_bytes: int) -> str:
    """The cleaned end of `text` taking at most `max_bytes` as XML text, marked when cut."""
    if max_bytes <= len(_CUT.encode()) + 16:
        return ""
    sliced = len(text) > max_bytes
    tail = xml_safe(text, last=max_bytes)
    if not sliced and _xml_bytes(tail) <= max_bytes:
        return tail
    room = max_bytes - len(_CUT.encode())
    while tail and _xml_bytes(tail) > room:
        keep = int(len(tail) * room / _xml_bytes(tail) * 0.95)
        tail = tail[len(tail) - keep :] if keep > 0 else ""
    return _CUT + tail


def _number(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "0.000"


def _dollars(value: float) -> str:
    return f"{value:.6f}" if math.isfinite(value) else "0"


def _properties(view: TaskView) -> dict[str, str]:
    record = view.record
    attempts = record.attempts
    props = {"status": record.status.value, "attempts": str(len(attempts))}
    # A task a sequential loop visited more than once: the figures are the latest visit's, and
    # the visits and the cost of all of them come on top.
    props["cost_usd"] = _dollars(record.cost_usd - record.earlier_cost_usd)
    if record.visits > 1:
        props["visits"] = str(record.visits)
        props["total_cost_usd"] = _dollars(record.cost_usd)
    for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens"):
        values = [getattr(a, key) for a in attempts if getattr(a, key) is not None]
        if values:
            props[key] = str(sum(values))
    sessions = [a.session_id for a in attempts if a.session_id]
    if sessions:
        props["session_id"] = report_line(sessions[-1], 128)
    props["run_id"] = report_line(record.run_id, 64)
    if view.job is not None:
        props["prompter.job"] = report_line(view.job, 100)
    if view.cause_job is not None:  # the dependency it was skipped for failed there
        props["prompter.cause_job"] = report_line(view.cause_job, 100)
    if not view.current:
        props["from_earlier_run"] = "true"
    if view.changed:
        props["changed_since"] = "true"
    if record.precheck is not None:  # `verify_first`: the check before any agent ran
        props["precheck"] = "passed" if record.precheck.ok else "failed"
    if record.already_satisfied:
        props["already_satisfied"] = "true"
    return props


def _kind(view: TaskView) -> str:
    """failure | error | skipped | passed. A task this run did not run (a branch it did not
    take, a task outside `--task`) is skipped: an earlier run's failure is not this run's."""
    record = view.record
    status = record.status
    if status is TaskStatus.PASSED:
        return "passed"
    if status is TaskStatus.SKIPPED or not view.current:
        return "skipped"
    if status is TaskStatus.FAILED:
        environment = bool(record.attempts) and record.attempts[-1].environment_error
        return "failure" if attempt_failed_in_verify(record) and not environment else "error"
    return "error"


def _error_type(record: TaskRecord) -> str:
    if record.status is TaskStatus.INTERRUPTED:
        return "interrupted"
    if record.status is not TaskStatus.FAILED:
        return "unfinished"
    if not record.attempts:
        return "failed"
    if record.attempts[-1].environment_error:  # the check could not run (exit 126/127)
        return "environment_error"
    reason = record.attempts[-1].reason or record.reason or ""
    return "agent_timeout" if "timed out" in reason else "agent_error"


def _message(view: TaskView) -> str:
    record = view.record
    if not view.current and record.status is not TaskStatus.SKIPPED:
        earlier = (
            f"{record.status.value}: {record.reason}" if record.reason else record.status.value
        )
        text = f"not run by this run; run {record.run_id} ended it {earlier}"
        return report_line(text, _MESSAGE_CHARS)
    if record.status in (TaskStatus.PENDING, TaskStatus.RUNNING):
        return f"did not finish: the run ended while the task was {record.status.value}"
    # Never empty: junit-xml leaves out a <failure>/<error> without message or text, and a
    # reason that cleans to nothing (blank, escape codes) would turn a failed task green.
    return report_line(record.reason, _MESSAGE_CHARS) or record.status.value


def build_junit(
    state: State,
    workflow: Workflow | None = None,
    *,
    file: str | None = None,
    notes: tuple[str, ...] = (),
    facts: RunFacts | None = None,
) -> str:
    """The JUnit XML document for `state`; `file` is the workflow's repository-relative path."""
    from junit_xml import TestCase, TestSuite  # type: ignore[import-untyped]  # lazy: fast CLI

    facts = facts or analyse(state, workflow, notes)
    classname = report_line(facts.name, 128) or "workflow"
    if file is None and workflow is not None:
        file = str(workflow.path)
    file = report_line(file, 256) if file else None
    share = _output_share(facts)
    cases: list[Any] = []
    for view in facts.tasks:
        case = TestCase(
            report_line(view.name, _NAME_CHARS) or "(unnamed)",
            classname=classname,
            elapsed_sec=view.duration_s or 0.0,
            file=file if view.line is not None else None,
            line=str(view.line) if view.line is not None else None,
        )
        _add_outcome(case, view, share)
        cases.append(case)
    durations = [view.duration_s or 0.0 for view in facts.tasks]
    red = any(case.is_failure() or case.is_error() for case in cases)
    failed_run = facts.failed_run
    if failed_run is not None and not red:
        cases.append(_run_case(failed_run, classname))
        durations.append(0.0)
    suite = TestSuite(
        classname,
        cases,
        timestamp=_timestamp(facts),
        properties=_suite_properties(facts),
    )
    element = suite.build_xml_doc()
    _complete(element, facts, durations)
    root = ET.Element("testsuites")
    for key in ("tests", "failures", "errors", "skipped", "time"):
        root.set(key, element.get(key, "0"))
    root.append(element)
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _output_share(facts: RunFacts) -> int:
    """The bytes of output each failed or errored testcase may show."""
    with_output = [v for v in facts.tasks if _kind(v) in ("failure", "error") and v.record.attempts]
    return min(MAX_CASE_OUTPUT_BYTES, MAX_OUTPUT_BYTES // max(1, len(with_output)))


def _add_outcome(case: Any, view: TaskView, share: int) -> None:
    """The task's failure, error or skip, with up to `share` bytes of its output."""
    record = view.record
    kind = _kind(view)
    output = record.attempts[-1].output_tail if record.attempts else ""
    text = fit_tail(output, share) if output else None
    if kind == "failure":
        case.add_failure_info(_message(view), text or None, "verify_failed")
    elif kind == "error":
        case.add_error_info(_message(view), text or None, _error_type(record))
    elif kind == "skipped":
        case.add_skipped_info(_message(view))


def _run_case(run: RunRecord, classname: str) -> Any:
    """The `(run)` testcase: the run failed as a whole (sequential mode's max_iterations or a
    forbidden revisit, a budget), was interrupted or did not finish (a signal or a crash between
    two tasks) while every task that ran passed: without it the report is all green."""
    from junit_xml import TestCase

    case = TestCase(RUN_CASE, classname=classname, elapsed_sec=0.0)
    why = report_line(run.reason, 1000)
    if run.status == RunStatus.FAILED:
        case.add_failure_info(why or "the run failed", None, "run_failed")
    elif run.status == RunStatus.INTERRUPTED:
        case.add_error_info(why or "the run was interrupted", None, "interrupted")
    else:  # no status: it crashed, or is still running
        text = "the run did not finish (it crashed or is still running)"
        case.add_error_info(f"{text}: {why}" if why else text, None, "unfinished")
    return case


def _complete(element: ET.Element, facts: RunFacts, durations: list[float]) -> None:
    """What junit-xml leaves out: every testcase's time and properties, the suite's time."""
    for case_element, duration in zip(element.iter("testcase"), durations, strict=True):
        case_element.set("time", _number(duration))  # junit-xml leaves out a time of 0
    for case_element, view in zip(element.iter("testcase"), facts.tasks, strict=False):
        props = ET.Element("properties")
        for key, value in _properties(view).items():
            ET.SubElement(props, "property", {"name": key, "value": value})
        case_element.insert(0, props)
    # The suite took the run's wall time: parallel tasks' times overlap, so their sum (property
    # `task_time_s`) is not how long it took. Without a recorded start and end: that sum.
    element.set("time", _number(facts.wall_s if facts.wall_s is not None else sum(durations)))


def _timestamp(facts: RunFacts) -> str | None:
    return utc_text(facts.started_at, "%Y-%m-%dT%H:%M:%S")


def _suite_properties(facts: RunFacts) -> dict[str, str]:
    props = {"result": facts.result}
    if facts.run is not None:
        props["run_id"] = report_line(facts.run.run_id, 64)
    if facts.jobs:  # a fan-out: its jobs, in the order they started
        props["prompter.jobs"] = report_line(" ".join(j.job for j in facts.jobs), 2000)
    if facts.workflow_path:
        props["workflow"] = report_line(facts.workflow_path, 512)
    if facts.wall_s is not None:
        props["wall_time_s"] = _number(facts.wall_s)
    props["task_time_s"] = _number(facts.work_s)
    props["cost_usd"] = _dollars(facts.cost_usd)
    low = lowest(facts.runs)
    if low is not None:  # the API pushed back: the fewest agent sessions at once allowed
        props["agent_limit_lowest"] = str(low.limit)
        props["agent_limit_maximum"] = str(low.maximum)
    for i, note in enumerate(facts.notes[:10]):
        props[f"note_{i + 1}"] = report_line(note, 500)
    return props
