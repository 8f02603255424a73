"""`report.html`: the run as one self-contained page that opens from disk or as an artifact.

The page is a fixed skeleton, one inline style and one inline script (`html_assets/`, plain
CSS and JavaScript, no library) and the run's facts as JSON in a data block (`html_data.py`).
The script draws the dependency graph (laid out by `html_layout.py`), the timeline, the task
list and a selected task's attempts. A Content-Security-Policy meta tag allows nothing but that
style and that script, by their sha256 hashes: no request of any kind (no font, image, frame or
fetch), no inline event handler, no other script even if some text became markup. The page's
only links are to the task logs beside it (`logs/…`, relative): following one is a navigation,
which the policy does not govern, not a request of the page.

Untrusted text never becomes markup: the only place it is in the file is the JSON, escaped by
`html_data.script_json`, and the script puts it into the document as text.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from functools import cache
from html import escape
from importlib.resources import files

from ..config import Workflow
from ..records import State
from .html_data import page_data, script_json
from .view_model import RunFacts, analyse


@cache
def asset(name: str) -> str:
    return files(__package__).joinpath("html_assets", name).read_text("utf-8")


def source_hash(text: str) -> str:
    """The CSP source of an inline element's exact text: 'sha256-BASE64'."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def policy(style: str, script: str) -> str:
    """Nothing from anywhere, but the one style and the one script of the page."""
    return (
        "default-src 'none'; "
        f"style-src {source_hash(style)}; "
        f"script-src {source_hash(script)}; "
        "base-uri 'none'; form-action 'none'"
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header id="headline"></header>
<nav aria-label="filters">
<span role="group" aria-label="show">
<button type="button" data-filter="all" aria-pressed="true">All</button>
<button type="button" data-filter="failed" aria-pressed="false">Failed</button>
<button type="button" data-filter="skipped" aria-pressed="false">Skipped</button>
<button type="button" data-filter="critical" aria-pressed="false">Critical path</button>
</span>
<input id="search" type="search" placeholder="Filter by name (/)" aria-label="filter tasks by name">
<span id="shown" class="small"></span>
</nav>
<main>
<div class="left">
<section aria-labelledby="graph-title">
<div class="pane-head"><h2 id="graph-title">Dependency graph</h2>
<button type="button" id="zoom-in" aria-label="zoom in">+</button>
<button type="button" id="zoom-out" aria-label="zoom out">&minus;</button>
<button type="button" id="zoom-fit">Fit</button>
<span class="small">drag to pan, wheel to zoom; keys: arrows, + &minus; 0</span></div>
<div id="legend" class="legend"></div>
<div id="graph-view" class="viewport" tabindex="0"
 aria-label="dependency graph, pan and zoom"></div>
</section>
<section aria-labelledby="timeline-title">
<div class="pane-head"><h2 id="timeline-title">Timeline</h2>
<button type="button" id="time-in" aria-label="stretch the timeline">+</button>
<button type="button" id="time-out" aria-label="shrink the timeline">&minus;</button>
<span id="timeline-note" class="small"></span></div>
<div id="timeline-view" class="viewport"></div>
</section>
</div>
<aside>
<section aria-labelledby="tasks-title">
<h2 id="tasks-title">Tasks</h2>
<ul id="task-list" role="listbox" aria-label="tasks (arrow keys choose)"></ul>
</section>
<section id="details" aria-live="polite"><p class="empty">Choose a task (click it in the list,
the graph or the timeline) to see its attempts.</p></section>
</aside>
</main>
<script id="facts" type="application/json">{facts}</script>
<script>{script}</script>
</body>
</html>
"""


def build_html(
    state: State,
    workflow: Workflow | None = None,
    *,
    notes: Sequence[str] = (),
    facts: RunFacts | None = None,
) -> str:
    """The page for `state` (and its workflow, if there is one)."""
    facts = facts or analyse(state, workflow, notes)
    style, script = asset("report.css"), asset("report.js")
    return _PAGE.format(
        csp=escape(policy(style, script)),
        title=escape(f"prompter: {facts.name}: {facts.result}"),
        style=style,
        script=script,
        facts=script_json(page_data(facts, {r.run_id: r.isolation for r in state.runs})),
    )
