"""report.html's parts without a browser: the layered layout, the timeline's lanes, the JSON
embedding and the page's Content-Security-Policy (the page in Chromium: test_report_html.py)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from prompter.github.report_link import append_link, artifact_url
from prompter.places import log_name
from prompter.records import RunRecord, State, TaskStatus
from prompter.report.html import build_html, policy, source_hash
from prompter.report.html_data import TEXT_BUDGET, log_link, script_json
from prompter.report.html_layout import (
    assign_lanes,
    crossings,
    layout_graph,
    longest_path_ranks,
    order_layers,
)

from .built_states import T0, record, state_of, write_toml
from .hostile_names import HOSTILE

# -- the layout ----------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    n = draw(st.integers(1, 40))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n))
    return n, sorted({(min(u, v), max(u, v)) for u, v in edges if u != v})


@given(dags())
@settings(max_examples=200, deadline=None)
def test_ranks_respect_every_edge_and_are_longest_paths(
    dag: tuple[int, list[tuple[int, int]]],
) -> None:
    n, edges = dag
    ranks = longest_path_ranks(n, edges)
    for u, v in edges:
        assert ranks[u] < ranks[v]
    for v in range(n):  # a node's rank is one more than its highest-ranked dependency (or 0)
        before = [ranks[u] for u, w in edges if w == v]
        assert ranks[v] == (max(before) + 1 if before else 0)
    layout = layout_graph(n, edges)
    assert sorted(node for layer in layout.layers for node in layer) == list(range(n))
    boxes = {(layout.x[i], layout.y[i]) for i in range(n)}
    assert len(boxes) == n, "no two nodes in one place"
    for u, v in edges:
        assert layout.x[u] < layout.x[v], "ranks run from left to right"


def test_a_cycle_is_refused() -> None:
    try:
        longest_path_ranks(3, [(0, 1), (1, 2), (2, 0)])
    except ValueError as exc:
        assert "cycle" in str(exc)
    else:
        raise AssertionError("a cycle was laid out")


def test_barycentric_order_crosses_fewer_edges_than_the_input_order() -> None:
    # Two ranks of 30 whose edges connect node i to the node 29 - i (mirrored), plus a third
    # rank linked at random: the input order crosses nearly every pair.
    rng = random.Random(7)
    n = 90
    edges = [(i, 30 + (29 - i)) for i in range(30)]
    edges += [(30 + rng.randrange(30), 60 + rng.randrange(30)) for _ in range(60)]
    edges += [(30 + i, 60 + i) for i in range(30)]
    ranks = longest_path_ranks(n, edges)
    given_order = [[v for v in range(n) if ranks[v] == r] for r in range(max(ranks) + 1)]
    before = crossings(given_order, ranks, edges)
    after = crossings(order_layers(n, ranks, edges), ranks, edges)
    assert before > 0
    assert after < before / 2, (before, after)


@given(dags())
@settings(max_examples=100, deadline=None)
def test_the_order_kept_is_never_worse_than_the_input(
    dag: tuple[int, list[tuple[int, int]]],
) -> None:
    n, edges = dag
    ranks = longest_path_ranks(n, edges)
    given_order = [[v for v in range(n) if ranks[v] == r] for r in range(max(ranks) + 1)]
    ordered = order_layers(n, ranks, edges)
    assert crossings(ordered, ranks, edges) <= crossings(given_order, ranks, edges)
    assert [sorted(layer) for layer in ordered] == given_order


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0.5, 30)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_lanes_never_overlap_and_are_as_few_as_the_peak(spans: list[tuple[float, float]]) -> None:
    intervals = [(s, s + d) for s, d in spans]
    lanes = assign_lanes(intervals)
    for i, (s1, e1) in enumerate(intervals):
        for j, (s2, e2) in enumerate(intervals[:i]):
            if lanes[i] == lanes[j]:
                assert e1 <= s2 or e2 <= s1, "two spans of one lane overlap"
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    peak = level = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert (max(lanes) + 1 if lanes else 0) == peak


# -- the JSON in the page ------------------------------------------------------------------------

NASTY = [
    "</script><script>alert(1)</script>",
    "</SCRIPT >",
    "<!-- <script>",
    "]]> & &amp; \u2028 \u2029 \x00 \ud800",
    "\u202e evil",
    float("nan"),
    float("inf"),
]


def test_script_json_cannot_end_or_confuse_its_script_element() -> None:
    text = script_json({"values": NASTY, "nested": {"k": ["<b>", "</script>"]}})
    for bad in ("<", ">", "&", "\u2028", "\u2029", "\x00", "NaN", "Infinity"):
        assert bad not in text, bad
    assert text.isascii()
    back = json.loads(text)
    assert back["values"][:5] == NASTY[:5]
    assert back["values"][5:] == [None, None]
    assert back["nested"] == {"k": ["<b>", "</script>"]}


def page(tmp_path: Path, output: str = "", names: list[str] | None = None) -> str:
    names = names or ["a", "b"]
    workflow = write_toml(
        tmp_path / "wf.toml",
        [{"name": n, "depends_on": names[:i][-1:]} for i, n in enumerate(names)],
    )
    records = [
        record(
            n,
            TaskStatus.FAILED if i == 0 else TaskStatus.SKIPPED,
            T0 + i,
            2,
            output=output,
            reason="verify_command exited 1 (expected 0)",
        )
        for i, n in enumerate(names)
    ]
    return build_html(state_of(records, workflow.path, T0 + 10), workflow)


INLINE = re.compile(r"<(script|style)([^>]*)>(.*?)</\1>", re.S)


def test_the_policy_allows_exactly_the_inline_style_and_script_and_nothing_else(
    tmp_path: Path,
) -> None:
    html = page(tmp_path, output="</script><script>alert(1)</script>", names=HOSTILE)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp is not None
    blocks = INLINE.findall(html)
    # The style, the facts (a data block, never run) and the script: nothing else is inline.
    assert [(tag, attrs) for tag, attrs, _ in blocks] == [
        ("style", ""),
        ("script", ' id="facts" type="application/json"'),
        ("script", ""),
    ]
    style, script = blocks[0][2], blocks[2][2]
    assert csp[1].replace("&#x27;", "'") == policy(style, script)
    assert f"style-src {source_hash(style)};" in policy(style, script)
    assert policy(style, script).startswith("default-src 'none'; ")
    assert " on" not in re.sub(r"<script.*?</script>|<style.*?</style>", "", html, flags=re.S)
    # The one URL in the page is the SVG namespace's name, which is never fetched.
    assert re.findall(r"[a-z]+://[^\s\"']*", html) == ["http://www.w3.org/2000/svg"]
    facts = json.loads(blocks[1][2])
    assert [t["name"] for t in facts["tasks"]] == HOSTILE
    assert facts["tasks"][0]["attempts"][0]["output"] == "</script><script>alert(1)</script>"
    assert facts["tasks"][0]["log"] == "logs/end.log"  # a relative path, not a URL


# -- a task's diff and its log -------------------------------------------------------------------

DIFF = (
    "diff --git a/page.txt b/page.txt\nnew file mode 100644\n--- /dev/null\n+++ b/page.txt\n"
    "@@ -0,0 +1,2 @@\n+</script><img src=x onerror=alert(1)>\n+<!-- \u202eevil\n"
)


def diff_facts(tmp_path: Path, isolation: str | None) -> dict[str, dict[str, object]]:
    """The facts of a run of three passed tasks (with a diff, with changed files and no diff,
    with neither) whose run recorded `isolation`: each task's last attempt, by name."""
    names = ["with diff", "large", "nothing"]
    workflow = write_toml(tmp_path / "wf.toml", [{"name": n} for n in names])
    records = [record(n, TaskStatus.PASSED, T0 + i, 2) for i, n in enumerate(names)]
    records[0].attempts[0].changed_files = ["page.txt +2 -0"]
    records[0].attempts[0].diff = DIFF
    records[1].attempts[0].changed_files = ["numbers.txt +300 -0"]
    run = RunRecord(run_id="run-1", workflow=str(workflow.path), started_at=T0, isolation=isolation)
    state = State.model_construct(version=1, tasks={r.name: r for r in records}, runs=[run])
    html = build_html(state, workflow)
    facts = json.loads(INLINE.findall(html)[1][2])
    return {t["name"]: t["attempts"][-1] for t in facts["tasks"]}


def test_a_diff_is_data_and_a_missing_one_is_explained(tmp_path: Path) -> None:
    worktree = diff_facts(tmp_path, "worktree")
    assert worktree["with diff"]["diff"] == DIFF.replace("\u202e", "")  # bidi: never reorders
    assert worktree["with diff"]["diffNote"] is None
    assert worktree["large"]["diff"] is None
    assert worktree["large"]["diffNote"] == "diff too large to record here: see changes.patch"
    assert worktree["nothing"]["diffNote"] == "it changed no files"
    shared = diff_facts(tmp_path, "shared")
    for name in ("large", "nothing"):
        assert shared[name]["diffNote"] == (
            "no diff per task: the tasks worked in one shared tree "
            "(changes.patch has the run's changes)"
        )
    # A state from before runs recorded their isolation: no claim about why.
    unknown = diff_facts(tmp_path, None)
    assert unknown["large"]["diffNote"] == "no diff recorded: see changes.patch"
    assert unknown["nothing"]["diffNote"] is None


def test_a_long_diff_is_cut_at_its_end_and_counts_against_the_text_budget(
    tmp_path: Path,
) -> None:
    names = [f"t{i}" for i in range(300)]
    workflow = write_toml(tmp_path / "wf.toml", [{"name": n} for n in names])
    records = [record(n, TaskStatus.PASSED, T0 + i, 2) for i, n in enumerate(names)]
    diff = "diff --git a/x b/x\n" + "+line\n" * 1300  # 7.8 KiB, as recorded at most
    for r in records:
        r.attempts[0].diff = diff
    html = build_html(
        State.model_construct(version=1, tasks={r.name: r for r in records}, runs=[]), workflow
    )
    shown = json.loads(INLINE.findall(html)[1][2])["tasks"][0]["attempts"][0]["diff"]
    assert shown.startswith("diff --git a/x b/x\n+line\n")
    assert shown.endswith("more characters cut; changes.patch has the run's changes]")
    assert len(shown) < len(diff)
    assert len(html) < TEXT_BUDGET * 1.5


LOG_PATH = re.compile(r"logs/[A-Za-z0-9_-][A-Za-z0-9._-]*\.log")


def test_a_log_link_stays_a_relative_path_in_the_logs_folder() -> None:
    for name in [
        *HOSTILE,
        "..",
        "../../etc/passwd",
        "javascript:alert(1)",
        "a/../../b",
        ".x",
        "%2e%2e%2fx",
        "JavaScript:x",
        "\x00",
        "\u202e",
        "C:\\x",
        "//host/x",
    ]:
        link = log_link(name)
        assert LOG_PATH.fullmatch(link), (name, link)
        assert link == f"logs/{log_name(name)}"


# -- the action's link to it ---------------------------------------------------------------------

RUNNER = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octo/repo",
    "GITHUB_RUN_ID": "123",
}


def test_the_step_summary_links_to_the_report_artifact(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# the summary\n")
    env = {**RUNNER, "GITHUB_STEP_SUMMARY": str(summary)}
    assert append_link(env, "456")
    text = summary.read_text()
    assert text.startswith("# the summary\n")
    assert "(https://github.com/octo/repo/actions/runs/123/artifacts/456)" in text
    assert "report.html" in text
    # Anything not shaped as GitHub makes it: no link at all.
    for key, bad in (
        ("GITHUB_REPOSITORY", "octo/repo)[x](javascript:alert(1)"),
        ("GITHUB_SERVER_URL", "javascript:alert(1)//"),
        ("GITHUB_RUN_ID", "12 3"),
    ):
        assert artifact_url({**RUNNER, key: bad}, "456") is None
    assert artifact_url(RUNNER, "") is None
    assert not append_link({**RUNNER}, "456")  # no step summary: nothing to do


def test_the_host_action_uploads_the_page_unzipped_and_links_it() -> None:
    host = yaml.safe_load((Path(__file__).parents[1] / "host" / "action.yml").read_text("utf-8"))
    steps = {step.get("id"): step for step in host["runs"]["steps"]}
    page = steps["page"]
    assert page["uses"].startswith("actions/upload-artifact@v7")
    assert page["with"]["archive"] is False
    assert page["with"]["path"] == "${{ steps.run.outputs.upload_dir }}/report.html"
    link = next(
        s for s in host["runs"]["steps"] if s.get("name") == "Link the report in the step summary"
    )
    assert '"$GITHUB_STEP_SUMMARY"' in link["run"] and "${{" not in link["run"]
