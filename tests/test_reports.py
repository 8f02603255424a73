"""Reports: junit.xml and summary.md after real runs, `prompter report`, hostile input, sizes.

JUnit files are read back with junitparser (what EnricoMi/publish-unit-test-result-action uses),
xml.etree and xmllint; the summaries are parsed with markdown-it (CommonMark + tables); every
mermaid block of the summaries is rendered by real mermaid in headless Chromium in one batch
(see tests/mermaid_render.py; marker `render`), which also saves a screenshot of an ordinary
run's summary.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from markdown_it import MarkdownIt  # installed with rich, a dependency of prompter

from prompter.cli import main
from prompter.config import Workflow, load_workflow
from prompter.fingerprints import fingerprints
from prompter.records import State, TaskStatus
from prompter.report import junit, mermaid, summary
from prompter.report.writer import repo_relative, write_reports
from prompter.state import StateStore
from prompter.text import report_line, xml_safe

from .built_states import T0, blocks, grouped_run, record, state_of, write_toml
from .harness import Harness, prompter_cli
from .hostile_names import HOSTILE, ISOLATED_NAMES
from .mermaid_render import Verdict, render
from .toml_text import toml_value

TESTS = Path(__file__).resolve().parent
SCREENSHOT_COPY = TESTS / "render" / "out" / "summary.png"


def xmllint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("xmllint")
    assert exe, "xmllint not found: apt-get install libxml2-utils"
    return subprocess.run(
        [exe, "--noout", "--huge", str(path)], capture_output=True, text=True, check=False
    )


def markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def suite_of(path: Path) -> Any:
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1, "one flat <testsuites><testsuite> level"
    return suites[0]


# -- an ordinary run -----------------------------------------------------------------------------


def ordinary(h: Harness) -> None:
    """Passed (one after a retry), a verify failure, its skipped dependent, agent error/timeout."""
    h.settings["max_parallel_tasks"] = 3
    h.task("lint", [{"sleep": 0.3}], depends_on=[])
    h.task("unit tests", [{"sleep": 0.5}], depends_on=[])
    h.task(
        "build",
        [{"sleep": 0.2}],
        verify_command="test -f built || { touch built; echo 'first build fails'; exit 1; }",
        depends_on=["lint"],
    )
    h.task(
        "integration",
        [{"sleep": 0.2}],
        verify_command="echo 'integration: 3 of 40 checks failed'; echo 'see ]]> & <here>'; exit 1",
        max_attempts=2,
        depends_on=["build", "unit tests"],
    )
    h.task("package", [{"sleep": 0.3}], depends_on=["build"])
    h.task("deploy", depends_on=["integration", "package"])
    h.task("docs", [{"print": "agent: cannot find docs/\n", "exit": 3}], max_attempts=1)
    h.tasks[-1]["depends_on"] = []
    h.task("slow", [{"sleep": 20}], timeout=0.5, max_attempts=1, depends_on=[])


@dataclass
class Ran:
    h: Harness
    code: int
    report_dir: Path
    repo: Path


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    repo = tmp_path_factory.mktemp("repo")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    root = repo / "flows"
    root.mkdir()
    h = Harness(root)
    ordinary(h)
    code = h.run()
    return Ran(h, code, root / ".prompter", repo)


def test_run_writes_both_reports_and_keeps_its_exit_code(ran: Ran) -> None:
    assert ran.code == 1
    assert (ran.report_dir / "junit.xml").is_file()
    assert (ran.report_dir / "summary.md").is_file()


def test_junit_counts_messages_and_locations(ran: Ran) -> None:
    path = ran.report_dir / "junit.xml"
    assert xmllint(path).returncode == 0, xmllint(path).stderr
    suite = suite_of(path)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (8, 1, 2, 1)
    assert suite.name == "prompter"
    cases = {case.name: case for case in suite}
    assert list(cases) == [t["name"] for t in ran.h.tasks]  # file order
    for case in cases.values():
        assert case.classname == "prompter"
        assert case.time >= 0
    (failure,) = cases["integration"].result
    assert isinstance(failure, Failure)
    assert failure.message == "verify_command exited 1 (expected 0)"
    assert failure.type == "verify_failed"
    assert "integration: 3 of 40 checks failed" in failure.text
    assert "see ]]> & <here>" in failure.text
    (error,) = cases["docs"].result
    assert isinstance(error, Error) and error.message == "agent exited 3"
    assert "agent: cannot find docs/" in error.text
    assert error.type == "agent_error"
    (timeout,) = cases["slow"].result
    assert isinstance(timeout, Error) and timeout.message == "agent timed out after 0.5 s"
    assert timeout.type == "agent_timeout"
    (skipped,) = cases["deploy"].result
    assert isinstance(skipped, Skipped)
    assert skipped.message == "dependency `integration` failed"
    assert cases["build"].result == [] and cases["lint"].result == []
    assert cases["integration"].time > 0.2 and cases["deploy"].time == 0

    # file/line for annotations: the workflow relative to the repository root, the task's line
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and len(root) == 1
    assert root.get("tests") == "8" and root.get("skipped") == "1"
    workflow = load_workflow(ran.h.workflow)
    for i, element in enumerate(root.iter("testcase")):
        assert element.get("file") == "flows/prompter.toml"
        assert element.get("line") == str(workflow.task_lines[i])
        assert element.get("time") is not None
    props = {
        el.get("name"): el.get("value")
        for el in next(e for e in root.iter("testcase") if e.get("name") == "integration").iter(
            "property"
        )
    }
    assert props["attempts"] == "2" and props["status"] == "failed"
    assert props["cost_usd"] == "0.000000" and props["run_id"].startswith("20")
    suite_props = {p.name: p.value for p in suite.properties()}
    assert suite_props["result"] == "failed"
    assert float(suite_props["wall_time_s"]) > 0.5


def test_summary_of_an_ordinary_run(ran: Ran) -> None:
    text = (ran.report_dir / "summary.md").read_text("utf-8")
    assert len(text.encode()) <= summary.MAX_BYTES
    first = text.splitlines()[0]
    assert first == "## ❌ prompter: failed"
    assert "**4 passed · 3 failed · 1 skipped** (8 tasks)" in text
    headline = text.split("### Tasks")[0]
    for word in ("wall time", "sum of task times", "speedup", "cost $0.00", "Critical path:"):
        assert word in headline
    wall = float(re.search(r"wall time ([\d.]+) s", headline)[1])  # type: ignore[index]
    work = float(re.search(r"sum of task times ([\d.]+) s", headline)[1])  # type: ignore[index]
    speedup = float(re.search(r"speedup ([\d.]+)x", headline)[1])  # type: ignore[index]
    assert work > wall > 0.5 and speedup == pytest.approx(work / wall, rel=0.08)
    assert re.search(r"Critical path: lint → build → integration \(", headline), headline

    html = markdown().render(text)
    rows = re.findall(r"<tr>\n<td>(.*?)</td>\n<td>(.*?)</td>\n<td[^>]*>(\d+)</td>", html)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("lint", "✅ passed", "1"),
        ("unit tests", "✅ passed", "1"),
        ("build", "✅ passed", "2"),
        ("integration", "❌ failed", "2"),
        ("package", "✅ passed", "1"),
        ("deploy", "⏭️ skipped", "0"),
        ("docs", "❌ failed", "1"),
        ("slow", "❌ failed", "1"),
    ]
    flow, legend, gantt = blocks(text)
    assert flow.startswith("flowchart TD") and "classDef failed" in flow
    # The legend is a diagram of its own: out of the graph's layout, no arrow runs through it.
    assert "legend" not in flow.lower()
    assert legend.startswith("flowchart TD") and "-->" not in legend
    assert 'legend_failed["failed"]:::failed' in legend and "classDef failed" in legend
    assert gantt.startswith("gantt") and gantt.count(" :") == 9  # one bar per attempt
    assert ":crit" in gantt  # the critical path is marked
    details = re.findall(r"<details><summary>(.*?)</summary>", text)
    assert details == [
        "integration: verify_command exited 1 (expected 0)",
        "docs: agent exited 3",
        "slow: agent timed out after 0.5 s",
    ]
    assert "see ]]&gt; &amp; &lt;here&gt;" in html  # the output tail, literally, in a code block


def copy_of(ran: Ran, tmp_path: Path) -> Path:
    """The run's folder copied outside the repository, its state naming the copied workflow."""
    copy = tmp_path / "flows"
    shutil.copytree(ran.h.root, copy)
    state = copy / ".prompter" / "state.json"
    state.write_text(state.read_text("utf-8").replace(str(ran.h.root), str(copy)), "utf-8")
    return copy


def test_prompter_report_rebuilds_the_same_files_from_state(ran: Ran, tmp_path: Path) -> None:
    state = ran.report_dir / "state.json"
    out = tmp_path / "rebuilt"
    done = prompter_cli(
        "report", "--state-file", str(state), "--report-dir", str(out), cwd=ran.h.root
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"wrote {out}/junit.xml\nwrote {out}/summary.md\nwrote {out}/report.html\n"
    )
    assert done.stderr == ""
    for name in ("junit.xml", "summary.md", "report.html"):  # byte for byte what the run wrote
        assert (out / name).read_bytes() == (ran.report_dir / name).read_bytes(), name

    copy = copy_of(ran, tmp_path)
    for name in ("junit.xml", "summary.md"):
        (copy / ".prompter" / name).unlink()
    done = prompter_cli("report", "--format", "junit", cwd=copy)
    assert done.returncode == 0 and done.stdout == "wrote .prompter/junit.xml\n"
    assert not (copy / ".prompter" / "summary.md").exists()
    root = ET.parse(copy / ".prompter" / "junit.xml").getroot()
    assert {e.get("file") for e in root.iter("testcase")} == {
        "prompter.toml"
    }  # not in git: its folder
    done = prompter_cli("report", "--format", "markdown", cwd=copy)
    assert done.returncode == 0 and done.stdout == "wrote .prompter/summary.md\n"


def test_report_without_the_workflow_degrades_and_says_so(ran: Ran, tmp_path: Path) -> None:
    copy = copy_of(ran, tmp_path)
    (copy / "prompter.toml").unlink()
    done = prompter_cli("report", cwd=copy)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("prompter: note: workflow ")
    assert "not found" in done.stderr and len(done.stderr.splitlines()) == 1
    suite = suite_of(copy / ".prompter" / "junit.xml")
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (8, 1, 2, 1)
    root = ET.parse(copy / ".prompter" / "junit.xml").getroot()
    assert all(e.get("file") is None and e.get("line") is None for e in root.iter("testcase"))
    text = (copy / ".prompter" / "summary.md").read_text("utf-8")
    assert "not found" in text and "Not drawn: the workflow file is not available." in text
    assert len(blocks(text)) == 1  # the timeline needs only the state

    (copy / "prompter.toml").write_text("[[tasks]\nname = 'broken'\n")  # changed and now invalid
    done = prompter_cli("report", cwd=copy)
    assert done.returncode == 0, done.stderr
    assert "no longer loads" in done.stderr and "Traceback" not in done.stderr


def test_report_after_the_workflow_changed(ran: Ran, tmp_path: Path) -> None:
    copy = copy_of(ran, tmp_path)
    wf = copy / "prompter.toml"
    text = wf.read_text().replace('"do lint"', '"lint harder"')
    wf.write_text(text + '\n[[tasks]]\nname = "new"\nprompt = "p"\nverify_command = "true"\n')
    done = prompter_cli("report", cwd=copy)
    assert done.returncode == 0, done.stderr
    md = (copy / ".prompter" / "summary.md").read_text("utf-8")
    assert "✅ passed (changed since)" in md
    assert "Not run (no record in the state): 1 task: new" in md
    # lint and everything downstream of it: a fingerprint includes the dependencies
    assert "5 tasks changed in the workflow since they ran" in md


def test_report_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    done = prompter_cli("report", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "prompter: no task state in .prompter/state.json: nothing to report yet\n"
    )
    (tmp_path / ".prompter").mkdir()
    (tmp_path / ".prompter" / "state.json").write_text("{not json")
    done = prompter_cli("report", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("prompter: ") and "Traceback" not in done.stderr
    done = prompter_cli("report", "--format", "pdf", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_report_into_an_unwritable_place_is_one_line_exit_2(ran: Ran, tmp_path: Path) -> None:
    copy = copy_of(ran, tmp_path)
    (copy / ".prompter" / "junit.xml").unlink()
    (copy / ".prompter" / "junit.xml").mkdir()  # a directory where the file goes
    done = prompter_cli("report", cwd=copy)
    assert done.returncode == 2, done
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("prompter: ")


def test_a_report_that_cannot_be_written_is_named_not_its_temporary_file(
    ran: Ran, tmp_path: Path
) -> None:
    copy = copy_of(ran, tmp_path)
    (copy / ".prompter" / "junit.xml").unlink()
    (copy / ".prompter" / "junit.xml").mkdir()
    done = prompter_cli("report", cwd=copy)
    assert done.stderr == "prompter: .prompter/junit.xml: cannot write: Is a directory\n"
    assert [p.name for p in (copy / ".prompter").iterdir() if p.name.endswith(".tmp")] == []
    (copy / "rdfile").write_text("mine\n")
    done = prompter_cli(
        "report", "--state-file", ".prompter/state.json", "--report-dir", "rdfile", cwd=copy
    )
    assert done.returncode == 2
    assert done.stderr == "prompter: rdfile: cannot write: not a directory\n"
    assert (copy / "rdfile").read_text() == "mine\n"


def test_a_report_failure_warns_and_keeps_the_run_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = Harness(tmp_path)
    h.task("ok", depends_on=[])
    (tmp_path / ".prompter" / "summary.md").mkdir(parents=True)
    assert h.run() == 0
    err = capsys.readouterr().err
    assert err.startswith("prompter: warning: reports not written: ")
    assert len(err.splitlines()) == 1
    assert err.endswith(f"{Path('.prompter/summary.md')}: Is a directory\n")


def test_reports_after_an_interrupted_run(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("quick", depends_on=[])
    h.task("slow", [{"sleep": 60}], depends_on=["quick"])
    h.task("after", depends_on=["slow"])
    proc = h.spawn()
    deadline = time.monotonic() + 15
    while not any(c["task"] == "quick" for c in h.calls()):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    time.sleep(0.5)  # slow's agent is running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 143, err
    suite = suite_of(tmp_path / ".prompter" / "junit.xml")
    cases = {c.name: c for c in suite}
    (error,) = cases["slow"].result
    assert isinstance(error, Error) and error.type == "interrupted"
    assert error.message == "interrupted by SIGTERM"
    assert isinstance(cases["after"].result[0], Skipped)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 0, 1, 1)
    text = (tmp_path / ".prompter" / "summary.md").read_text("utf-8")
    assert text.startswith("## ⚠️ prompter: interrupted\n")
    assert re.search(r"^  ! slow \(interrupted\) :done, b1, \d+, \d+$", text, re.M)


def test_repo_relative_falls_back_to_the_workflow_folder(tmp_path: Path) -> None:
    wf = tmp_path / "a" / "wf.toml"
    wf.parent.mkdir()
    wf.write_text("")
    assert repo_relative(wf) == "wf.toml"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert repo_relative(wf) == "a/wf.toml"


# -- states built directly (hostile, large) ----------------------------------------------------


HOSTILE_OUTPUT = (
    "\x00NUL \x1b[31mred\x1b[0m \x1b]0;title\x07 ]]> </failure> <![CDATA[ x ]]> &amp; "
    "\ud800 lone \udfff surrogates \ufffe\uffff \x7f\x85 \r\nCRLF ``` ```` fence "
    "</details> <script>alert(1)</script> | pipe |\n"
)


def test_hostile_output_of_100_mb_yields_bounded_well_formed_xml(tmp_path: Path) -> None:
    big = "x" * (100 * 1024 * 1024 - len(HOSTILE_OUTPUT)) + HOSTILE_OUTPUT
    workflow = write_toml(tmp_path / "wf.toml", [{"name": n, "depends_on": []} for n in HOSTILE])
    records = [
        record(
            name,
            TaskStatus.FAILED if i % 2 else TaskStatus.PASSED,
            T0 + i,
            3.0,
            attempts=2,
            output=big,
            reason="verify_command exited 1 (expected 0)\n\x00" + HOSTILE_OUTPUT,
        )
        for i, name in enumerate(HOSTILE)
    ]
    state = state_of(records, workflow.path, T0 + 60)
    started = time.monotonic()
    text = junit.build_junit(state, workflow, file="wf.toml")
    assert time.monotonic() - started < 10
    path = tmp_path / "junit.xml"
    path.write_text(text, "utf-8")
    size = path.stat().st_size
    assert size <= junit.size_bound(len(HOSTILE)), size
    assert size < 2 * 1024 * 1024
    check = xmllint(path)
    assert check.returncode == 0, check.stderr
    root = ET.fromstring(path.read_bytes())
    names = [e.get("name") for e in root.iter("testcase")]
    assert names == HOSTILE
    failures = list(root.iter("failure"))
    assert len(failures) == len(HOSTILE) // 2
    for failure in failures:
        assert failure.get("message", "").startswith("verify_command exited 1 (expected 0) NUL")
        assert "\n" not in failure.get("message", "")
        body = failure.text or ""
        assert "]]> </failure> <![CDATA[ x ]]> &amp;" in body
        assert "\ufffd lone \ufffd surrogates" in body and "\x00" not in body
        assert "\x1b" not in body and "red" in body and "CRLF" in body
        assert body.startswith("[… earlier output cut")
    suite = suite_of(path)
    assert (suite.tests, suite.failures, suite.errors) == (len(HOSTILE), len(HOSTILE) // 2, 0)
    case = next(e for e in root.iter("testcase") if e.get("name") == HOSTILE[1])
    props = {e.get("name"): e.get("value") for e in case.iter("property")}
    assert props["attempts"] == "2" and props["cost_usd"] == "0.020000"
    assert props["input_tokens"] == "200" and props["output_tokens"] == "40"
    assert props["session_id"] == f"session-{HOSTILE[1][:20]}"

    md = summary.build_summary(state, workflow)
    assert len(md.encode("utf-8")) <= summary.MAX_BYTES
    tokens = markdown().parse(md)
    fences = [t for t in tokens if t.type == "fence"]
    assert [t.info for t in fences] == ["mermaid"] * 3 + ["text"] * (len(HOSTILE) // 2)
    for fence in fences[3:]:
        assert fence.content.endswith(xml_safe(HOSTILE_OUTPUT).rstrip() + "\n")
        assert fence.markup == "`" * 5  # longer than the 4-backtick run in the output
    html_tags = set()
    for token in tokens:
        if token.type == "html_block":
            html_tags |= set(re.findall(r"<(/?[a-z]+)", token.content))
        for child in token.children or []:
            if child.type == "html_inline":
                html_tags.add(child.content)
    assert html_tags <= {"details", "summary", "/summary", "/details"}, html_tags


def test_hostile_names_and_reasons_stay_inside_their_table_cells(tmp_path: Path) -> None:
    names = ["a | b", "<b>bold</b>", "`x`", "*y*", "[z](http://e.com)", "line\nbreak", "@user"]
    records = [
        record(n, TaskStatus.FAILED, T0, 1.0, reason=f"why | {n} <i>x</i> \x1b[1m") for n in names
    ]
    state = state_of(records, tmp_path / "gone.toml", T0 + 2)
    html = markdown().render(summary.build_summary(state))
    rows = re.findall(r"<tr>\n(.*?)</tr>", html, re.S)[1 : 1 + len(names)]
    for row, name in zip(rows, names, strict=True):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        assert len(cells) == 6, row
        shown = " ".join(name.split())
        assert cells[0] == shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert cells[5].startswith("why | ")
    assert "<b>" not in html and "<i>" not in html and "<a " not in html
    assert "<em>y</em>" not in html and "<code>x</code>" not in html


def test_fence_is_longer_than_any_backtick_run() -> None:
    for content in ["plain", "``` x", "````````", "a `b` c\n```\n"]:
        block = summary.fenced(content)
        (token,) = [t for t in markdown().parse(block) if t.type == "fence"]
        assert token.content == content.rstrip() + "\n"


def test_junit_size_bound_holds_for_the_worst_fields(tmp_path: Path) -> None:
    names = [f'{i:03d}"' + '"' * 196 for i in range(50)]  # 200 characters, each 6 bytes in XML
    records = [
        record(n, TaskStatus.FAILED, T0, 1.0, reason='"' * 1000, output="<" * 100_000)
        for n in names
    ]
    state = state_of(records, tmp_path / ('"' * 300 + ".toml"), T0 + 2)
    text = junit.build_junit(state, file='"' * 1000)
    assert len(text.encode()) <= junit.size_bound(len(names))
    ET.fromstring(text)


# -- sizes: 2,000 tasks with 1 MB of output per failing task -----------------------------------


def test_2000_tasks_with_1_mb_per_failure_stay_within_the_bounds(tmp_path: Path) -> None:
    output = ("E   assert result == expected\n" * 40_000)[: 1_000_000 - len(HOSTILE_OUTPUT)]
    workflow, state = grouped_run(tmp_path, 2000, 4, {1}, output + HOSTILE_OUTPUT, every=1)
    failing = sum(r.status is TaskStatus.FAILED for r in state.tasks.values())
    assert failing == 500
    started = time.monotonic()
    paths = write_reports(state, tmp_path / "out", workflow)
    took = time.monotonic() - started
    junit_bytes = paths[0].stat().st_size
    summary_bytes = paths[1].stat().st_size
    print(
        f"2,000 tasks, {failing} failing with 1 MB of output each: summary.md {summary_bytes:,} "
        f"bytes (limit {summary.MAX_BYTES:,}), junit.xml {junit_bytes:,} bytes (bound "
        f"{junit.size_bound(2000):,}), built in {took:.1f} s"
    )
    assert summary_bytes <= summary.MAX_BYTES
    assert junit_bytes <= junit.size_bound(2000)
    assert took < 30
    assert xmllint(paths[0]).returncode == 0
    suite = suite_of(paths[0])
    assert suite.tests == 2000 and suite.failures == failing
    text = paths[1].read_text("utf-8")
    # Trimming step 1 was enough: every failure still shows the end of its output.
    assert text.count("<details>") == failing
    assert re.search(r"in this order: failure output shortened to its last [\d,]+ bytes each\.\n$",
                     text), text[-300:]  # fmt: skip
    assert "changed" not in text


# -- every mermaid block renders ---------------------------------------------------------------


def hostile_run(root: Path) -> Harness:
    """A real run over task names that are mermaid, markdown or HTML syntax."""
    names = HOSTILE + ISOLATED_NAMES
    h = Harness(root)
    spec: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        spec.append(
            {
                "name": name,
                "prompt": "p",
                "verify_command": "exit 1" if i % 6 == 4 else "true",
                "max_attempts": 1,
                "depends_on": names[max(i - 2, i - i % 6) : i],  # ladders of 6 tasks
            }
        )
    settings = {
        "working_directory": "work",
        "agent": "command",
        "agent_command": [
            sys.executable,
            str(TESTS / "agents" / "fake_agent.py"),
            "{task}",
            "{attempt}",
            "{prompt}",
        ],
        "retry_delay": 0,
        "max_parallel_tasks": 8,
    }
    lines = ["[settings]"] + [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    text = "\n".join(lines) + "\n\n"
    for task in spec:
        text += "[[tasks]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in task.items())
    h.workflow.write_text(text, "utf-8")
    h.plan_file.write_text("{}")
    h.write = lambda: h.workflow  # type: ignore[method-assign]  # keep our own TOML
    return h


@dataclass
class Rendered:
    ordinary: str
    hostile: str
    hostile_state: State
    names: list[str]
    large: str
    large_all_failing: str
    extra: dict[str, str]
    verdicts: dict[str, list[Verdict]]
    screenshot: Path


@pytest.fixture(scope="module")
def rendered(ran: Ran, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    tmp = tmp_path_factory.mktemp("render")
    ordinary_md = (ran.report_dir / "summary.md").read_text("utf-8")
    (tmp / "hostile").mkdir()
    hostile = hostile_run(tmp / "hostile")
    assert hostile.run() == 1
    hostile_md = (hostile.root / ".prompter" / "summary.md").read_text("utf-8")
    workflow, state = grouped_run(tmp, 700, 7, {3}, "boom\n")
    large_md = summary.build_summary(state, workflow)
    (tmp / "all").mkdir()
    workflow2, state2 = grouped_run(tmp / "all", 700, 7, {0}, "boom\n")
    for r in state2.tasks.values():  # every group fails at its root
        if r.status is not TaskStatus.SKIPPED:
            r.status = TaskStatus.FAILED
    large_all_md = summary.build_summary(state2, workflow2)
    extra = {
        # 250 names of 95 emoji (190 UTF-16 units, which is what mermaid counts): both
        # diagrams pass 50,000 characters with fewer than 300 tasks
        "long_names": summary.build_summary(
            *simulate(
                write_toml(
                    tmp / "long.toml",
                    [
                        {
                            "name": f"{i:03d} " + "🚀" * 95,
                            "depends_on": [f"{i - 1:03d} " + "🚀" * 95],
                        }
                        if i % 5
                        else {"name": f"{i:03d} " + "🚀" * 95, "depends_on": []}
                        for i in range(250)
                    ],
                ),
                {f"{i:03d} " + "🚀" * 95 for i in range(2, 250, 20)},
            )
        ),
        # 20 x 26 dependencies: 520 edges between 46 tasks, past mermaid's edge limit
        "dense": summary.build_summary(
            *simulate(
                write_toml(
                    tmp / "dense.toml",
                    [{"name": f"s{i}", "depends_on": []} for i in range(20)]
                    + [
                        {"name": f"t{j}", "depends_on": [f"s{i}" for i in range(20)]}
                        for j in range(26)
                    ],
                ),
                {"s3"},
            )
        ),
    }
    given = {
        "hostile": blocks(hostile_md),
        "large": blocks(large_md),
        "large_all_failing": blocks(large_all_md),
        **{key: blocks(text) for key, text in extra.items()},
    }
    flat = [d for ds in given.values() for d in ds]
    png = tmp / "summary.png"
    body = markdown().render(ordinary_md)
    verdicts = render(flat, screenshot=png, body_html=body, window=(1200, 2200))
    out: dict[str, list[Verdict]] = {}
    at = 0
    for key, ds in given.items():
        out[key] = verdicts[at : at + len(ds)]
        at += len(ds)
    out["ordinary"] = verdicts[at:]
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, SCREENSHOT_COPY)
    return Rendered(
        ordinary_md,
        hostile_md,
        StateStore(hostile.root / ".prompter" / "state.json").load(),
        [t.name for t in load_workflow(hostile.workflow).tasks],
        large_md,
        large_all_md,
        extra,
        out,
        png,
    )


def assert_all_ok(verdicts: Sequence[Verdict], diagrams: Sequence[str]) -> None:
    assert verdicts, "no diagram rendered"
    for verdict, diagram in zip(verdicts, diagrams, strict=True):
        assert verdict.ok, f"mermaid failed: {verdict.error}\n--- diagram ---\n{diagram[:3000]}"


@pytest.mark.render
def test_ordinary_summary_renders_with_a_screenshot(
    rendered: Rendered, capsys: pytest.CaptureFixture[str]
) -> None:
    verdicts = rendered.verdicts["ordinary"]
    assert len(verdicts) == 3
    assert_all_ok(verdicts, blocks(rendered.ordinary))
    flow, legend, gantt = verdicts
    assert flow.nodes["t3"] == "integration"
    # As drawn: the graph has no legend node (nothing of it for an edge to cross); the legend,
    # a diagram of its own, has every class the graph uses and nothing else.
    assert not [n for n in flow.nodes if n.startswith("legend")], flow.nodes
    assert legend.nodes == {
        "legend_passed": "passed",
        "legend_failed": "failed",
        "legend_skipped": "skipped",
    }, legend.nodes
    for name in ("lint", "unit tests", "integration (1/2)", "deploy"):
        assert name in flow.text or name in gantt.text
    assert "✗ integration (2/2)" in gantt.text and "✓ build (2/2)" in gantt.text
    data = rendered.screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1200, 2200)
    assert len(data) > 20 * 1024, "expected a real picture"
    assert SCREENSHOT_COPY.read_bytes() == data
    with capsys.disabled():
        print(f"\nsummary screenshot: {rendered.screenshot} (also {SCREENSHOT_COPY})")


@pytest.mark.render
def test_hostile_names_render_literally_in_both_diagrams(rendered: Rendered) -> None:
    diagrams = blocks(rendered.hostile)
    assert len(diagrams) == 3
    verdicts = rendered.verdicts["hostile"]
    assert_all_ok(verdicts, diagrams)
    flow, _legend, gantt = verdicts
    for i, name in enumerate(rendered.names):
        assert flow.nodes.get(f"t{i}") == name, (name, flow.nodes.get(f"t{i}"))
    bars = 0
    for name, task in rendered.hostile_state.tasks.items():
        if task.status is TaskStatus.SKIPPED or len(name) > 100:
            continue
        mark = "✓" if task.status is TaskStatus.PASSED else "✗"
        assert f"{mark} {name}" in gantt.text, name
        bars += 1
    assert bars >= 20
    for verdict in verdicts:
        stray = {"script", "b", "i", "iframe", "img", "a"} & set(verdict.tags)
        assert not stray, stray


@pytest.mark.render
def test_700_task_run_falls_back_and_still_renders(rendered: Rendered) -> None:
    text = rendered.large
    diagrams = blocks(text)
    assert len(diagrams) == 3  # the failed subgraph, its legend, the timeline
    assert_all_ok(rendered.verdicts["large"], diagrams)
    assert "showing the failed subgraph only" in text
    assert "Timeline too large to draw" in text and "showing 300 of" in text
    assert diagrams[0].count("-->") + diagrams[0].count("==>") <= mermaid.MAX_EDGES
    assert len(text.encode()) <= summary.MAX_BYTES

    text = rendered.large_all_failing
    diagrams = blocks(text)
    assert_all_ok(rendered.verdicts["large_all_failing"], diagrams)
    assert "Graph too large to draw" in text and "| failed task | status |" in text
    assert len(diagrams) == 1 and diagrams[0].startswith("gantt")


@pytest.mark.render
def test_diagrams_past_mermaid_limits_below_the_task_caps_fall_back_and_render(
    rendered: Rendered,
) -> None:
    text = rendered.extra["long_names"]
    diagrams = blocks(text)
    assert_all_ok(rendered.verdicts["long_names"], diagrams)
    assert "Graph too large to draw (the diagram exceeds mermaid's limit of 50,000" in text
    assert "showing the failed subgraph only" in text
    assert "Timeline too large to draw (the diagram exceeds mermaid's limit of 50,000" in text
    assert [d.split("\n")[0] for d in diagrams] == ["flowchart TD", "flowchart TD", "gantt"]

    text = rendered.extra["dense"]
    diagrams = blocks(text)
    assert_all_ok(rendered.verdicts["dense"], diagrams)
    assert "Graph too large to draw (520 edges exceed mermaid's limit of 500)" in text
    assert "showing the failed subgraph only (27 of 46 tasks" in text
    assert diagrams[0].count(" --> ") + diagrams[0].count(" ==> ") == 26


def simulate(workflow: Workflow, failing: set[str]) -> tuple[State, Workflow]:
    """A state as 8 slots would leave it: tasks in topological order, `failing` failed (twice),
    everything that depends on them skipped."""
    names = [t.name for t in workflow.tasks]
    prints = fingerprints(workflow)
    lanes = [T0] * 8
    done: dict[int, float] = {}
    bad: set[int] = set()
    records = []
    for i in workflow.graph.order:
        name = names[i]
        if any(d in bad for d in workflow.graph.deps[i]):
            bad.add(i)
            records.append(record(name, TaskStatus.SKIPPED, T0, 0, reason="dependency failed"))
            continue
        lane = min(range(8), key=lanes.__getitem__)
        start = max([lanes[lane]] + [done[d] for d in workflow.graph.deps[i]])
        seconds = 3.0 + i % 7
        lanes[lane] = done[i] = start + seconds
        status = TaskStatus.FAILED if name in failing else TaskStatus.PASSED
        if status is TaskStatus.FAILED:
            bad.add(i)
        records.append(
            record(
                name,
                status,
                start,
                seconds,
                attempts=2 if name in failing else 1,
                output="boom\n",
                reason="verify_command exited 1 (expected 0)" if name in failing else None,
            )
        )
    for r in records:
        r.fingerprint = prints[r.name]
    return state_of(records, workflow.path, max(lanes)), workflow


# -- the gantt text rule -------------------------------------------------------------------------


def test_gantt_text_keeps_keywords_and_syntax_out() -> None:
    for name in ("section x", "title t", "dateFormat", "excludes weekends", "a:b", "#x", "%%c"):
        text = mermaid.gantt_text(name)
        assert ":" not in text.replace("#58;", "") and not text[0].isalpha()
        assert "%%" not in text
    assert mermaid.gantt_text("   ") == "#32;"


def test_summary_numbers_from_a_state_alone(tmp_path: Path) -> None:
    records = [
        record("a", TaskStatus.PASSED, T0, 10.0),
        record("b", TaskStatus.PASSED, T0, 10.0),
        record("c", TaskStatus.FAILED, T0 + 10, 5.0, reason="verify_command exited 2 (expected 0)"),
        record("old", TaskStatus.PASSED, T0 - 999, 1.0, run_id="run-0"),
    ]
    state = state_of(records, tmp_path / "missing.toml", T0 + 15)
    text = summary.build_summary(state)
    assert "wall time 15.0 s · sum of task times 25.0 s · speedup 1.67x · cost $0.03" in text
    assert "✅ passed (earlier run)" in text
    assert "needs the workflow's dependency graph" in text
    gantt = blocks(text)[0]
    assert gantt.count(" :") == 3  # the earlier run's task is not on this run's timeline
    assert str(math.floor((T0 + 10) * 1000)) in gantt
    data = json.loads(json.dumps(summary.md("a|b")))
    assert data == "a\\|b"


def test_cli_report_is_in_process_too(ran: Ran, tmp_path: Path) -> None:
    copy = copy_of(ran, tmp_path)
    state = StateStore(copy / ".prompter" / "state.json").load()
    assert state.tasks
    code = main(["report", "--report-dir", str(copy / ".prompter"), "--format", "junit"])
    assert code == 0


def test_sequential_run_reports(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.task("first")
    h.task("second", verify_command="echo nope; exit 4", on_failure="next", max_attempts=1)
    h.task("third")
    assert h.run() == 1
    suite = suite_of(tmp_path / ".prompter" / "junit.xml")
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 1, 0, 0)
    (failure,) = {c.name: c for c in suite}["second"].result
    assert failure.message == "verify_command exited 4 (expected 0)" and "nope" in failure.text
    text = (tmp_path / ".prompter" / "summary.md").read_text("utf-8")
    assert "sequential mode: one task at a time" in text
    assert "Sequential mode: solid arrows on success, dotted on failure." in text
    flow = blocks(text)[0]
    assert '-.->|"failure"|' in flow and "classDef failed" in flow


def test_a_crashed_run_reports_unfinished_tasks_as_errors(tmp_path: Path) -> None:
    running = record("busy", TaskStatus.PASSED, T0, 4.0)
    running = running.model_copy(update={"status": TaskStatus.RUNNING, "finished_at": None})
    state = state_of([record("done", TaskStatus.PASSED, T0, 2.0), running], tmp_path / "x", 0)
    state.runs[0] = state.runs[0].model_copy(update={"finished_at": None, "status": None})
    root = ET.fromstring(junit.build_junit(state))
    (error,) = root.iter("error")
    assert error.get("message") == "did not finish: the run ended while the task was running"
    assert error.get("type") == "unfinished"
    assert root.get("errors") == "1"
    text = summary.build_summary(state)
    assert text.startswith("## ⏳ x: did not finish\n")
    assert "the run did not record its end" in text
    assert "wall time 2.0 s" in text  # up to the last end it did record


TRIM_STEPS = (
    "failure output shortened",
    "failures' output not shown",
    "passed tasks left out of the table",
    "the table cut after",
    "the timeline chart left out",
    "the dependency graph left out",
)


def test_trimming_follows_the_fixed_order_and_says_what_it_trimmed(tmp_path: Path) -> None:
    workflow, state = grouped_run(tmp_path, 200, 4, {1}, "y" * 50_000 + "\n", every=2)
    full = summary.build_summary(state, workflow)
    assert "Trimmed" not in full and len(blocks(full)) == 3  # graph, legend, timeline
    seen: list[int] = []
    for limit in (300_000, 100_000, 40_000, 25_000, 16_000, 12_000, 8_000, 6_000):
        text = summary.build_summary(state, workflow, max_bytes=limit)
        assert len(text.encode()) <= limit
        assert text.startswith("## ❌ grouped-200: failed\n")  # the headline always stays
        notes = text.rsplit("in this order: ", 1)[1].rstrip(".\n").split("; ")
        steps = [next(i for i, s in enumerate(TRIM_STEPS) if s in n) for n in notes]
        assert steps == sorted(steps), notes  # always in the fixed order
        assert set(seen) <= set(steps), (seen, steps)  # a smaller limit trims at least as much
        seen = steps
        for diagram in blocks(text):  # whatever is left of a diagram is all of it
            assert diagram in full
        tokens = markdown().parse(text)
        assert all(t.info in ("mermaid", "text") for t in tokens if t.type == "fence")
    assert seen == list(range(len(TRIM_STEPS)))


def test_report_finds_a_relative_workflow_from_another_folder(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    h = Harness(tmp_path / "project")
    h.task("one", depends_on=[])
    h.write()
    done = subprocess.run(
        [sys.executable, "-m", "prompter", "run", "--progress", "none", "prompter.toml"],
        cwd=h.root,
        env={**os.environ, **h.env()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        StateStore(h.root / ".prompter" / "state.json").load().runs[-1].workflow == "prompter.toml"
    )
    done = prompter_cli("report", "--report-dir", "project/.prompter", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    root = ET.parse(h.root / ".prompter" / "junit.xml").getroot()
    assert [e.get("line") for e in root.iter("testcase")] == ["7"]  # its [[tasks]] header
    assert [e.get("file") for e in root.iter("testcase")] == ["prompter.toml"]


def gfm(text: str) -> str:
    """HTML from cmark-gfm, the parser GitHub renders markdown (and step summaries) with."""
    exe = shutil.which("cmark-gfm")
    assert exe, "cmark-gfm not found: apt-get install cmark-gfm"
    extensions = ["-e", "table", "-e", "autolink", "-e", "strikethrough", "-e", "tagfilter"]
    done = subprocess.run(
        [exe, "--unsafe", *extensions], input=text, capture_output=True, text=True, check=True
    )
    return done.stdout


MARKDOWN_NAMES = [
    "a | b",
    "*y*",
    "_z_",
    "[z](http://e.com)",
    "![img](x.png)",
    "www.example.com",
    "http://x.io/a_b",
    "~~strike~~",
    ":rocket:",
    "$x^2$",
    "@user",
    "<img src=x onerror=alert(1)>",
    "&copy; &#60;",
    "\\*escaped\\*",
    "- [ ] task",
    "# heading",
    "> quote",
    "1. list",
]


def test_github_markdown_parser_shows_every_name_and_reason_literally(tmp_path: Path) -> None:
    """cmark-gfm with GitHub's extensions: each name in its own cell, no markup from names."""
    import html as html_lib

    names = [n for n in HOSTILE + ISOLATED_NAMES + MARKDOWN_NAMES if len(n) <= 200]
    records = [
        record(n, TaskStatus.FAILED, T0 + i, 1.0, reason=f"why: {n}", output=HOSTILE_OUTPUT)
        for i, n in enumerate(names)
    ]
    page = gfm(summary.build_summary(state_of(records, tmp_path / "gone.toml", T0 + 99)))
    rows = re.findall(r"<tr>\n(.*?)</tr>", page, re.S)[1:]
    assert len(rows) == len(names)
    for row, name in zip(rows, names, strict=True):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        assert len(cells) == 6, (name, row)
        literal = " ".join(name.split())
        assert "<" not in cells[0] and "<" not in cells[5], (name, cells)  # no element at all
        assert html_lib.unescape(cells[0]) == literal, (name, cells[0])
        assert html_lib.unescape(cells[5]) == report_line(f"why: {literal}", 200), (name, cells[5])
    summaries = re.findall(r"<details><summary>(.*?)</summary>", page)
    assert [html_lib.unescape(s) for s in summaries] == [
        f"{' '.join(n.split())}: why: {' '.join(n.split())}" for n in names
    ]
    codes = re.findall(r'<pre><code class="language-text">(.*?)</code></pre>', page, re.S)
    assert len(codes) == len(names)
    assert all(html_lib.unescape(c) == xml_safe(HOSTILE_OUTPUT) for c in codes)
