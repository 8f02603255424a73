#!/usr/bin/env python3
"""Peak memory and time of `prompter validate`, `plan` and `run` on workflows with a big prompt.

Requirement (issue 14, item 4): on a workflow of F MB, the peak RSS of `validate` and `run`
stays under 64 MB + 6 x F (a 50 MB prompt with warnings: under 364 MB), and time stays linear
in F.

For each size (default 5, 20 and 50 MB) and each shape of the prompt (a one-line basic string
with escapes, and a multi-line basic string of 91-character lines), a graph-mode workflow is
generated: task `big` (the claude agent, run by the fake Claude Code CLI of
tests/agents/fake_claude.py, with the prompt that makes the file F MB) and task `small` (a
`command` agent `true`, verify `true`; a command agent's prompt is limited to 120 KiB, so the
big prompt can only be a claude task's). `[settings]` has `max_retries = 3`, which draws a
located warning: a warning needs the positions of the file's keys, which is what the reported
bug (2.3 GB for a 20 MB prompt) was about. A copy without that line measures the happy path.
`--shapes many-tasks` adds bench_validate.py's workflow of many small Claude tasks
(~2,500 per MB), on which only the first four commands run. Per workflow, each command a fresh
process:

    validate (no warning) | validate | plan | run --dry-run | run --task small --only | run

`run small` really runs `small` alone (load, fingerprints, state, `true` twice, the reports);
`run` runs both tasks: the prompt goes through claude-agent-sdk to the fake CLI, which records
it (the check compares its length). A tiny workflow (the same two tasks, a short prompt) gives
each command's fixed cost, so the time per MB is (CPU time - the tiny one's) / F; CPU time
(user + system, children included, from wait4) because it is less noisy than wall time here.

Peak RSS is prompter's own VmHWM: each command runs as `python -c WRAPPER ARGS`, where the
wrapper calls `prompter.cli.run()` (what the `prompter` script calls) and reads
/proc/self/status at exit (so: Linux). Not wait4's ru_maxrss, which counts from the parent's
peak, and not the agents' memory (the fake CLI holds the whole prompt too).

Exit status: 0 every peak within budget and time linear (the largest size's seconds per MB at
most --max-growth times the smallest's), 1 over either, 2 a command failed or a check did not
hold.

    .venv/bin/python bench/bench_memory.py                 # 5, 20, 50 MB, 3 rounds; ~6 min
    .venv/bin/python bench/bench_memory.py --sizes 1,4 --shapes multi-line --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import DEFAULT_OUT, EXIT_BROKEN, EXIT_OK, EXIT_SLOW, Run, emit, log, run

ROOT = Path(__file__).resolve().parents[1]
FAKE_CLAUDE = ROOT / "tests" / "agents" / "fake_claude.py"
MB = 2**20
BASE_MB, PER_MB = 64, 6  # the budget: BASE_MB + PER_MB x file size

# Runs prompter's CLI as the `prompter` script does and leaves its own peak RSS (VmHWM, KiB) in
# a file. Not wait4's ru_maxrss: Linux starts a child's count at its parent's peak (the mm it
# forked from), so every child of a process that once held 300 MB "peaks" at 300 MB or more.
WRAPPER = """\
import atexit, sys
out = sys.argv[1]
def peak():
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(out, "w") as f:
        f.write(kib)
atexit.register(peak)
sys.argv = ["prompter", *sys.argv[2:]]
from prompter.cli import run
run()
"""

LINE = (
    'Lorem ipsum dolor sit amet, "quoted", consectetur adipiscing elit \\ sed do eiusmod tempor.\n'
)
SHAPES = ("one-line", "multi-line", "many-tasks")
DEFAULT_SHAPES = ("one-line", "multi-line")
COMMANDS = ("validate, no warning", "validate", "plan", "run --dry-run", "run small", "run")
# Of bench_validate.py's generated workflows, one task takes ~417 bytes.
TASK_BYTES = 417


def commands_for(shape: str) -> tuple[str, ...]:
    """What runs on a shape: a workflow of thousands of Claude tasks is not run for real."""
    return COMMANDS[:4] if shape == "many-tasks" else COMMANDS


def many_tasks(work: Path, size: float) -> tuple[Path, Path]:
    """bench_validate.py's graph-mode workflow of F MB (~2,500 tasks per MB), and a copy of it
    with `max_retries = 3` in `[settings]`, which warns."""
    from bench_validate import generate

    plain = work / "plain.toml"
    generate(plain, max(1, int(size * MB) // TASK_BYTES), seed=1)
    text = plain.read_text(encoding="utf-8").replace(
        "[settings]\n", "[settings]\nmax_retries = 3\n", 1
    )
    path = work / "wf.toml"
    path.write_text(text, encoding="utf-8")
    return path, plain


def prompt_toml(shape: str, chars: int) -> tuple[str, int]:
    """A TOML string for a prompt of about `chars` characters, and the prompt's length."""
    if shape == "one-line":  # a basic string: quotes and backslashes escaped, no newline
        unit = LINE.rstrip("\n") + " "
        escaped = unit.replace("\\", "\\\\").replace('"', '\\"')
        n = max(1, chars // len(escaped))
        return f'"{escaped * n}"', len(unit) * n
    # a multi-line basic string; TOML drops the newline right after the opening quotes
    escaped = LINE.replace("\\", "\\\\")
    n = max(1, chars // len(escaped))
    return f'"""\n{escaped * n}"""', len(LINE) * n


def workflow_text(shape: str, chars: int, warn: bool, fake: Path) -> tuple[str, int]:
    prompt, length = prompt_toml(shape, chars)
    text = (
        "[settings]\n"
        + ("max_retries = 3\n" if warn else "")
        + f'isolation = "shared"\nclaude_cli_path = {json.dumps(str(fake))}\n\n'
        '[[tasks]]\nname = "small"\nagent = "command"\nagent_command = ["true"]\n'
        'prompt = "p"\nverify_command = "true"\ndepends_on = []\n\n'
        '[[tasks]]\nname = "big"\nagent = "claude"\nverify_command = "true"\ndepends_on = []\n'
        f"prompt = {prompt}\n"
    )
    return text, length


def measure(python: str, args: list[str], cwd: Path, env_state: Path) -> tuple[Run, float | None]:
    """Run prompter ARGS in `cwd`: the wait4 result and prompter's own peak RSS (MiB)."""
    peak_file = cwd / "peak.txt"
    peak_file.unlink(missing_ok=True)
    shutil.rmtree(env_state, ignore_errors=True)
    done = run([python, "-c", WRAPPER, str(peak_file), *args], cwd=cwd)
    own = int(peak_file.read_text()) / 1024 if peak_file.exists() else None
    return done, own


def check_run(work: Path, state: Path, length: int, only_small: bool) -> list[str]:
    """The run passed its tasks, and the agent got the whole prompt (or, `small` alone, none)."""
    problems: list[str] = []
    data = json.loads((work / ".prompter" / "wf" / "state.json").read_text())  # of wf.toml
    passed = sorted(name for name, t in data["tasks"].items() if t["status"] == "passed")
    if passed != (["small"] if only_small else ["big", "small"]):
        problems.append(f"tasks passed: {passed}")
    calls = (state / "calls.jsonl").read_text().splitlines() if state.exists() else []
    got = [len(json.loads(line)["prompt"]) for line in calls]
    if got != ([] if only_small else [length]):
        problems.append(f"the agent got prompts of {got} characters, expected [{length}]")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5,20,50", help="file sizes in MB (default 5,20,50)")
    parser.add_argument(
        "--shapes", default=",".join(DEFAULT_SHAPES), help="one-line, multi-line, many-tasks"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--max-growth", type=float, default=1.5, help="s/MB largest / smallest")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="work dir (bench/out)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for prompter")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    sizes = sorted(float(s) for s in args.sizes.split(","))
    shapes = args.shapes.split(",")
    if not sizes or min(sizes) <= 0 or args.rounds < 1 or not set(shapes) <= set(SHAPES):
        parser.error(
            "--sizes must be positive, --rounds at least 1, --shapes from " + ", ".join(SHAPES)
        )

    out: Path = args.out.resolve() / "memory"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fake = out / "fake_claude.py"  # a copy, run by path: the workflow names it
    shutil.copy(FAKE_CLAUDE, fake)
    fake.chmod(0o755)
    state = out / "claude-state"
    os.environ["FAKE_CLAUDE_STATE"] = str(state)
    # A run checks that Claude Code has a credential before it starts; the fake CLI takes any.
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-api03-fake-key-for-the-fake-cli")
    where = run(
        [
            args.python,
            "-c",
            "import prompter; print(prompter.__file__, file=__import__('sys').stderr)",
        ]
    )
    log(f"prompter from {where.stderr.strip()}")

    def argvs(path: Path, plain: Path) -> dict[str, list[str]]:
        return {
            "validate, no warning": ["validate", str(plain)],
            "validate": ["validate", str(path)],
            "plan": ["plan", str(path)],
            "run --dry-run": ["run", "--dry-run", str(path)],
            "run small": [
                "run",
                "--fresh",
                "--progress",
                "none",
                "--task",
                "small",
                "--only",
                str(path),
            ],
            "run": ["run", "--fresh", "--progress", "none", str(path)],
        }

    # (shape, size) -> command -> list of (run, own peak)
    results: dict[tuple[str, float], dict[str, list[tuple[Run, float | None]]]] = {}
    workflows: dict[tuple[str, float], dict[str, Any]] = {}
    problems: list[str] = []
    cases = [("tiny", 0.0)] + [(shape, size) for shape in shapes for size in sizes]
    for r in range(args.rounds):
        for shape, size in cases:
            work = Path(tempfile.mkdtemp(prefix="wf-", dir=out))
            length = 0
            if shape == "many-tasks":
                path, plain = many_tasks(work, size)
            else:
                text, length = workflow_text(
                    "one-line" if shape == "tiny" else shape, int(size * MB), True, fake
                )
                plain_text, _ = workflow_text(
                    "one-line" if shape == "tiny" else shape, int(size * MB), False, fake
                )
                path, plain = work / "wf.toml", work / "plain.toml"
                path.write_text(text, encoding="utf-8")
                plain.write_text(plain_text, encoding="utf-8")
                del text, plain_text
            size_mb = path.stat().st_size / MB
            workflows[(shape, size)] = {"bytes": path.stat().st_size, "prompt_chars": length}
            for name, cmd in argvs(path, plain).items():
                if name not in commands_for(shape):
                    continue
                done, own = measure(args.python, cmd, work, state)
                if done.code != 0:
                    problems.append(
                        f"{shape} {size:g} MB: {name} exited {done.code}: {done.stderr[-2000:]}"
                    )
                    continue
                if name in ("run", "run small"):
                    checked = check_run(work, state, length, only_small=name == "run small")
                    problems += [f"{shape} {size:g} MB: {name}: {p}" for p in checked]
                if name != "validate, no warning" and "warning: max_retries" not in done.stderr:
                    problems.append(f"{shape} {size:g} MB: {name} printed no warning")
                results.setdefault((shape, size), {}).setdefault(name, []).append((done, own))
                log(
                    f"  round {r + 1}: {shape:<10} {size_mb:6.1f} MB  {name:<20} "
                    f"{done.seconds:6.2f}s  {done.cpu_seconds or 0:6.2f}s CPU  "
                    f"peak {own or 0:4.0f} MiB"
                )
            shutil.rmtree(work)
    if problems:
        for p in problems:
            log(f"FAIL: {p}")
        return EXIT_BROKEN

    def summary(shape: str, size: float, name: str) -> dict[str, Any]:
        runs = results[(shape, size)][name]
        file_mb = workflows[(shape, size)]["bytes"] / MB
        wall = statistics.median(d.seconds for d, _ in runs)
        cpu = [d.cpu_seconds for d, _ in runs if d.cpu_seconds is not None]
        own = max(o for _, o in runs if o is not None)
        tiny = statistics.median(d.cpu_seconds or 0 for d, _ in results[("tiny", 0.0)][name])
        return {
            "file_mb": file_mb,
            "peak_rss_mb": own,
            "budget_mb": BASE_MB + PER_MB * file_mb,
            "wall_s": wall,
            "cpu_s": statistics.median(cpu) if cpu else None,
            "s_per_mb": (statistics.median(cpu) - tiny) / file_mb if cpu and file_mb else 0.0,
            "runs": [d.seconds for d, _ in runs],
        }

    table: dict[str, dict[str, dict[str, Any]]] = {}
    over: list[str] = []
    for shape in ["tiny", *shapes]:
        for size in [0.0] if shape == "tiny" else sizes:
            for name in commands_for(shape):
                m = summary(shape, size, name)
                table.setdefault(shape, {}).setdefault(f"{size:g}", {})[name] = m
                if m["peak_rss_mb"] > m["budget_mb"]:
                    over.append(
                        f"{shape} {m['file_mb']:.1f} MB: {name} peaked at {m['peak_rss_mb']:.0f} "
                        f"MiB, budget {m['budget_mb']:.0f}"
                    )
    growth: dict[str, dict[str, float]] = {}
    if len(sizes) > 1:
        lo, hi = f"{sizes[0]:g}", f"{sizes[-1]:g}"
        for shape in shapes:
            for name in commands_for(shape):
                a, b = table[shape][lo][name], table[shape][hi][name]
                g = b["s_per_mb"] / a["s_per_mb"] if a["s_per_mb"] > 0 else float("inf")
                growth.setdefault(shape, {})[name] = g
                growth[shape][name + " (wall ratio)"] = b["wall_s"] / a["wall_s"]
                if g > args.max_growth:
                    over.append(
                        f"{shape}: {name} took {g:.2f}x the time per MB at {hi} MB as at {lo} MB"
                    )
    result: dict[str, Any] = {
        "sizes_mb": sizes,
        "shapes": shapes,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "budget": f"{BASE_MB} MB + {PER_MB} x file MB",
        "results": table,
        "growth": growth,
        "max_growth": args.max_growth,
        "pass": not over,
    }
    emit(result, markdown(result), args.json)
    for line in over:
        log(f"OVER: {line}")
    if not over:
        log(
            f"OK: every peak within {BASE_MB} + {PER_MB} x F MB, linear within {args.max_growth:g}x"
        )
    return EXIT_SLOW if over else EXIT_OK


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"Peak RSS of prompter's own process against the budget {result['budget']}; "
        f"{result['rounds']} round(s), Python {result['python']}. The workflows draw a "
        "located warning (`max_retries`), except in the first row of each size.",
        "",
        "| workflow | file (MB) | command | peak RSS (MiB) | budget (MiB) "
        "| wall (s) | CPU (s) | CPU s/MB above tiny |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for shape, by_size in result["results"].items():
        for _size, commands in by_size.items():
            for name, m in commands.items():
                per_mb = "" if shape == "tiny" else f"{m['s_per_mb']:.3f}"
                cpu = "n/a" if m["cpu_s"] is None else f"{m['cpu_s']:.2f}"
                rows.append(
                    f"| {shape} | {m['file_mb']:.1f} | `{name}` | **{m['peak_rss_mb']:.0f}** "
                    f"| {m['budget_mb']:.0f} "
                    f"| {m['wall_s']:.2f} | {cpu} | {per_mb} |"
                )
    if result["growth"]:
        lo, hi = result["sizes_mb"][0], result["sizes_mb"][-1]
        rows += [
            "",
            f"CPU time per MB (above the tiny workflow's) at {hi:g} MB / at {lo:g} MB (1.00: "
            f"linear; the gate: at most {result['max_growth']:g}), and the plain wall-time ratio "
            f"({hi / lo:g} if there were no fixed costs):",
            "",
            "| workflow | command | CPU s/MB ratio | wall ratio |",
            "|---|---|---:|---:|",
        ]
        for shape, g in result["growth"].items():
            for name in commands_for(shape):
                rows.append(
                    f"| {shape} | `{name}` | {g[name]:.2f} | {g[name + ' (wall ratio)']:.2f} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
