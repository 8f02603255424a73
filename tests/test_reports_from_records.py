"""Reports from states built directly (tests/built_states.py): blank reasons that stay red,
runs that ended without a red task, terminal escapes that never end, e-mail-like names,
timestamps out of range, zero-length and back-to-back bars, gantt texts that look like dates.

The gantt texts are rendered by real mermaid in headless Chromium (marker `render`), all in one
batch (see tests/mermaid_render.py).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml

from prompter.records import AgentLimitChange, TaskStatus
from prompter.report import junit, mermaid, pushback, summary
from prompter.text import xml_safe

from .built_states import T0, blocks, record, state_of, write_toml
from .mermaid_render import Verdict, render


def suite_of(text: str, tmp_path: Path) -> Any:
    path = tmp_path / "junit.xml"
    path.write_text(text, "utf-8")
    (suite,) = list(JUnitXml.fromfile(str(path)))
    return suite


def red_cases(text: str) -> list[ET.Element]:
    root = ET.fromstring(text)
    return [
        c
        for c in root.iter("testcase")
        if c.find("failure") is not None or c.find("error") is not None
    ]


# -- JUnit: a failed task is never green ---------------------------------------------------------


@pytest.mark.parametrize("reason", ["   ", "\x1b[0m \x00", "\x1b]0;title\x07", "\n\r\t"])
def test_a_failed_task_with_a_blank_reason_and_no_output_is_still_red(
    reason: str, tmp_path: Path
) -> None:
    failed = record("a", TaskStatus.FAILED, T0, 1.0, reason=reason)
    failed.attempts[0].output_tail = ""
    interrupted = record("b", TaskStatus.INTERRUPTED, T0, 1.0, reason=reason)
    interrupted.attempts[0].output_tail = ""
    text = junit.build_junit(state_of([failed, interrupted], tmp_path / "wf.toml", T0 + 2))
    root = ET.fromstring(text)
    assert int(root.get("failures", "0")) + int(root.get("errors", "0")) == 2, text
    for case in red_cases(text):
        element = case.find("failure")
        element = element if element is not None else case.find("error")
        assert element is not None and element.get("message"), text  # says something
    suite = suite_of(text, tmp_path)
    for case in suite:
        assert case.result and isinstance(case.result[0], Failure | Error), case.name


def test_a_failed_run_with_a_blank_reason_is_still_red(tmp_path: Path) -> None:
    state = state_of([record("a", TaskStatus.PASSED, T0, 1.0)], tmp_path / "wf.toml", T0 + 2)
    state.runs[0] = state.runs[0].model_copy(update={"reason": " \x1b[0m "})
    text = junit.build_junit(state)
    assert ET.fromstring(text).get("failures") == "1", text
    (case,) = red_cases(text)
    assert case.get("name") == junit.RUN_CASE


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        ("interrupted", "interrupted by SIGTERM", "interrupted"),
        (None, None, "unfinished"),  # crashed (or still running) between two tasks
        ("failed", None, "run_failed"),
    ],
)
def test_a_run_that_did_not_pass_is_not_all_green_when_no_task_is_red(
    status: str | None, reason: str | None, kind: str, tmp_path: Path
) -> None:
    """Sequential mode, a signal between two tasks: the first passed, the others never started
    (no record). The run exits 143, its summary says "interrupted": junit.xml must not say
    "all passed" to the test reporters."""
    workflow = write_toml(tmp_path / "wf.toml", [{"name": n} for n in ("one", "two", "three")])
    passed = record("one", TaskStatus.PASSED, T0, 1.0)
    state = state_of([passed], workflow.path, T0 + 2)
    update = {"status": status, "reason": reason}
    if status is None:
        update["finished_at"] = None
    state.runs[0] = state.runs[0].model_copy(update=update)
    text = junit.build_junit(state, workflow)
    (case,) = red_cases(text)
    assert case.get("name") == junit.RUN_CASE
    element = case.find("failure") if kind == "run_failed" else case.find("error")
    assert element is not None and element.get("type") == kind, text
    assert element.get("message")
    if reason:
        assert element.get("message") == reason
    root = ET.fromstring(text)
    assert root.get("tests") == "2"
    assert int(root.get("failures", "0")) + int(root.get("errors", "0")) == 1


def test_a_passed_run_gets_no_run_case(tmp_path: Path) -> None:
    state = state_of([record("a", TaskStatus.PASSED, T0, 1.0)], tmp_path / "wf.toml", T0 + 2)
    state.runs[0] = state.runs[0].model_copy(update={"status": "passed"})
    text = junit.build_junit(state)
    assert red_cases(text) == [] and junit.RUN_CASE not in text


# -- output: an escape sequence that never ends ---------------------------------------------------

UNENDED_OSC = (
    "progress \x1b]9;4;1;50 (the terminal title code, never ended)\n"
    "FAILED tests/test_x.py::test_y - assert 1 == 2\n"
    "1 failed, 41 passed\n"
)


def test_an_osc_sequence_without_its_end_does_not_swallow_the_rest_of_the_output(
    tmp_path: Path,
) -> None:
    assert "FAILED tests/test_x.py::test_y" in xml_safe(UNENDED_OSC)
    assert xml_safe(UNENDED_OSC).endswith("1 failed, 41 passed\n")
    # Ended ones still go, OSC 8 hyperlinks included.
    assert xml_safe("a\x1b]0;title\x07b \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ c") == "ab link c"
    failed = record(
        "a", TaskStatus.FAILED, T0, 1.0, reason="verify_command exited 1", output=UNENDED_OSC
    )
    state = state_of([failed], tmp_path / "wf.toml", T0 + 2)
    (failure,) = ET.fromstring(junit.build_junit(state)).iter("failure")
    assert "1 failed, 41 passed" in (failure.text or "")
    assert "1 failed, 41 passed" in summary.build_summary(state)


# -- timestamps out of range ---------------------------------------------------------------------


@pytest.mark.parametrize("moment", [1e20, -1e20, 1e300])
def test_timestamps_out_of_range_do_not_crash_the_reports(moment: float, tmp_path: Path) -> None:
    state = state_of(
        [record("a", TaskStatus.FAILED, moment, 1.0, reason="r", output="o")],
        tmp_path / "wf.toml",
        moment + 2,
    )
    state.runs[0] = state.runs[0].model_copy(update={"started_at": moment})
    root = ET.fromstring(junit.build_junit(state))
    assert root.find("testsuite") is not None
    text = summary.build_summary(state)
    assert text.startswith("## ❌ wf: failed\n")
    for diagram in blocks(text):  # a date mermaid cannot read is not drawn
        assert str(int(moment * 1000)) not in diagram


# -- the timeline's "up to N at once" -----------------------------------------------------------


def peak_line(text: str) -> str:
    (found,) = re.findall(r"Each bar is one attempt \(.*?at once\)", text)
    return str(found)


def test_zero_length_attempts_at_one_moment_count_as_running_together(tmp_path: Path) -> None:
    state = state_of(
        [record(f"z{i}", TaskStatus.PASSED, T0, 0.0) for i in range(3)], tmp_path / "w", T0
    )
    assert peak_line(summary.build_summary(state)).endswith("3 in all, up to 3 at once)")


def test_back_to_back_attempts_do_not_overlap(tmp_path: Path) -> None:
    state = state_of(
        [record("a", TaskStatus.PASSED, T0, 1.0), record("b", TaskStatus.PASSED, T0 + 1, 1.0)],
        tmp_path / "w",
        T0 + 2,
    )
    assert peak_line(summary.build_summary(state)).endswith("2 in all, up to 1 at once)")


def test_an_attempt_ending_before_it_started_is_drawn_and_counted(tmp_path: Path) -> None:
    """The clock stepped back (NTP): the bar is drawn 1 ms long, so it counts."""
    state = state_of(
        [
            record("backwards", TaskStatus.PASSED, T0, -5.0),
            record("a", TaskStatus.PASSED, T0 - 3, 10.0),
            record("b", TaskStatus.PASSED, T0 - 3, 10.0),
        ],
        tmp_path / "w",
        T0 + 10,
    )
    assert peak_line(summary.build_summary(state)).endswith("3 in all, up to 3 at once)")


# -- gantt texts that look like dates (rendered) ------------------------------------------------

DATE_LIKE = ["2024-01-01 deploy", "1999-12-31", "0000-00-00x", "42 tasks"]


@pytest.fixture(scope="module")
def gantt_verdicts() -> list[tuple[str, str, Verdict]]:
    diagrams = [
        mermaid.gantt(
            [("2024-01-01", [mermaid.Bar("b0", name, 1_790_000_000_000, 1_790_000_001_000)])],
            title="2024-12-31 nightly",
        )
        for name in DATE_LIKE
    ]
    started = time.monotonic()
    verdicts = render(diagrams)
    assert time.monotonic() - started < 120
    return list(zip(DATE_LIKE, diagrams, verdicts, strict=True))


@pytest.mark.render
def test_gantt_texts_that_start_like_a_date_render_literally(
    gantt_verdicts: list[tuple[str, str, Verdict]],
) -> None:
    for name, diagram, verdict in gantt_verdicts:
        assert verdict.ok, f"{name!r}: {verdict.error}\n{diagram}"
        assert name in verdict.text, (name, verdict.text)
        assert "2024-12-31 nightly" in verdict.text


# -- the agent limit (the API's pushback) --------------------------------------------------------


def limited_state(tmp_path: Path, changes: list[tuple[float, int, str]]) -> Any:
    """Two tasks over 120 s; the run's agent limit (of 8) changed at T0 + each offset."""
    state = state_of(
        [record("a", TaskStatus.PASSED, T0, 100.0), record("b", TaskStatus.FAILED, T0 + 1, 100.0)],
        tmp_path / "wf.toml",
        T0 + 120,
    )
    limit = [
        AgentLimitChange(at=T0 + offset, limit=level, maximum=8, cause=cause)
        for offset, level, cause in changes
    ]
    state.runs[0] = state.runs[0].model_copy(update={"agent_limit": limit})
    return state


GROWS = "sessions ended without a rate limit"
CHANGES = [
    (5.0, 3, "API 429"),
    (20.0, 4, GROWS),
    (30.0, 4, "API 529; no new session for 29 s (as it said)"),
    (50.0, 5, GROWS),
    (60.0, 8, GROWS),
    (90.0, 6, "API 429"),
]


def clock(offset: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(T0 + offset))


def limit_bars(gantt: str) -> list[str]:
    """The bars of the gantt's "agent limit" sections, as written."""
    lines = gantt.splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.strip().startswith("section"):
            inside = "gent limit" in line
        elif inside:
            out.append(line.strip())
    return out


def test_the_summary_says_how_the_agent_limit_changed(tmp_path: Path) -> None:
    text = summary.build_summary(limited_state(tmp_path, CHANGES))
    headline = text.split("### Tasks")[0]
    (line,) = [ln for ln in headline.splitlines() if ln.startswith("**Agent limit")]
    assert line == (
        f"**Agent limit** (UTC): lowered to 3 of 8 at {clock(5)} (API 429); "
        f"up to 4 by {clock(20)}; "
        f"held at 4 of 8 at {clock(30)} (API 529; no new session for 29 s \\(as it said\\)); "
        f"back to 8 at {clock(60)}; lowered to 6 of 8 at {clock(90)} (API 429); "
        "6 of 8 at the end"
    )
    assert "The API pushed back" in headline
    # The timeline: a section on top, a bar per level below the maximum, the last one open
    # until the run ended.
    gantt = blocks(text)[-1]
    sections = [ln.strip() for ln in gantt.splitlines() if ln.strip().startswith("section")]
    assert sections == ["section #97;gent limit", "section #97;ttempts"]
    ms = int(T0 * 1000)
    assert limit_bars(gantt)[:3] == [
        f"#51; of 8 :active, l0, {ms + 5000}, {ms + 20000}",
        f"#52; of 8 :active, l1, {ms + 20000}, {ms + 50000}",  # the pause at 4 is one bar with it
        f"#53; of 8 :active, l2, {ms + 50000}, {ms + 60000}",
    ]
    assert limit_bars(gantt)[3] == f"#54; of 8 :active, l3, {ms + 90000}, {ms + 120000}"
    assert len(limit_bars(gantt)) == 4
    assert "Agent limit: while the API's pushback held" in text
    # JUnit: the lowest limit, of the maximum.
    suite = ET.fromstring(junit.build_junit(limited_state(tmp_path, CHANGES))).find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.find("properties") or ()}
    assert props["agent_limit_lowest"] == "3" and props["agent_limit_maximum"] == "8"


def test_a_burst_of_cuts_is_one_phrase(tmp_path: Path) -> None:
    changes = [(5.0, 5, "API 429"), (5.1, 4, "API 429"), (6.0, 2, "API 429")]
    changes += [(20.0, 1, "API 429"), (30.0, 1, "API 529")]  # a cut after the burst, a pause
    text = summary.build_summary(limited_state(tmp_path, changes))
    (line,) = [ln for ln in text.splitlines() if ln.startswith("**Agent limit")]
    assert line == (
        f"**Agent limit** (UTC): lowered to 5, 4, 2 of 8 at {clock(5)} (API 429); "
        f"lowered to 1 of 8 at {clock(20)} (API 429); held at 1 of 8 at {clock(30)} (API 529); "
        "1 of 8 at the end"
    )


def test_a_run_whose_agent_limit_never_changed_says_nothing_of_it(tmp_path: Path) -> None:
    state = limited_state(tmp_path, [])
    text = summary.build_summary(state)
    assert "Agent limit" not in text and "gent limit" not in "".join(blocks(text))
    assert 'name="agent_limit' not in junit.build_junit(state)


def test_the_agent_limit_line_and_band_are_capped(tmp_path: Path) -> None:
    changes = []
    for i in range(200):  # down and back up, 200 times
        changes += [(i * 0.5, 2, "API 429"), (i * 0.5 + 0.25, 8, GROWS)]
    text = summary.build_summary(limited_state(tmp_path, changes))
    (line,) = [ln for ln in text.splitlines() if ln.startswith("**Agent limit")]
    assert line.count(";") == pushback.MAX_PHRASES and line.endswith("; … 392 more")
    assert len(line) < 1000
    bars = [b for b in limit_bars(blocks(text)[-1]) if b.startswith("#50; of 8")]
    assert len(bars) == pushback.MAX_BARS


def test_a_cause_from_a_crafted_state_stays_text(tmp_path: Path) -> None:
    cause = "<img src=x onerror=alert(1)> `code` [link](http://x) %%{init}%% \x1b[2J"
    state = limited_state(tmp_path, [(5.0, 3, cause)])
    text = summary.build_summary(state)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("**Agent limit")]
    assert "<img" not in line and "&lt;img" in line and "](http" not in line
    assert "\x1b" not in text
    assert "3 of 8" in line and "3 of 8 at the end" in line


@pytest.mark.render
def test_a_timeline_with_the_agent_limit_renders(tmp_path: Path) -> None:
    diagrams = blocks(summary.build_summary(limited_state(tmp_path, CHANGES)))
    verdicts = render(diagrams[-1:])
    (verdict,) = verdicts
    assert verdict.ok, f"mermaid failed: {verdict.error}\n{diagrams[-1]}"
    for text in ("agent limit", "3 of 8", "4 of 8", "5 of 8", "6 of 8", "attempts", "✓ a"):
        assert text in verdict.text, (text, verdict.text)
