"""report.html in Debian's headless Chromium, driven over the DevTools protocol
(tests/html_page.py): it loads with no console error and no request but its own file, shows
every task, one graph node per task and one edge per dependency, one timeline bar per attempt;
a click on a failed task shows its verify output; hostile names and output stay text.
Marker `render`: without Chromium the session stops before its first test (conftest.py)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from prompter.cli import main
from prompter.config import Workflow
from prompter.fingerprints import fingerprints
from prompter.records import AgentLimitChange, RunRecord, State, TaskStatus
from prompter.report.html import build_html
from prompter.state import StateStore
from prompter.text import escape_controls

from .built_states import T0, grouped_run, record, state_of, write_toml
from .harness import Harness
from .hostile_names import HOSTILE, ISOLATED_NAMES
from .html_page import Page

pytestmark = pytest.mark.render

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT_COPY = Path(__file__).resolve().parent / "render" / "out" / "report-html.png"

# Each sets a global if it ever runs as script.
ATTACKS = [
    '<img src=x onerror="window.pwned=1">',
    "</script><script>window.pwned=2</script>",
    "javascript:window.pwned=3",
    '<svg onload="window.pwned=4">',
    "\u202eevil\u202c \x00 nul",
]


LOG_PATH = re.compile(r"logs/[A-Za-z0-9_-][A-Za-z0-9._-]*\.log")


def counts(page: Page) -> dict[str, int]:
    return dict(
        page.js(
            "({nodes: document.querySelectorAll('#graph g.node').length,"
            " edges: document.querySelectorAll('#graph path.edge').length,"
            " bars: document.querySelectorAll('#timeline rect.bar').length,"
            " items: document.querySelectorAll('#task-list li').length,"
            " imgs: document.querySelectorAll('img, iframe, object, embed').length,"
            " scripts: document.scripts.length})"
        )
    )


def attempts_of(state: State) -> int:
    return sum(len(r.attempts) for r in state.tasks.values())


def assert_clean_load(page: Page, path: Path) -> None:
    assert page.logged.errors == []
    assert page.logged.requests == [path.resolve().as_uri()], "a request beyond the page"


# -- a real run ----------------------------------------------------------------------------------


def ordinary(h: Harness) -> None:
    h.settings["max_parallel_tasks"] = 3
    h.task("lint", [{"sleep": 0.2}], depends_on=[])
    h.task("unit tests", [{"sleep": 0.3}], depends_on=[])
    h.task(
        "build",
        [{"sleep": 0.1}],
        verify_command="test -f built || { touch built; echo 'first build fails'; exit 1; }",
        depends_on=["lint"],
    )
    h.task(
        "integration",
        [{"sleep": 0.1}],
        verify_command="echo '3 of 40 checks failed'; "
        "echo '</script><script>window.pwned=9</script>'; exit 1",
        max_attempts=2,
        depends_on=["build", "unit tests"],
    )
    h.task("package", [{"sleep": 0.2}], depends_on=["build"])
    h.task("deploy", depends_on=["integration", "package"])


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    h = Harness(tmp_path_factory.mktemp("run"))
    ordinary(h)
    assert h.run() == 1
    return h


def test_a_run_writes_a_page_that_loads_clean_with_every_task_edge_and_attempt(
    ran: Harness,
) -> None:
    path = ran.root / ".prompter" / "report.html"
    state = StateStore(ran.root / ".prompter" / "state.json").load()
    with Page() as page:
        page.open(path)
        assert_clean_load(page, path)
        assert counts(page) == {
            "nodes": 6,
            "edges": 6,  # build<-lint, integration<-build, unit tests, package<-build, deploy<-2
            "bars": attempts_of(state),
            "items": 6,
            "imgs": 0,
            "scripts": 2,  # the facts (data) and the page's script
        }
        names = page.js(
            "Array.from(document.querySelectorAll('#task-list li .n'), e => e.textContent)"
        )
        assert names == ["lint", "unit tests", "build", "integration", "package", "deploy"]
        # The failed task is chosen at the start; click another, then the failed one's node.
        page.click("#zoom-fit")
        page.click("#graph g.node[data-task='0']")
        assert page.js("document.querySelector('#details h2').textContent") == "lint"
        # Outside git the tasks share the tree: no diff per task, and the page says so.
        assert "no diff per task" in page.js("document.getElementById('details').textContent")
        page.click("#zoom-fit")
        page.click("#graph g.node[data-task='3']")
        assert page.js("document.querySelector('#details h2').textContent") == "integration"
        outputs = page.js(
            "Array.from(document.querySelectorAll('#details pre.output'), e => e.textContent)"
        )
        assert len(outputs) == 2  # both attempts
        assert all("3 of 40 checks failed" in o for o in outputs)
        assert page.js("document.querySelector('#details a.log').getAttribute('href')") == (
            "logs/integration.log"
        )
        assert all("</script><script>window.pwned=9</script>" in o for o in outputs)
        command = page.js("document.querySelector('#details pre.cmd').textContent")
        assert command.startswith("echo '3 of 40 checks failed'")
        feedback = page.js(
            "Array.from(document.querySelectorAll('#details details.attempt pre'),"
            " e => e.textContent)"
        )
        assert any("Attempt 1 did not pass" in f for f in feedback), feedback
        # deploy was skipped: its root cause links to integration
        page.click("#task-list li[data-task='5']")
        assert "Root cause: integration" in page.js(
            "document.getElementById('details').textContent"
        )
        page.click("#details p button.link")
        assert page.js("document.querySelector('#details h2').textContent") == "integration"
        assert page.js("typeof window.pwned") == "undefined"
        assert page.logged.errors == []


def test_filters_and_keyboard(ran: Harness) -> None:
    path = ran.root / ".prompter" / "report.html"
    with Page() as page:
        page.open(path)
        shown = (
            "Array.from(document.querySelectorAll('#task-list li:not(.hidden) .n'),"
            " e => e.textContent)"
        )
        page.click("button[data-filter='failed']")
        assert page.js(shown) == ["integration"]
        page.click("button[data-filter='skipped']")
        assert page.js(shown) == ["deploy"]
        page.click("button[data-filter='critical']")
        critical = page.js(shown)
        assert "integration" in critical and "deploy" not in critical
        page.click("button[data-filter='all']")
        page.js("document.getElementById('search').focus()")
        page.call("Input.insertText", text="UNIT")
        assert page.js(shown) == ["unit tests"]
        page.js(
            "const s = document.getElementById('search');"
            " s.value = ''; s.dispatchEvent(new Event('input'))"
        )
        page.js("document.getElementById('task-list').focus()")
        selected = "document.querySelector('#details h2').textContent"
        for key, expect in (("Home", "lint"), ("ArrowDown", "unit tests"), ("End", "deploy")):
            page.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=key)
            assert page.js(selected) == expect
        # pan and zoom by keys change the graph's transform
        before = page.js("document.getElementById('graph-root').getAttribute('transform')")
        page.js("document.getElementById('graph-view').focus()")
        page.call("Input.dispatchKeyEvent", type="keyDown", key="+", text="+")
        assert page.js("document.getElementById('graph-root').getAttribute('transform')") != before
        page.dark()
        background = page.js("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(13, 17, 23)"
        assert page.logged.errors == []


def test_prompter_report_writes_only_the_page(ran: Harness, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    shutil.copytree(ran.root / ".prompter", out)
    (out / "report.html").unlink()
    (out / "junit.xml").unlink()
    code = main(["report", str(ran.workflow), "--report-dir", str(out), "--format", "html"])
    assert code == 0
    assert (out / "report.html").is_file()
    assert not (out / "junit.xml").exists()


# -- hostile names and output --------------------------------------------------------------------


def hostile_state(tmp: Path) -> tuple[Workflow, State]:
    names = [n for n in HOSTILE + ISOLATED_NAMES + ATTACKS if "\x00" not in n]
    workflow = write_toml(
        tmp / "hostile.toml",
        [{"name": n, "depends_on": names[max(0, i - 2) : i]} for i, n in enumerate(names)],
    )
    output = "\n".join(ATTACKS) + "\n<img src=x onerror=window.pwned=5> ]]> &amp; \x1b[31mred"
    records = []
    for i, name in enumerate(names):
        status = TaskStatus.FAILED if i % 7 == 3 else TaskStatus.PASSED
        records.append(
            record(name, status, T0 + i, 3, attempts=2, output=output, reason=output[:200])
        )
    prints = fingerprints(workflow)
    for r in records:
        r.fingerprint = prints[r.name]
        for a in r.attempts:
            a.result_text = output
            a.changed_files = [*ATTACKS, "src/<b>x</b>.py +1 -0"]
    return workflow, state_of(records, workflow.path, T0 + 200)


def test_hostile_names_and_output_stay_text_even_without_the_policy(tmp_path: Path) -> None:
    workflow, state = hostile_state(tmp_path)
    html = build_html(state, workflow)
    with_policy = tmp_path / "report.html"
    with_policy.write_text(html, "utf-8")
    # The same page without its Content-Security-Policy: the escaping alone must hold.
    start = html.index('<meta http-equiv="Content-Security-Policy"')
    bare = tmp_path / "bare.html"
    bare.write_text(html[:start] + html[html.index(">", start) + 1 :], "utf-8")
    for path in (with_policy, bare):
        with Page() as page:
            page.open(path)
            assert_clean_load(page, path)
            found = counts(page)
            assert found["nodes"] == found["items"] == len(state.tasks)
            assert found["imgs"] == 0
            assert found["scripts"] == 2
            assert found["bars"] == attempts_of(state)
            names = page.js(
                "Array.from(document.querySelectorAll('#task-list li .n'), e => e.textContent)"
            )
            assert names == [escape_controls(n) for n in state.tasks]
            for i in range(len(state.tasks)):
                page.js(f"window.prompterReport.select({i})")
            page.js("document.querySelectorAll('details').forEach(d => d.open = true)")
            text = page.js("document.getElementById('details').textContent")
            assert "</script><script>window.pwned=2</script>" in text
            assert "<img src=x onerror=window.pwned=5>" in text
            assert page.js("typeof window.pwned") == "undefined"
            # The only links are the task logs: relative, inside the logs folder beside the page.
            links = page.js(
                "Array.from(document.querySelectorAll('a[href]'),"
                " a => [a.getAttribute('href'), a.href, a.protocol])"
            )
            logs = (path.parent / "logs").resolve().as_uri() + "/"
            assert links, "a task that ran links its log"
            for href, url, protocol in links:
                assert LOG_PATH.fullmatch(href), href
                assert protocol == "file:" and url.startswith(logs) and "/../" not in url, url
            assert page.logged.errors == []


# -- a task's diff and its log ------------------------------------------------------------------

HOSTILE_DIFF = (
    "diff --git a/page.html b/page.html\n--- a/page.html\n+++ b/page.html\n@@ -1 +1,3 @@\n"
    '-<p>old</p>\n+</script><img src=x onerror="window.pwned=6">\n'
    '+<script>window.pwned=7</script>\n+<a href="javascript:window.pwned=8">x</a>\n'
)


def test_a_diff_renders_as_text_and_the_log_link_opens_the_log(tmp_path: Path) -> None:
    names = ["edit page", "big change", "<img src=x onerror=window.pwned=10>"]
    workflow = write_toml(tmp_path / "wf.toml", [{"name": n} for n in names])
    records = [record(n, TaskStatus.PASSED, T0 + i, 2) for i, n in enumerate(names)]
    records[0].attempts[0].changed_files = ["page.html +3 -1"]
    records[0].attempts[0].diff = HOSTILE_DIFF
    records[1].attempts[0].changed_files = ["numbers.txt +300 -0"]  # its diff: too large
    run = RunRecord(
        run_id="run-1",
        workflow=str(workflow.path),
        started_at=T0,
        finished_at=T0 + 9,
        status="passed",
        isolation="worktree",
    )
    state = State.model_construct(version=1, tasks={r.name: r for r in records}, runs=[run])
    path = tmp_path / "report" / "report.html"
    (tmp_path / "report" / "logs").mkdir(parents=True)
    path.write_text(build_html(state, workflow), "utf-8")
    from prompter.places import log_name

    for name in names:
        (path.parent / "logs" / log_name(name)).write_text(f"the transcript of {name}\n")
    with Page() as page:
        page.open(path)
        assert_clean_load(page, path)
        page.js("window.prompterReport.select(0)")
        assert page.js("document.querySelector('#details pre.diff').textContent") == HOSTILE_DIFF
        assert counts(page)["imgs"] == 0
        assert page.js("document.querySelectorAll('#details a').length") == 1  # the log only
        page.js("window.prompterReport.select(1)")
        note = page.js("document.querySelector('#details .diff-note').textContent")
        assert note == "Diff: diff too large to record here: see changes.patch."
        assert page.js("document.querySelector('#details pre.diff')") is None
        page.js("window.prompterReport.select(2)")
        href = page.js("document.querySelector('#details a.log').getAttribute('href')")
        assert href == "logs/" + log_name(names[2])
        assert page.js("typeof window.pwned") == "undefined"
        assert page.logged.errors == []
        # Following the link is a navigation the policy allows: the log opens as text.
        page.click("#details a.log")
        deadline = time.monotonic() + 10
        while not page.js("location.href").endswith(href):
            assert time.monotonic() < deadline, "the log did not open"
            time.sleep(0.05)
        while page.js("document.body && document.body.textContent") is None:
            time.sleep(0.05)
        assert page.js("document.body.textContent") == f"the transcript of {names[2]}\n"
        assert page.logged.errors == []


# -- a fan-out, the agent limit, and 1,000 tasks -------------------------------------------------


def test_a_fanout_has_lanes_per_job_and_the_agent_limit_band(tmp_path: Path) -> None:
    names = [f"t{i}" for i in range(8)]
    workflow = write_toml(
        tmp_path / "wf.toml",
        [{"name": n, "depends_on": names[:i][-1:] if i % 4 else []} for i, n in enumerate(names)],
    )
    records = [
        record(n, TaskStatus.PASSED, T0 + (i % 4) * 3, 3, run_id=f"run-{i // 4}")
        for i, n in enumerate(names)
    ]
    runs = [
        RunRecord(
            run_id=f"run-{j}",
            workflow=str(workflow.path),
            started_at=T0,
            finished_at=T0 + 13,
            status="passed",
            job=f"group-{j}",
            agent_limit=[
                AgentLimitChange(at=T0 + 1, limit=4, maximum=4, cause="start"),
                AgentLimitChange(at=T0 + 5, limit=2, maximum=4, cause="API 429"),
            ],
        )
        for j in range(2)
    ]
    state = State.model_construct(version=1, tasks={r.name: r for r in records}, runs=runs)
    path = tmp_path / "report.html"
    path.write_text(build_html(state, workflow), "utf-8")
    with Page() as page:
        page.open(path)
        assert_clean_load(page, path)
        lanes = page.js(
            "Array.from(document.querySelectorAll('#timeline .lane-label'), e => e.textContent)"
        )
        assert lanes == ["job group-0 · slot 1", "job group-1 · slot 1", "agent limit"]
        assert page.js("document.querySelectorAll('#timeline path.limit-line').length") == 2
        assert counts(page)["bars"] == 8


def large_state(tmp: Path, tasks: int = 1000) -> tuple[Workflow, State]:
    """Groups of 10 tasks, each on the one or two before it in its group; every fifth group
    fails at its fourth task (two attempts, 2 KB of output) and skips the rest; 8 slots."""
    output = ("E   assert result == expected\n" * 70)[:2048]
    workflow, state = grouped_run(
        tmp, tasks, 10, {3}, output, every=5, stem="large", name_the_dependency=True
    )
    for r in state.tasks.values():
        for a in r.attempts:
            a.result_text = "Done: " + ("changed the code as asked. " * 20)
    return workflow, state


def test_a_thousand_tasks_make_a_page_of_at_most_3_mb_that_shows_them_all(tmp_path: Path) -> None:
    # How fast it is built and opened is measured by bench/bench_report_html.py, not here.
    workflow, state = large_state(tmp_path)
    path = tmp_path / "report.html"
    path.write_text(build_html(state, workflow), "utf-8")
    size = path.stat().st_size
    assert size <= 3 * 1024 * 1024, size
    with Page() as page:
        page.open(path)
        assert_clean_load(page, path)
        found = counts(page)
        assert found["nodes"] == found["items"] == 1000
        assert found["edges"] == workflow.graph.edge_count
        assert found["bars"] == attempts_of(state)


# -- the README's example, as a screenshot -------------------------------------------------------


def test_the_bundled_example_report_screenshot(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    workflow = tmp_path / "examples" / "pipeline.toml"
    reports = tmp_path / "reports"
    assert main(["run", "--fresh", str(workflow), "--report-dir", str(reports)]) == 0
    path = reports / "report.html"
    with Page(1400, 900) as page:
        page.open(path)
        assert_clean_load(page, path)
        # the task that passed on its retry, with its fed-back failure
        retried = page.js(
            "Array.from(document.querySelectorAll('#task-list li')).findIndex("
            "li => li.querySelector('.s').textContent.includes('×2'))"
        )
        assert retried >= 0
        page.js(f"window.prompterReport.select({retried})")
        shot = tmp_path / "report-html.png"
        page.screenshot(shot)
        assert shot.stat().st_size > 10_000
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
