#!/usr/bin/env python3
"""Benchmark `prompter validate` and `prompter plan` against `tomllib.load` on a big workflow.

Generates a seeded, graph-mode workflow of N tasks (default 100,000): a random DAG where each
task depends on 0-3 others, written in shuffled file order so many references point forward
(a task listed before its dependencies). Then, for R rounds, runs side by side, each as a fresh
subprocess so interpreter start-up counts the same for all three:

    python -c "tomllib.load(FILE)"   |   prompter validate FILE   |   prompter plan FILE

and compares medians. The requirement: validate and plan each take at most 2x tomllib.load.

Exit status: 0 within budget, 1 a ratio exceeds --max-ratio, 2 a correctness check failed
(the file does not validate, or `plan --json` does not order every task).

    .venv/bin/python bench/bench_validate.py                 # 100k tasks, 3 rounds
    .venv/bin/python bench/bench_validate.py --tasks 10000 --rounds 5 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import DEFAULT_OUT, EXIT_BROKEN, EXIT_OK, EXIT_SLOW, Run, emit, find_prompter, log, run

# -- workflow generation -----------------------------------------------------------------------

_VERBS = (
    "add", "fix", "refactor", "migrate", "document", "test", "harden", "split", "rename",
    "optimise", "remove", "port", "extract", "validate", "cache", "log",
)  # fmt: skip
_NOUNS = (
    "parser", "scheduler", "config_loader", "http_client", "auth", "cli", "cache_layer",
    "report", "metrics", "retry_policy", "db_schema", "api_routes", "worker_pool", "settings",
    "graph_view", "logging", "storage", "serializer", "rate_limiter", "plugin_api",
)  # fmt: skip
_FILES = (
    "src/app/parser.py", "src/app/scheduler.py", "src/app/config.py", "src/app/http.py",
    "src/app/auth/session.py", "src/app/cli.py", "src/app/cache.py", "src/app/report.py",
    "src/app/metrics.py", "src/app/db/models.py", "src/app/api/routes.py", "lib/storage.ts",
    "lib/serializer.ts", "cmd/worker/main.go", "internal/limiter/limiter.go", "docs/usage.md",
)  # fmt: skip
_SENTENCES = (
    "Read {file} and {verb} the {noun} so that it handles empty input without raising.",
    "Keep the public API of {noun} unchanged; callers in other modules must not need edits.",
    "Add unit tests for every branch you touch and make sure they pass locally.",
    "Use the existing helpers in {file} rather than introducing a new dependency.",
    "Update the docstrings and the changelog entry describing the {noun} change.",
    "Do not reformat unrelated code; keep the diff focused on the {noun}.",
    "If a function grows beyond fifty lines, split it into well-named private helpers.",
    "Make error messages actionable: say what was wrong and how to fix it.",
    "Remove the TODO comments in {file} that this change resolves.",
    "Ensure the {noun} is safe to call from several threads at once.",
    "Log at debug level only; the {noun} must stay quiet at the default log level.",
    "Preserve backwards compatibility with configuration files written for version 0.10.",
)  # fmt: skip
_VERIFY = (
    "pytest -q tests/test_{noun}.py",
    "pytest -q tests/test_{noun}.py -k '{verb} and not slow'",
    "ruff check {file} && pytest -q -x tests/",
    "grep -q \"def {verb}_{noun}\" {file}",
    "npm test -- --testPathPattern={noun}",
    "go test ./internal/... -run Test{Noun}",
    "test -f {file} && python -m mypy --strict {file}",
    "make check TARGET={noun} 2>&1 | tail -n 20",
)  # fmt: skip

MAX_DEPS = 3
LOCAL_WINDOW = 2000  # half the dependencies come from "nearby" tasks, for deeper chains


def _basic(s: str) -> str:
    """A TOML basic string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _multiline(s: str) -> str:
    """A TOML multi-line basic string; the generated text never contains quotes or backslashes."""
    assert '"' not in s and "\\" not in s
    return '"""\n' + s + '"""'


def _prompt(rng: random.Random, fill: dict[str, str], multiline: bool) -> str:
    target = rng.randint(100, 300)
    parts: list[str] = []
    size = 0
    while size < target:
        sentence = rng.choice(_SENTENCES).format(**fill)
        parts.append(sentence)
        size += len(sentence) + 1
    text = ("\n" if multiline else " ").join(parts)
    if len(text) > 300:  # trim to a word boundary, keep it a sentence
        cut = text.rfind(" ", 0, 296)
        text = text[:cut].rstrip(".,;: \n") + "."
    return text + ("\n" if multiline else "")


@dataclass
class Generated:
    path: Path
    tasks: int
    edges: int
    forward_refs: int  # dependencies listed after the task that needs them
    bytes: int
    sha256: str
    seconds: float
    names: list[str]  # file order
    deps: list[list[int]]  # file-order indices


def generate(path: Path, n: int, seed: int) -> Generated:
    """Write a random graph-mode DAG workflow of `n` tasks; deterministic for a given seed."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    # Dependencies in topological numbering: node t depends only on nodes < t, so it is a DAG.
    topo_deps: list[list[int]] = []
    for t in range(n):
        k = min(rng.randint(0, MAX_DEPS), t)
        chosen: set[int] = set()
        while len(chosen) < k:
            if rng.random() < 0.5:
                chosen.add(rng.randrange(max(0, t - LOCAL_WINDOW), t))
            else:
                chosen.add(rng.randrange(t))
        topo_deps.append(sorted(chosen))
    # Shuffle file order: position[t] is where topological node t is written.
    file_order = list(range(n))
    rng.shuffle(file_order)  # file_order[i] = topo node written at position i
    position = [0] * n
    for i, t in enumerate(file_order):
        position[t] = i
    names = [""] * n
    for i in range(n):
        names[i] = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}_{i:06d}"
    deps = [[position[d] for d in topo_deps[t]] for t in file_order]
    del topo_deps, position
    forward = sum(1 for i, ds in enumerate(deps) for d in ds if d > i)
    edges = sum(len(ds) for ds in deps)

    digest = hashlib.sha256()
    size = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:

        def write(chunk: str) -> None:
            nonlocal size
            data = chunk.encode()
            digest.update(data)
            size += len(data)
            f.write(chunk)

        write(
            f"# Generated by bench/bench_validate.py: {n} tasks, seed {seed}, graph mode,\n"
            "# shuffled file order (many depends_on entries point forward).\n\n"
            '[settings]\nmax_parallel_tasks = 8\nagent = "claude"\nretry_delay = 1\n'
            "verify_timeout = 600\n\n"
        )
        buf: list[str] = []
        for i in range(n):
            verb, noun = names[i].split("_", 1)
            noun = noun.rsplit("_", 1)[0]
            fill = {
                "verb": verb,
                "noun": noun,
                "Noun": noun.title().replace("_", ""),
                "file": rng.choice(_FILES),
            }
            multiline = rng.random() < 0.15
            prompt = _prompt(rng, fill, multiline)
            lines = [
                "[[tasks]]",
                f"name = {_basic(names[i])}",
                f"prompt = {_multiline(prompt) if multiline else _basic(prompt)}",
                f"verify_command = {_basic(rng.choice(_VERIFY).format(**fill))}",
                "depends_on = [" + ", ".join(_basic(names[d]) for d in deps[i]) + "]",
            ]
            r = rng.random()
            if r < 0.20:
                lines.append(f"priority = {rng.randint(-5, 10)}")
            if rng.random() < 0.10:
                lines.append(f"max_attempts = {rng.randint(1, 5)}")
            if rng.random() < 0.05:
                lines.append('on_failure = "next"')
            if rng.random() < 0.05:
                lines.append(f"timeout = {rng.choice((300, 600, 1800))}")
            buf.append("\n".join(lines) + "\n\n")
            if len(buf) >= 1000:
                write("".join(buf))
                buf.clear()
        write("".join(buf))
    os.replace(tmp, path)
    return Generated(
        path=path,
        tasks=n,
        edges=edges,
        forward_refs=forward,
        bytes=size,
        sha256=digest.hexdigest(),
        seconds=time.perf_counter() - t0,
        names=names,
        deps=deps,
    )


# -- running -----------------------------------------------------------------------------------


def commands(python: str, prompter: list[str], path: Path) -> dict[str, list[str]]:
    load = "import sys, tomllib\nwith open(sys.argv[1], 'rb') as f: tomllib.load(f)"
    return {
        "tomllib.load": [python, "-c", load, str(path)],
        "prompter validate": [*prompter, "validate", str(path)],
        "prompter plan": [*prompter, "plan", str(path)],
    }


def check(gen: Generated, prompter: list[str], out: Path, log: Callable[[str], None]) -> list[str]:
    """Correctness: the file validates, and `plan --json` orders every task, deps first."""
    problems: list[str] = []
    v = run([*prompter, "validate", str(gen.path)])
    if v.code != 0:
        problems.append(f"`prompter validate` exited {v.code}:\n{v.stderr[-4000:]}")
    else:
        log(f"  validate: exit 0 ({v.seconds:.2f}s)")
    plan_json = out / "plan.json"
    p = run([*prompter, "plan", "--json", str(gen.path)], stdout=plan_json)
    if p.code != 0:
        problems.append(f"`prompter plan --json` exited {p.code}:\n{p.stderr[-4000:]}")
        return problems
    with plan_json.open("rb") as f:
        plan = json.load(f)
    order = plan.get("order", [])
    if len(order) != gen.tasks:
        problems.append(f"`plan --json` has {len(order)} entries in `order`, expected {gen.tasks}")
    index = {name: i for i, name in enumerate(gen.names)}
    seen = [False] * gen.tasks
    for name in order:
        i = index.get(name)
        if i is None or seen[i]:
            problems.append(f"`plan --json` order: unknown or repeated task {name!r}")
            break
        if any(not seen[d] for d in gen.deps[i]):
            problems.append(f"`plan --json` order: {name!r} comes before a dependency")
            break
        seen[i] = True
    if not problems:
        log(
            f"  plan --json: exit 0, order has {len(order)} entries in dependency order, "
            f"{len(plan.get('waves', []))} waves ({p.seconds:.2f}s)"
        )
    plan_json.unlink(missing_ok=True)
    return problems


def markdown(result: dict[str, Any]) -> str:
    g = result["workflow"]
    rows = [
        f"Workflow: {g['tasks']:,} tasks, {g['edges']:,} dependencies "
        f"({g['forward_refs']:,} forward), {g['bytes'] / 2**20:.1f} MiB; "
        f"{result['rounds']} interleaved rounds of fresh subprocesses, Python {result['python']}.",
        "",
        "| command | median wall (s) | min–max (s) | median CPU (s) | peak RSS (MiB) "
        "| wall ratio | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def num(x: float | None, fmt: str) -> str:
        return "n/a" if x is None else format(x, fmt)

    for name, m in result["commands"].items():
        rows.append(
            f"| `{name}` | {m['median']:.2f} | {m['min']:.2f}–{m['max']:.2f} "
            f"| {num(m['cpu_median'], '.2f')} | {num(m['max_rss_mb'], '.0f')} "
            f"| **{m['ratio']:.2f}x** | {num(m['cpu_ratio'], '.2f')}x |"
        )
    rows += [
        "",
        f"Wall ratio = median wall time / median `tomllib.load` wall time (the gate: at most "
        f"{result['max_ratio']:g}x). CPU ratio = the same for user+system CPU time.",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work dir (bench/out)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--max-ratio", type=float, default=2.0, help="allowed time / tomllib.load (default 2.0)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for tomllib.load (default: this)"
    )
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"workflow-{args.tasks}-seed{args.seed}.toml"
    log(f"generating {path} ({args.tasks} tasks, seed {args.seed}) ...")
    gen = generate(path, args.tasks, args.seed)
    log(
        f"  {gen.bytes / 2**20:.1f} MiB, {gen.edges} dependencies, {gen.forward_refs} forward, "
        f"sha256 {gen.sha256[:16]}, {gen.seconds:.1f}s"
    )

    prompter = find_prompter(args.python)
    log(f"checking correctness with {' '.join(prompter)} ...")  # also warms caches and .pyc
    problems = check(gen, prompter, out, log)
    if problems:
        for p in problems:
            log(f"FAIL: {p}")
        return EXIT_BROKEN

    cmds = commands(args.python, prompter, path)
    times: dict[str, list[Run]] = {name: [] for name in cmds}
    for r in range(args.rounds):
        for name, cmd in cmds.items():
            done = run(cmd)
            if done.code != 0:
                log(f"FAIL: {name} exited {done.code}:\n{done.stderr[-4000:]}")
                return EXIT_BROKEN
            times[name].append(done)
            log(f"  round {r + 1}/{args.rounds}: {name:<18} {done.seconds:7.2f}s")

    base = statistics.median(x.seconds for x in times["tomllib.load"])
    base_cpu = [x.cpu_seconds for x in times["tomllib.load"] if x.cpu_seconds is not None]
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in times.items():
        secs = [x.seconds for x in runs]
        rss = [x.max_rss_mb for x in runs if x.max_rss_mb is not None]
        med = statistics.median(secs)
        cpu = [x.cpu_seconds for x in runs if x.cpu_seconds is not None]
        cpu_med = statistics.median(cpu) if cpu else None
        summary[name] = {
            "median": med,
            "min": min(secs),
            "max": max(secs),
            "runs": secs,
            "cpu_median": cpu_med,
            "cpu_runs": cpu,
            "max_rss_mb": max(rss) if rss else None,
            "ratio": med / base,
            "cpu_ratio": cpu_med / statistics.median(base_cpu) if cpu_med and base_cpu else None,
            # each round runs the three back to back, so per-round ratios share conditions
            "round_ratios": [
                x.seconds / b.seconds for x, b in zip(runs, times["tomllib.load"], strict=True)
            ],
        }
    over = [
        name
        for name, m in summary.items()
        if name != "tomllib.load" and m["ratio"] > args.max_ratio
    ]
    result: dict[str, Any] = {
        "tasks": args.tasks,
        "rounds": args.rounds,
        "seed": args.seed,
        "python": platform.python_version(),
        "workflow": {
            "path": str(path),
            "tasks": gen.tasks,
            "edges": gen.edges,
            "forward_refs": gen.forward_refs,
            "bytes": gen.bytes,
            "sha256": gen.sha256,
        },
        "commands": summary,
        "ratios": {
            "validate/tomllib": summary["prompter validate"]["ratio"],
            "plan/tomllib": summary["prompter plan"]["ratio"],
        },
        "max_ratio": args.max_ratio,
        "pass": not over,
    }
    emit(result, markdown(result), args.json)
    for name in over:
        log(
            f"FAIL: `{name}` took {summary[name]['ratio']:.2f}x tomllib.load "
            f"(limit {args.max_ratio:g}x)"
        )
    if not over:
        log(f"OK: validate and plan within {args.max_ratio:g}x tomllib.load")
    return EXIT_SLOW if over else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
