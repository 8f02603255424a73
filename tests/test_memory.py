"""Big workflows in bounded memory: a real `prompter` process on a file of F MB peaks under
64 MB + 6 x F of RSS (issue 14, item 4). `bench/bench_memory.py` measures the same at 5, 20 and
50 MB; here one size, with bounds a regression crosses by far: the backtracking scanner that
these tests were written against took 2.3 GB for 20 MB. The parts that kept copies of a big
prompt (the source map's lines, the fingerprints' JSON) are checked with tracemalloc, which
counts Python's allocations exactly."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from prompter.agents.claude import PROMPT_PIECE_CHARS
from prompter.config import load_workflow
from prompter.fingerprints import fingerprints
from prompter.toml_positions import SourceMap

MB = 2**20
SIZE_MB = 20
BUDGET_MB = 64 + 6 * SIZE_MB
# CPU seconds, a guard against a hang or a quadratic scan rather than a speed test: a 20 MB
# file takes 2-3 s here; the backtracking scanner took 10 s.
CPU_LIMIT_S = 20.0
# Fails fast, with MemoryError, instead of taking the machine's memory (the bug took 2.3 GB).
ADDRESS_SPACE = 2**31

# prompter's CLI as the `prompter` script runs it, leaving the process's own peak RSS (VmHWM, in
# KiB) in a file at exit. Not wait4's ru_maxrss: Linux counts a child's from its parent's peak,
# and pytest's may be hundreds of MB.
WRAPPER = """\
import atexit, sys
def peak():
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(out, "w") as f:
        f.write(kib)
atexit.register(peak)
out, sys.argv = sys.argv[1], ["prompter", *sys.argv[2:]]
from prompter.cli import run
run()
"""

LINE = 'Lorem ipsum dolor sit amet, "quoted", consectetur adipiscing elit \\ sed do eiusmod.\n'


@dataclass
class Peak:
    code: int
    rss_mb: float
    cpu_s: float
    stderr: str


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def peak(*args: str, cwd: Path, timeout: float = 120) -> Peak:
    """Run prompter ARGS to its end: exit code, peak RSS (its own) and CPU time (wait4)."""
    err_path, peak_path = cwd / "stderr.txt", cwd / "peak.txt"
    peak_path.unlink(missing_ok=True)
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(peak_path), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=cwd,
            preexec_fn=_limit_address_space,  # noqa: PLW1509 (as harness.prompter_cli's callers)
        )
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            pytest.fail(f"prompter {' '.join(args)} did not finish in {timeout} s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Peak(
        proc.returncode,
        int(peak_path.read_text()) / 1024 if peak_path.exists() else float("inf"),
        usage.ru_utime + usage.ru_stime,
        err_path.read_text(errors="replace"),
    )


def big_workflow(path: Path, prompt: str, size_mb: int = SIZE_MB) -> Path:
    """One task whose prompt takes the file to `size_mb` MB, and a setting that warns (so the
    positions of the file's keys are needed: the warning is located)."""
    head = '[settings]\nmax_retries = 3\n\n[[tasks]]\nname = "big"\nverify_command = "true"\n'
    n = size_mb * MB
    if prompt == "one line":  # a basic string: escapes, quotes, no newline
        body = LINE.rstrip("\n").replace("\\", "\\\\").replace('"', '\\"') + " "
        text = f'{head}prompt = "{(body * (n // len(body)))}"\n'
    else:  # a multi-line basic string
        text = f'{head}prompt = """\n{LINE.replace(chr(92), chr(92) * 2) * (n // len(LINE))}"""\n'
    path.write_text(text, encoding="utf-8")
    return path


def check(done: Peak) -> None:
    assert done.rss_mb < BUDGET_MB, f"peak RSS {done.rss_mb:.0f} MB, budget {BUDGET_MB} MB"
    assert done.cpu_s < CPU_LIMIT_S, f"{done.cpu_s:.1f} s of CPU"


@pytest.mark.parametrize("prompt", ["one line", "multi-line"])
def test_validate_a_20_mb_prompt_with_a_warning_stays_within_the_memory_budget(
    tmp_path: Path, prompt: str
) -> None:
    wf = big_workflow(tmp_path / "wf.toml", prompt)
    done = peak("validate", str(wf), cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert f"{wf}:2:1: warning: max_retries has no effect" in done.stderr  # located
    check(done)


def test_graph_json_of_a_20_mb_multiline_prompt_stays_within_the_memory_budget(
    tmp_path: Path,
) -> None:
    # `Workflow.task_lines` (reports, annotations, `graph`) passes over multi-line strings.
    wf = big_workflow(tmp_path / "wf.toml", "multi-line")
    done = peak("graph", "--format", "json", str(wf), cwd=tmp_path)
    assert done.code == 0, done.stderr
    check(done)


@pytest.mark.parametrize("prompt", ["one line", "multi-line"])
def test_the_source_map_keeps_no_copy_of_the_text(tmp_path: Path, prompt: str) -> None:
    # Python allocations, counted exactly: a copy of the text, a list of its lines or a string
    # token taken out of it would each be megabytes; the map itself is a few small dicts.
    text = big_workflow(tmp_path / "wf.toml", prompt, size_mb=5).read_text()
    tracemalloc.start()
    try:
        source = SourceMap(text)
        assert source.locate(("tasks", 0, "prompt")) == (7, 1)
        assert source.locate(("settings", "max_retries")) == (2, 1)
        assert source.line_count == text.count("\n")
        assert source.line_text(2) == "max_retries = 3"
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < MB // 4, (
        f"{peak_bytes / MB:.1f} MB allocated for a {len(text) / MB:.0f} MB text"
    )


def test_fingerprints_hash_a_long_prompt_without_copying_it_and_as_before(
    tmp_path: Path,
) -> None:
    # The values of the earlier, whole-JSON hashing: a state written by an earlier version must
    # keep its passed tasks (a changed fingerprint re-runs them).
    prompt = 'Ünïcode 😀 "quoted" \\ back\ttab \u2028 ' * 3000
    path = tmp_path / "wf.toml"
    path.write_text(
        '[settings]\nagent_env = { MODE = "é" }\n\n'
        '[[tasks]]\nname = "big"\nverify_command = "true"\ntimeout = 60\n'
        f"prompt = {json.dumps(prompt, ensure_ascii=False)}\n\n"
        '[[tasks]]\nname = "small"\nprompt = "p"\nverify_command = "true"\n'
        'depends_on = ["big"]\n',
        encoding="utf-8",
    )
    assert fingerprints(load_workflow(path)) == {
        "big": "5010043c1957744e58c99c024aa0ec8bb4488813899878e882e5301b91ea3f46",
        "small": "b8a03f547052d319270c3d908b3a05ef5e36919585e31ea0e0296db83127e9e8",
    }
    # A 5 MB prompt: hashed in pieces, with nothing of its size allocated.
    workflow = load_workflow(big_workflow(tmp_path / "big.toml", "one line", size_mb=5))
    tracemalloc.start()
    try:
        fingerprints(workflow)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < MB // 2, f"{peak_bytes / MB:.1f} MB allocated for a 5 MB prompt"


def test_a_claude_prompt_of_many_mb_reaches_the_cli_whole(tmp_path: Path) -> None:
    # Over PROMPT_PIECE_CHARS, the prompt's stream-json line goes to the CLI's stdin in pieces
    # (bench_memory measures what that saves): the fake Claude Code CLI must still get exactly
    # the prompt, multi-byte characters at the pieces' edges included.
    unit = 'é😀 ascii "q" \\ \u2028 '
    prompt = unit * (3 * PROMPT_PIECE_CHARS // len(unit) + 7)
    assert len(prompt) > 3 * PROMPT_PIECE_CHARS
    fake = Path(__file__).parent / "agents" / "fake_claude.py"
    wf = tmp_path / "wf.toml"
    wf.write_text(
        f'[settings]\nisolation = "shared"\nclaude_cli_path = {json.dumps(str(fake))}\n\n'
        '[[tasks]]\nname = "big"\nagent = "claude"\nverify_command = "true"\n'
        f"prompt = {json.dumps(prompt, ensure_ascii=False)}\n",
        encoding="utf-8",
    )
    state = tmp_path / "claude-state"
    done = subprocess.run(
        [sys.executable, "-m", "prompter", "run", "--fresh", "--progress", "none", str(wf)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            **os.environ,
            "FAKE_CLAUDE_STATE": str(state),
            "ANTHROPIC_API_KEY": "sk-ant-api03-fake-key-for-the-fake-cli",  # as a user sets it
        },
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    assert [call["prompt"] == prompt for call in calls] == [True]


@pytest.mark.parametrize(
    "text",
    ["", "\n", "a", "a\n", "a\n\n", "a\r\n", "a\r\nb\r\n", "\r", "a\rb\n", "x\u2028y\n\nz", "\n\n"],
)
def test_the_source_maps_lines_are_the_texts_lines_split_at_newline_only(text: str) -> None:
    # What the map used to keep as a list: split at "\n" only, no empty line after a final
    # "\n", a "\r" before a "\n" (or at the end) left out.
    lines = [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]
    source = SourceMap(text)
    assert source.line_count == len(lines)
    assert [source.line_text(n) for n in range(len(lines) + 2)] == ["", *lines, ""]


FREED_BLOCK_STAYS = """\
import sys
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024  # kB
from prompter.heap import return_big_blocks
return_big_blocks()
first = b"x" * (30 << 20)
del first  # by default glibc now serves blocks under 30 MiB from the heap
base = rss()
block = b"y" * (20 << 20)
after = b"z" * 1000  # allocated after it: freeing the block cannot just shrink the heap
del block
print(rss() - base)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_freed_block_of_many_mb_goes_back_to_the_system() -> None:
    # What a copy of a 20 MB prompt, made and dropped while a workflow is loaded or run, leaves
    # behind: 20 MB of resident heap by glibc's default, none once prompter has set it up.
    done = subprocess.run(
        [sys.executable, "-c", FREED_BLOCK_STAYS], capture_output=True, text=True, check=True
    )
    assert float(done.stdout) < 5, f"{float(done.stdout):.1f} MB still resident"


MANY_TASKS_MB = 10


def many_tasks_workflow(path: Path, size_mb: float = MANY_TASKS_MB) -> tuple[Path, int]:
    """A graph-mode file of `size_mb` MB of small tasks (~3,000 per MB, a little smaller than
    bench_validate.py's: a prompt of ~190 characters, a verify command, up to two dependencies),
    with `max_retries = 3` in `[settings]`, which draws a located warning. Deterministic."""
    words = [
        "refactor",
        "the",
        "parser",
        "so",
        "that",
        "errors",
        "name",
        "the",
        "file",
        "and",
        "the",
        "line",
        "they",
        "are",
    ]
    parts = [
        '[settings]\nmax_retries = 3\nmax_parallel_tasks = 8\nagent = "claude"\n'
        "verify_timeout = 600\n\n"
    ]
    size, n = len(parts[0]), 0
    while size < size_mb * MB:
        prompt = " ".join(words[(n + k) % len(words)] for k in range(36))[:250]
        deps = ", ".join(f'"task_{d:06d}"' for d in range(max(0, n - 3), n) if (n * 7 + d) % 3)
        task = (
            f'[[tasks]]\nname = "task_{n:06d}"\nprompt = "{prompt}."\n'
            f'verify_command = "pytest -q tests/test_{n % 97}.py -k task_{n:06d}"\n'
            f"depends_on = [{deps}]\n" + ("priority = 2\n" if n % 5 == 0 else "") + "\n"
        )
        parts.append(task)
        size += len(task)
        n += 1
    path.write_text("".join(parts), encoding="utf-8")
    return path, n


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_10_mb_file_of_small_tasks_with_a_warning_stays_within_the_memory_budget(
    tmp_path: Path, command: str
) -> None:
    # Thousands of models rather than one big string: the positions of every key that locating
    # the warning made the source map keep (~3 MiB per MB), the parsed tables alive beside the
    # models, a set of field names per task. 64 + 6 x 10 = 124 MB; it took 178.
    wf, n = many_tasks_workflow(tmp_path / "wf.toml")
    size_mb = wf.stat().st_size / MB
    done = peak(command, str(wf), cwd=tmp_path)
    assert done.code == 0, done.stderr[-2000:]
    assert f"{wf}:2:1: warning: max_retries has no effect" in done.stderr
    budget = 64 + 6 * size_mb
    assert done.rss_mb < budget, f"peak RSS {done.rss_mb:.0f} MB, budget {budget:.0f} MB"
    assert done.cpu_s < CPU_LIMIT_S, f"{done.cpu_s:.1f} s of CPU"
    assert n > 20_000


def test_the_source_map_keeps_the_positions_of_the_tables_only(tmp_path: Path) -> None:
    # Locating one key of a file of many small tasks: the map keeps where each table starts
    # (a few bytes per task), not the position of every key of the file (~3 MiB per MB).
    text = many_tasks_workflow(tmp_path / "wf.toml", size_mb=5)[0].read_text()
    tracemalloc.start()
    try:
        source = SourceMap(text)
        assert source.locate(("settings", "max_retries")) == (2, 1)
        peak_bytes = tracemalloc.get_traced_memory()[1]
        line = text[: text.index('name = "task_004321"')].count("\n") + 1
        assert source.locate(("tasks", 4321, "name")) == (line, 1)
        assert source.locate(("tasks", 4321)) == (line - 1, 1)
        assert source.locate(("tasks", 4321, "depends_on", 2)) == (line + 3, 1)
    finally:
        tracemalloc.stop()
    assert peak_bytes < 2 * MB, f"{peak_bytes / MB:.1f} MB for a {len(text) / MB:.0f} MB text"


FIND_CLI = """
import sys
from pathlib import Path
from prompter.agents.claude import find_cli
from prompter.config import Settings
print(find_cli(Settings(), Path(".")))
print("claude_agent_sdk" in sys.modules)
"""


def test_finding_the_bundled_claude_cli_does_not_import_the_sdk(tmp_path: Path) -> None:
    # `run --dry-run` of a Claude workflow checks that the CLI is there: the SDK's import
    # (~35 MB of modules) waits for a run that starts an agent.
    env = {k: v for k, v in os.environ.items() if k != "PROMPTER_CLAUDE_CLI"}
    done = subprocess.run(
        [sys.executable, "-c", FIND_CLI],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"no Claude Code CLI here: {done.stderr.strip()[-200:]}")
    found, imported = done.stdout.split()
    import claude_agent_sdk

    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if bundled.is_file():
        assert found == str(bundled)
    assert imported == "False"
