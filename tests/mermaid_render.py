"""Render mermaid text in real mermaid 11 inside headless Chromium, and say what happened.

`render(diagrams)` writes one temporary HTML page that loads the pinned
`tests/render/node_modules/mermaid/dist/mermaid.min.js` (see `tests/render/package.json`), calls
`mermaid.parse` then `mermaid.render` on every diagram in turn, inserts each SVG into the page and
writes one JSON verdict per diagram into `<pre id="verdicts">`. One Chromium run (`--dump-dom`)
renders the whole batch; the verdicts are read back from the dumped DOM.

`render(diagrams, body_html=...)` also puts a document on the page (say, a summary converted
from markdown) and renders each of its `<code class="language-mermaid">` blocks in place, after
the given diagrams: its verdicts follow theirs, in document order.

A missing browser or a missing mermaid install is an error, never a skip: this module exists to
prove the output renders, and a silently skipped proof proves nothing.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

RENDER_DIR = Path(__file__).resolve().parent / "render"
MERMAID_JS = RENDER_DIR / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
TIMEOUT = 180  # seconds of real time for one Chromium run

# What mermaid draws instead of failing: its error diagram, and the oversized-text placeholder.
SILENT_FAILURES = (
    "Syntax error in text",
    "Maximum text size in diagram exceeded",
)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    error: str  # "" when ok
    svg_chars: int  # length of the SVG markup (0 when nothing rendered)
    text: str = ""  # the SVG's text content, without its <style>
    nodes: dict[str, str] = field(default_factory=dict)  # mermaid node id -> label text
    edge_labels: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # element names in the SVG, sorted, unique
    ms: float = 0.0  # time mermaid took (parse + render), in the page's clock


def chromium() -> str:
    path = os.environ.get("PROMPTER_CHROMIUM") or shutil.which("chromium")
    if not path or not (shutil.which(path) or Path(path).is_file()):
        raise RuntimeError(
            "chromium not found: install Debian's chromium (apt-get install chromium) "
            "or set PROMPTER_CHROMIUM"
        )
    return path


def mermaid_js() -> Path:
    if not MERMAID_JS.is_file():
        raise RuntimeError(
            f"mermaid not installed: run npm ci --prefix tests/render ({MERMAID_JS} is missing)"
        )
    return MERMAID_JS


def mermaid_version() -> str:
    package = json.loads((mermaid_js().parents[1] / "package.json").read_text("utf-8"))
    return str(package["version"])


def _js_literal(value: object) -> str:
    """JSON that is safe inside an inline <script> (no `</script>`, `<!--`, or `&` surprises)."""
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>mermaid render test</title>
<style>
  body {{ font-family: sans-serif; margin: 8px; background: #fff; }}
  .diagram {{ border: 1px solid #ccc; margin: 6px 0; padding: 4px; }}
  .diagram.failed {{ border-color: #c00; background: #fee; white-space: pre-wrap; }}
  #verdicts {{ font-size: 6px; color: #999; word-break: break-all; white-space: pre-wrap; }}
</style>
</head>
<body>
<div id="doc">{body}</div>
<div id="out"></div>
<pre id="verdicts" data-state="pending"></pre>
<script src="{mermaid_url}"></script>
<script>
const SILENT_FAILURES = {silent};
const given = {diagrams};
const blocks = Array.from(document.querySelectorAll("#doc code.language-mermaid"));
const diagrams = given.concat(blocks.map((b) => b.textContent));
const out = document.getElementById("out");
const verdictsPre = document.getElementById("verdicts");

function utf8Base64(text) {{
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {{
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }}
  return btoa(binary);
}}

function describe(svgElement) {{
  const clone = svgElement.cloneNode(true);
  clone.querySelectorAll("style").forEach((s) => s.remove());
  const nodes = {{}};
  svgElement.querySelectorAll("g.node").forEach((g) => {{
    const m = /-flowchart-(.+)-\\d+$/.exec(g.id || "");
    nodes[m ? m[1] : g.id] = (g.textContent || "").trim();
  }});
  const edgeLabels = Array.from(svgElement.querySelectorAll("g.edgeLabel"))
    .map((g) => (g.textContent || "").trim())
    .filter((t) => t);
  const tags = Array.from(new Set(Array.from(svgElement.querySelectorAll("*"))
    .map((e) => e.localName))).sort();
  return {{ text: clone.textContent || "", nodes, edge_labels: edgeLabels, tags }};
}}

async function run() {{
  if (typeof mermaid === "undefined") {{
    throw new Error("mermaid.min.js did not load");
  }}
  mermaid.initialize({{ startOnLoad: false }});
  const verdicts = [];
  for (let i = 0; i < diagrams.length; i++) {{
    const box = document.createElement("div");
    box.className = "diagram";
    box.id = "diagram-" + i;
    if (i < given.length) {{
      out.appendChild(box);
    }} else {{
      const pre = blocks[i - given.length].closest("pre") || blocks[i - given.length];
      pre.replaceWith(box);
    }}
    const verdict = {{ ok: false, error: "", svg_chars: 0, text: "", nodes: {{}},
                      edge_labels: [], tags: [], ms: 0 }};
    const started = performance.now();
    try {{
      await mermaid.parse(diagrams[i]);
      const result = await mermaid.render("mermaid-render-" + i, diagrams[i]);
      const svg = result.svg;
      verdict.svg_chars = svg.length;
      box.innerHTML = svg;
      const svgElement = box.querySelector("svg");
      if (!svgElement) {{
        verdict.error = "mermaid.render returned no <svg>";
      }} else {{
        Object.assign(verdict, describe(svgElement));
        const silent = SILENT_FAILURES.find((s) => svg.includes(s));
        if (silent) {{
          verdict.error = "mermaid rendered its failure diagram: " + silent;
        }} else if (svgElement.querySelector(".error-icon")) {{
          verdict.error = "mermaid rendered its error icon";
        }} else {{
          verdict.ok = true;
        }}
      }}
    }} catch (e) {{
      verdict.error = String((e && (e.message || e.str)) || e) || "unknown error";
    }}
    verdict.ms = performance.now() - started;
    if (!verdict.ok) {{
      box.classList.add("failed");
      box.textContent = "diagram " + i + " failed: " + verdict.error;
    }}
    verdicts.push(verdict);
  }}
  return verdicts;
}}

run().then(
  (verdicts) => {{
    verdictsPre.textContent = utf8Base64(JSON.stringify(verdicts));
    verdictsPre.dataset.state = "done";
  }},
  (e) => {{
    verdictsPre.textContent = utf8Base64(JSON.stringify(String((e && e.stack) || e)));
    verdictsPre.dataset.state = "crashed";
  }},
);
</script>
</body>
</html>
"""

_VERDICTS = re.compile(
    r'<pre id="verdicts" data-state="(?P<state>[a-z]+)">(?P<payload>[A-Za-z0-9+/=\s]*)</pre>'
)


# Headless, quiet, no sandbox (root in CI) and nothing fetched on its own: what every use of
# Chromium in the tests starts with.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def _chromium_args(user_data_dir: Path) -> list[str]:
    return [
        chromium(),
        *HEADLESS_FLAGS,
        "--disable-quic",
        "--allow-file-access-from-files",
        f"--user-data-dir={user_data_dir}",
        "--virtual-time-budget=30000",
    ]


def _run_chromium(args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"chromium did not finish within {TIMEOUT} s: {args}") from exc


def render(
    diagrams: list[str],
    screenshot: Path | None = None,
    body_html: str = "",
    window: tuple[int, int] = (1200, 1600),
) -> list[Verdict]:
    """Render every diagram in one Chromium run; one `Verdict` per diagram, in order.

    With `screenshot`, Chromium runs a second time on the same page to save a PNG of it
    (`window` pixels). `body_html`'s mermaid code blocks are rendered in place after `diagrams`.
    """
    browser, script = chromium(), mermaid_js()
    with tempfile.TemporaryDirectory(prefix="mermaid-render-") as tmp:
        tmp_path = Path(tmp)
        page = tmp_path / "page.html"
        page.write_text(
            _PAGE.format(
                mermaid_url=script.as_uri(),
                silent=_js_literal(list(SILENT_FAILURES)),
                diagrams=_js_literal(list(diagrams)),
                body=body_html,
            ),
            "utf-8",
        )
        args = _chromium_args(tmp_path / "profile")
        args[0] = browser
        done = _run_chromium([*args, "--dump-dom", page.as_uri()])
        match = _VERDICTS.search(done.stdout)
        if done.returncode != 0 or match is None:
            raise RuntimeError(
                f"chromium --dump-dom failed (exit {done.returncode}); no verdicts in its output.\n"
                f"stderr (tail):\n{done.stderr[-3000:]}\nstdout (head):\n{done.stdout[:2000]}"
            )
        payload = json.loads(base64.b64decode(match["payload"]).decode("utf-8"))
        if match["state"] != "done":
            raise RuntimeError(f"the render page did not finish ({match['state']}): {payload}")
        expected = len(diagrams) + body_html.count('class="language-mermaid"')
        if len(payload) != expected:
            raise RuntimeError(f"{expected} diagrams but {len(payload)} verdicts")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            args = _chromium_args(tmp_path / "profile-screenshot")
            args[0] = browser
            shot = _run_chromium(
                [
                    *args,
                    f"--screenshot={screenshot}",
                    f"--window-size={window[0]},{window[1]}",
                    page.as_uri(),
                ]
            )
            if shot.returncode != 0 or not screenshot.is_file():
                raise RuntimeError(
                    f"chromium --screenshot failed (exit {shot.returncode}):\n{shot.stderr[-3000:]}"
                )
    return [
        Verdict(
            ok=bool(v["ok"]),
            error=str(v["error"]),
            svg_chars=int(v["svg_chars"]),
            text=str(v["text"]),
            nodes={str(k): str(t) for k, t in v["nodes"].items()},
            edge_labels=[str(t) for t in v["edge_labels"]],
            tags=[str(t) for t in v["tags"]],
            ms=float(v["ms"]),
        )
        for v in payload
    ]
