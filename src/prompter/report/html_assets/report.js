// report.html's script: draws the graph, the timeline, the task list and a task's details
// from the run's facts (the JSON in <script id="facts">). Every text from the run is put into
// the page with textContent or as an attribute value, never parsed as markup; nothing is
// fetched. Layout (positions, lanes) was computed by prompter; this only draws and reacts.
// The one link out is to a task's log beside the page (logs/NAME.log): a navigation when
// clicked, never a request of the page's own.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("facts").textContent);
  const tasks = data.tasks;
  const head = data.head;
  const NODE_W = 180, NODE_H = 26;
  const state = { selected: null, filter: "all", query: "" };
  const nodeEls = [], itemEls = [], barEls = tasks.map(() => []);

  // -- small DOM helpers: text is always a text node ------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === "string" || typeof c === "number"
        ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }
  function svgText(attrs, text) {
    const t = svg("text", attrs);
    t.textContent = text;
    return t;
  }
  function short(text, n) {
    const chars = Array.from(text);
    return chars.length <= n ? text : chars.slice(0, n - 1).join("") + "…";
  }
  function money(v) {
    if (v === null || v === undefined) return "-";
    return "$" + v.toFixed(v > 0 && v < 0.01 ? 4 : 2);
  }
  function num(v) { return v === null || v === undefined ? "-" : v.toLocaleString("en-US"); }
  function secs(v) {
    if (v === null || v === undefined) return "-";
    if (v < 60) return v.toFixed(1) + " s";
    const m = Math.floor(v / 60), s = Math.round(v % 60);
    return m < 60 ? m + "m" + String(s).padStart(2, "0") + "s"
      : Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }

  // -- the headline ---------------------------------------------------------------------------
  function headline() {
    const box = document.getElementById("headline");
    const cls = ["passed", "failed", "interrupted"].includes(head.result) ? head.result : "other";
    box.appendChild(el("h1", {},
      el("span", { class: "name" }, head.name), ": ",
      el("span", { class: "result-" + cls }, head.result)));
    const c = head.counts;
    const parts = [["passed", c.passed || 0], ["failed", c.failed || 0],
      ["skipped", c.skipped || 0]];
    for (const s of ["interrupted", "running", "pending"]) if (c[s]) parts.push([s, c[s]]);
    const facts = el("div", { class: "facts" });
    facts.appendChild(el("span", {}, el("b", {}, parts.map((p) => p[1] + " " + p[0]).join(" · ")),
      " (" + head.tasks + " tasks" + (head.notRun ? ", " + head.notRun + " not run" : "") + ")"));
    const tok = head.tokens;
    const pairs = [["wall time", head.wall], ["sum of task times", head.work],
      ["speedup", head.speedup === null ? "-" : head.speedup.toFixed(2) + "x"],
      ["cost", money(head.cost)],
      ["tokens", num(tok.input) + " in · " + num(tok.output) + " out · " + num(tok.cacheRead) +
        " cache read · " + num(tok.cacheCreation) + " cache write"]];
    if (head.criticalS) pairs.push(["critical path", head.criticalS]);
    if (head.jobs) pairs.push(["jobs", String(head.jobs)]);
    for (const [k, v] of pairs) facts.appendChild(el("span", {}, k + " ", el("b", {}, v)));
    box.appendChild(facts);
    const where = [];
    if (head.runId) where.push("run " + head.runId);
    if (head.started) where.push("started " + head.started);
    if (head.workflow) where.push("workflow " + head.workflow);
    if (where.length) box.appendChild(el("div", { class: "small" }, where.join(" · ")));
    const notes = el("ul", { class: "notes" });
    for (const [job, why] of head.why) notes.appendChild(el("li", {}, "why" + (job ? " (job " + job + ")" : "") + ": " + why));
    if (head.timelineRun) notes.appendChild(el("li", {}, "nothing ran in this run: the timeline and critical path are run " + head.timelineRun + "'s"));
    for (const n of head.notes) notes.appendChild(el("li", {}, "note: " + n));
    if (notes.childNodes.length) box.appendChild(notes);
  }

  // -- the dependency graph -------------------------------------------------------------------
  const view = { x: 0, y: 0, k: 1 };
  let graphRoot = null;
  function applyView() {
    graphRoot.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.k + ")");
  }
  function graph() {
    const g = data.graph;
    const box = document.getElementById("graph-view");
    const root = svg("svg", { id: "graph", width: "100%", height: "100%", role: "img",
      "aria-label": "dependency graph" });
    const defs = svg("defs");
    for (const [id, cls] of [["arrow", "arrow"], ["arrow-crit", "arrow-crit"]]) {
      const m = svg("marker", { id: id, viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" });
      m.appendChild(svg("path", { d: "M0,0 L8,4 L0,8 z", class: cls }));
      defs.appendChild(m);
    }
    root.appendChild(defs);
    graphRoot = svg("g", { id: "graph-root" });
    const edges = svg("g", { class: "edges" });
    const critical = new Set(g.critical.map((p) => p[0] + ">" + p[1]));
    for (const [u, v, kind] of g.edges) {
      const x1 = g.x[u] + NODE_W, y1 = g.y[u] + NODE_H / 2;
      const x2 = g.x[v], y2 = g.y[v] + NODE_H / 2;
      let d;
      if (x2 > x1) {
        const mx = (x1 + x2) / 2;
        d = "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + x2 + "," + y2;
      } else {  // back or same-rank edge: around below
        const low = Math.max(y1, y2) + NODE_H;
        d = "M" + x1 + "," + y1 + " C" + (x1 + 40) + "," + low + " " + (x2 - 40) + "," + low + " " + x2 + "," + y2;
      }
      const crit = critical.has(u + ">" + v);
      const path = svg("path", { d: d, class: "edge " + kind + (crit ? " crit" : ""),
        "data-from": u, "data-to": v, "marker-end": crit ? "url(#arrow-crit)" : "url(#arrow)" });
      edges.appendChild(path);
    }
    graphRoot.appendChild(edges);
    const nodes = svg("g", { class: "nodes" });
    for (const t of tasks) {
      const n = svg("g", { class: "node c-" + t.cls + (t.critical ? " crit" : ""),
        transform: "translate(" + g.x[t.id] + "," + g.y[t.id] + ")", "data-task": t.id });
      const title = svg("title");
      title.textContent = t.name + " — " + t.status;
      n.appendChild(title);
      n.appendChild(svg("rect", { width: NODE_W, height: NODE_H }));
      n.appendChild(svgText({ x: 8, y: 17 }, short(t.name, 26)));
      n.addEventListener("click", () => select(t.id, "graph"));
      nodes.appendChild(n);
      nodeEls.push(n);
    }
    graphRoot.appendChild(nodes);
    root.appendChild(graphRoot);
    box.appendChild(root);
    // A small graph gets a small pane; a large one half the window, to pan and zoom in.
    box.style.height = Math.round(Math.max(180, Math.min(window.innerHeight * 0.52, g.h + 60))) + "px";
    panZoom(box, g);
    fit();
  }
  function fit() {
    const g = data.graph, box = document.getElementById("graph-view");
    const w = box.clientWidth || 800, h = box.clientHeight || 400, pad = 20;
    const k = Math.min(1.2, (w - 2 * pad) / Math.max(g.w, 1), (h - 2 * pad) / Math.max(g.h, 1));
    view.k = Math.max(k, 0.05);
    view.x = (w - g.w * view.k) / 2;
    view.y = Math.max(pad, (h - g.h * view.k) / 2);
    applyView();
  }
  function zoomAt(factor, cx, cy) {
    const k = Math.min(4, Math.max(0.02, view.k * factor));
    view.x = cx - (cx - view.x) * (k / view.k);
    view.y = cy - (cy - view.y) * (k / view.k);
    view.k = k;
    applyView();
  }
  function centreOn(id) {
    const g = data.graph, box = document.getElementById("graph-view");
    if (view.k < 0.5) view.k = 0.8;
    view.x = box.clientWidth / 2 - (g.x[id] + NODE_W / 2) * view.k;
    view.y = box.clientHeight / 2 - (g.y[id] + NODE_H / 2) * view.k;
    applyView();
  }
  function panZoom(box) {
    let drag = null;
    box.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = box.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
    }, { passive: false });
    box.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y, moved: false };
    });
    box.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!drag.moved) { drag.moved = true; box.setPointerCapture(e.pointerId); box.classList.add("dragging"); }
      view.x = drag.vx + dx;
      view.y = drag.vy + dy;
      applyView();
    });
    const end = (e) => {
      if (drag && drag.moved) {
        box.classList.remove("dragging");
        // The click that ends a drag is not a selection.
        box.addEventListener("click", (c) => c.stopPropagation(), { capture: true, once: true });
        if (box.hasPointerCapture(e.pointerId)) box.releasePointerCapture(e.pointerId);
      }
      drag = null;
    };
    box.addEventListener("pointerup", end);
    box.addEventListener("pointercancel", end);
    box.addEventListener("keydown", (e) => {
      const step = 60;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (moves[e.key]) { view.x += moves[e.key][0]; view.y += moves[e.key][1]; applyView(); }
      else if (e.key === "+" || e.key === "=") zoomAt(1.25, box.clientWidth / 2, box.clientHeight / 2);
      else if (e.key === "-") zoomAt(0.8, box.clientWidth / 2, box.clientHeight / 2);
      else if (e.key === "0") fit();
      else return;
      e.preventDefault();
    });
    document.getElementById("zoom-in").addEventListener("click", () => zoomAt(1.25, box.clientWidth / 2, box.clientHeight / 2));
    document.getElementById("zoom-out").addEventListener("click", () => zoomAt(0.8, box.clientWidth / 2, box.clientHeight / 2));
    document.getElementById("zoom-fit").addEventListener("click", fit);
  }
  function legend() {
    const box = document.getElementById("legend");
    const used = new Set(tasks.map((t) => t.cls));
    for (const [cls, words] of Object.entries(data.classes)) {
      if (used.has(cls)) box.appendChild(el("span", {}, el("span", { class: "swatch c-" + cls }), words));
    }
    if (data.graph.critical.length) box.appendChild(el("span", {}, "thick red: the critical path"));
  }

  // -- the timeline ---------------------------------------------------------------------------
  let pxPerS = null;
  function timeline() {
    const tl = data.timeline;
    const box = document.getElementById("timeline-view");
    if (!tl.bars.length) {
      box.appendChild(el("p", { class: "small" }, "No attempts ran in this run."));
      return;
    }
    document.getElementById("timeline-note").textContent =
      tl.bars.length + " attempts from " + tl.t0 + "; one row per slot" +
      (head.jobs ? " of each job" : "") + ". Bars: blue the agent, purple the verify command; " +
      "dotted lines: waits between attempts" + (tl.limits.length ? "; orange steps: the agent limit" : "") + ".";
    drawTimeline();
    document.getElementById("time-in").addEventListener("click", () => { pxPerS *= 1.5; drawTimeline(); });
    document.getElementById("time-out").addEventListener("click", () => { pxPerS /= 1.5; drawTimeline(); });
  }
  function drawTimeline() {
    const tl = data.timeline, box = document.getElementById("timeline-view");
    const labelW = 130, laneH = 20, top = tl.limits.length ? 44 : 20;
    const span = Math.max(tl.span, 0.001);
    if (pxPerS === null) pxPerS = Math.max(1, (box.clientWidth || 900) - labelW - 20) / span;
    const width = labelW + span * pxPerS + 20;
    const height = top + tl.lanes.length * laneH + 4;
    const root = svg("svg", { id: "timeline", width: width, height: height, role: "img", "aria-label": "timeline" });
    const axis = svg("g", { class: "axis" });
    const step = niceStep(span / Math.max(2, (width - labelW) / 110));
    for (let t = 0; t <= span + 1e-9; t += step) {
      const x = labelW + t * pxPerS;
      axis.appendChild(svg("line", { x1: x, x2: x, y1: top - 4, y2: height }));
      if (x < width - 45) axis.appendChild(svgText({ x: x + 2, y: top - 6 }, "+" + secs(t)));
    }
    root.appendChild(axis);
    tl.lanes.forEach((label, i) => {
      const y = top + i * laneH;
      if (i % 2) root.appendChild(svg("rect", { class: "lane-bg", x: 0, y: y, width: width, height: laneH }));
      root.appendChild(svgText({ class: "lane-label", x: 4, y: y + 14 }, short(label, 20)));
    });
    if (tl.limits.length) drawLimits(root, tl, labelW);
    const last = new Map();
    for (const b of barEls) b.length = 0;
    const bars = svg("g", { class: "bars" });
    for (const [task, n, lane, start, end, agent, verify, ok, rl] of tl.bars) {
      const t = tasks[task];
      const x = labelW + start * pxPerS, w = Math.max(1.5, (end - start) * pxPerS);
      const y = top + lane * laneH + 3, h = laneH - 6;
      const prev = last.get(task);
      if (prev !== undefined && start > prev) {
        bars.appendChild(svg("line", { class: "wait", x1: labelW + prev * pxPerS, x2: x, y1: y + h / 2, y2: y + h / 2 }));
      }
      last.set(task, Math.max(prev || 0, end));
      const bar = svg("rect", { class: "bar " + (ok ? "ok" : "bad") + (rl ? " rl" : "") + (t.critical ? " crit" : ""),
        x: x, y: y, width: w, height: h, "data-task": task, "data-attempt": n });
      const title = svg("title");
      title.textContent = t.name + " — attempt " + n + (ok ? " passed" : " failed") + ", " + secs(end - start);
      bar.appendChild(title);
      bar.addEventListener("click", () => select(task, "timeline"));
      bars.appendChild(bar);
      barEls[task].push(bar);
      if (agent !== null && agent > 0) {
        bars.appendChild(svg("rect", { class: "phase-a", x: x, y: y + h - 4, width: Math.min(w, agent * pxPerS), height: 4 }));
      }
      if (verify !== null && verify > 0) {
        const vw = Math.min(w, verify * pxPerS);
        bars.appendChild(svg("rect", { class: "phase-v", x: x + w - vw, y: y + h - 4, width: vw, height: 4 }));
      }
      if (w > 60) bars.appendChild(svgText({ class: "bar-label", x: x + 3, y: y + 10 }, short(t.name, Math.floor(w / 6.5))));
    }
    root.appendChild(bars);
    box.replaceChildren(root);
    applyMarks();
  }
  function drawLimits(root, tl, labelW) {
    const jobs = new Map();
    for (const [job, at, limit, max] of tl.limits) {
      if (!jobs.has(job)) jobs.set(job, { max: max, points: [] });
      jobs.get(job).points.push([at, limit]);
    }
    root.appendChild(svgText({ class: "lane-label", x: 4, y: 16 }, "agent limit"));
    for (const { max, points } of jobs.values()) {
      const y = (limit) => 30 - (limit / Math.max(max, 1)) * 22;
      let d = "";
      points.forEach(([at, limit], i) => {
        const x = labelW + Math.max(0, at) * pxPerS;
        d += (i ? " H" + x + " V" + y(limit) : "M" + x + "," + y(limit));
      });
      d += " H" + (labelW + tl.span * pxPerS);
      const path = svg("path", { class: "limit-line", d: d });
      const title = svg("title");
      title.textContent = "agent sessions allowed at once: " + points.map((p) => p[1]).join(" → ") + " (of " + max + ")";
      path.appendChild(title);
      root.appendChild(path);
    }
  }
  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-3))));
    for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }

  // -- the task list and filters --------------------------------------------------------------
  function list() {
    const ul = document.getElementById("task-list");
    for (const t of tasks) {
      const li = el("li", { id: "task-" + t.id, role: "option", "aria-selected": "false",
        tabindex: "-1", "data-task": t.id },
        el("span", { class: "swatch c-" + t.cls }),
        el("span", { class: "n" }, t.name),
        el("span", { class: "s" }, t.status + (t.attempts.length > 1 ? " ×" + t.attempts.length : "")));
      li.title = t.name;
      li.addEventListener("click", () => select(t.id, "list"));
      ul.appendChild(li);
      itemEls.push(li);
    }
    ul.tabIndex = 0;
    ul.addEventListener("keydown", (e) => {
      const shown = itemEls.filter((li) => !li.classList.contains("hidden"));
      if (!shown.length) return;
      let at = shown.findIndex((li) => Number(li.dataset.task) === state.selected);
      if (e.key === "ArrowDown" || e.key === "j") at = Math.min(shown.length - 1, at + 1);
      else if (e.key === "ArrowUp" || e.key === "k") at = Math.max(0, at - 1);
      else if (e.key === "Home") at = 0;
      else if (e.key === "End") at = shown.length - 1;
      else if (e.key === "PageDown") at = Math.min(shown.length - 1, at + 10);
      else if (e.key === "PageUp") at = Math.max(0, at - 10);
      else return;
      e.preventDefault();
      select(Number(shown[at].dataset.task), "list");
    });
  }
  function matches(t) {
    if (state.filter === "failed" && !["failed", "interrupted", "unfinished"].includes(t.cls)) return false;
    if (state.filter === "skipped" && t.cls !== "skipped") return false;
    if (state.filter === "critical" && !t.critical) return false;
    return !state.query || t.name.toLowerCase().includes(state.query);
  }
  function applyMarks() {
    const all = state.filter === "all" && !state.query;
    let shown = 0;
    for (const t of tasks) {
      const on = all || matches(t);
      shown += on;
      itemEls[t.id].classList.toggle("hidden", !on);
      nodeEls[t.id].classList.toggle("dim", !on);
      nodeEls[t.id].classList.toggle("sel", state.selected === t.id);
      for (const b of barEls[t.id]) {
        b.classList.toggle("dim", !on);
        b.classList.toggle("sel", state.selected === t.id);
      }
    }
    document.getElementById("shown").textContent = shown + " of " + tasks.length + " tasks";
  }
  function filters() {
    const buttons = document.querySelectorAll("[data-filter]");
    for (const b of buttons) {
      b.addEventListener("click", () => {
        state.filter = b.dataset.filter;
        for (const o of buttons) o.setAttribute("aria-pressed", String(o === b));
        applyMarks();
      });
    }
    const search = document.getElementById("search");
    search.addEventListener("input", () => { state.query = search.value.trim().toLowerCase(); applyMarks(); });
    search.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { search.value = ""; state.query = ""; applyMarks(); }
      else if (e.key === "Enter" || e.key === "ArrowDown") document.getElementById("task-list").focus();
    });
    document.addEventListener("keydown", (e) => {
      if (e.target instanceof HTMLInputElement) return;
      if (e.key === "/") { e.preventDefault(); search.focus(); }
    });
  }

  // -- a task's details -----------------------------------------------------------------------
  function taskLink(id) {
    const b = el("button", { class: "link", type: "button" }, tasks[id].name);
    b.addEventListener("click", () => select(id, "link"));
    return b;
  }
  function block(title, text) {
    return text ? [el("h3", {}, title), el("pre", {}, text)] : [];
  }
  // prompter writes only such paths (places.log_name); anything else is not made a link.
  const LOG_PATH = /^logs\/[A-Za-z0-9_-][A-Za-z0-9._-]*\.log$/;
  function logLink(path) {
    if (typeof path !== "string" || !LOG_PATH.test(path)) return null;
    return el("a", { class: "log", href: path }, path);
  }
  function attempt(t, a, open) {
    const d = el("details", { class: "attempt", "data-attempt": a.n });
    d.open = open;
    d.appendChild(el("summary", {}, "attempt " + a.n + ": " + (a.ok ? "passed" : "failed") +
      (a.rateLimited ? " (rate limited)" : "") + " · " + a.dur));
    const rows = [["started", a.at || "-"],
      ["agent", (a.agentExit === null ? "-" : "exit " + a.agentExit) + " · " + secs(a.agentS)],
      ["verify", (a.verifyExit === null ? "did not run" : "exit " + a.verifyExit) +
        (a.verifyS === null ? "" : " · " + secs(a.verifyS))],
      ["cost", money(a.cost)],
      ["tokens", a.tokens.map(num).join(" / ") + " (in / out / cache read / cache write)"],
      ["turns", a.turns === null ? "-" : String(a.turns)]];
    if (a.session) rows.push(["session", a.session]);
    if (a.apiStatus !== null) rows.push(["API status", String(a.apiStatus) + (a.retryAfter === null ? "" : ", retry after " + secs(a.retryAfter))]);
    if (a.environment) rows.push(["environment", "the verify command could not run here"]);
    if (a.fatal) rows.push(["fatal", "the agent cannot work here: the run stopped"]);
    const log = logLink(t.log);
    if (log) rows.push(["log", el("span", {}, log, " (the whole transcript: every attempt)")]);
    const dl = el("dl");
    for (const [k, v] of rows) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
    d.appendChild(dl);
    for (const e of block("Reason", a.reason)) d.appendChild(e);
    for (const e of block("Prompt (fed back after the attempt before)", a.feedback)) d.appendChild(e);
    for (const e of block("Agent's answer", a.result)) d.appendChild(e);
    if (t.verify && a.verifyExit !== null) {
      d.appendChild(el("h3", {}, "Verify command (exit " + a.verifyExit + ", expected " + t.expect + ")"));
      d.appendChild(el("pre", { class: "cmd" }, t.verify));
    }
    for (const e of block("Output (tail)", a.output)) { e.classList.add("output"); d.appendChild(e); }
    if (a.files.length) {
      d.appendChild(el("h3", {}, "Changed files"));
      d.appendChild(el("pre", {}, a.files.join("\n") + (a.moreFiles ? "\n… " + a.moreFiles + " more" : "")));
    }
    if (a.diff) {
      d.appendChild(el("h3", {}, "Diff"));
      d.appendChild(el("pre", { class: "diff" }, a.diff));
    } else if (a.diffNote) {
      d.appendChild(el("p", { class: "small diff-note" }, "Diff: " + a.diffNote + "."));
    }
    for (const e of block("Merge conflict", a.conflict)) d.appendChild(e);
    return d;
  }
  function details(t) {
    const box = document.getElementById("details");
    const parts = [el("h2", { class: "name" }, t.name),
      el("div", {}, el("span", { class: "badge swatch-text c-" + t.cls }, t.status),
        t.critical ? " · on the critical path" : "", t.job ? " · job " + t.job : "",
        t.current ? "" : (t.status === "not run" ? "" : " · from an earlier run"),
        t.changed ? " · changed since" : "", t.line ? " · line " + t.line : "")];
    const dl = el("dl");
    const rows = [["duration", t.dur], ["cost", money(t.cost)], ["attempts", String(t.attempts.length)]];
    if (t.visits > 1) rows.push(["visits", String(t.visits)]);
    for (const [k, v] of rows) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
    parts.push(dl);
    for (const e of block("Reason", t.reason)) parts.push(e);
    if (t.causes.length) {
      const p = el("p", {}, "Root cause" + (t.causes.length > 1 ? "s" : "") + ": ");
      t.causes.forEach((c, i) => { if (i) p.appendChild(document.createTextNode(", ")); p.appendChild(taskLink(c)); });
      if (t.moreCauses) p.appendChild(document.createTextNode(" and " + t.moreCauses + " more"));
      if (t.causeJob) p.appendChild(document.createTextNode(" (in job " + t.causeJob + ")"));
      parts.push(p);
    }
    const deps = data.graph.edges.filter((e) => e[1] === t.id && e[2] === "d").map((e) => e[0]);
    if (deps.length) {
      const p = el("p", {}, "Depends on: ");
      deps.forEach((c, i) => { if (i) p.appendChild(document.createTextNode(", ")); p.appendChild(taskLink(c)); });
      parts.push(p);
    }
    for (const e of block("Prompt", t.prompt)) parts.push(e);
    if (t.verify && !t.attempts.length) for (const e of block("Verify command", t.verify)) parts.push(e);
    t.attempts.forEach((a, i) => parts.push(attempt(t, a, i === t.attempts.length - 1)));
    box.replaceChildren(...parts);
  }
  function select(id, from) {
    state.selected = id;
    applyMarks();
    details(tasks[id]);
    const li = itemEls[id];
    li.setAttribute("aria-selected", "true");
    for (const o of itemEls) if (o !== li) o.setAttribute("aria-selected", "false");
    if (from !== "list") li.scrollIntoView({ block: "nearest" });
    else li.focus({ preventScroll: false });
    if (from !== "graph") centreOn(id);
    document.getElementById("task-list").setAttribute("aria-activedescendant", "task-" + id);
  }

  headline();
  legend();
  list();
  graph();
  timeline();
  filters();
  applyMarks();
  // A script (or a test) may select a task: window.prompterReport.select(index).
  window.prompterReport = { select: (id) => select(id, "api"), tasks: tasks.length };
  const first = tasks.findIndex((t) => ["failed", "interrupted", "unfinished"].includes(t.cls));
  if (first >= 0) select(first, "start");
  document.body.dataset.ready = "true";
})();
