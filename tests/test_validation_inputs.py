"""What a workflow can hold and still run: files that are not files, strings no process can take,
names that break a console, numbers that never end. Each is refused by `validate` (exit 2, a
located message) so that `run` never meets it: through a real `prompter` process."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import threading
from pathlib import Path

import pytest

from prompter.config import load_workflow

from .harness import prompter_cli
from .workflow_files import errors_of, write

BASE = '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'


def capped_prompter(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # An unbounded read fails fast instead of taking the machine's memory with it.
    limit = (2**31, 2**31)
    return prompter_cli(
        *args,
        cwd=cwd,
        timeout=timeout,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, limit),
    )


# -- files that are not regular files -----------------------------------------------------------


@pytest.mark.parametrize("via_symlink", [False, True])
def test_dev_zero_is_refused_at_once_not_read_for_ever(tmp_path: Path, via_symlink: bool) -> None:
    path = Path("/dev/zero")
    if via_symlink:  # judged by what it points to
        path = tmp_path / "wf.toml"
        path.symlink_to("/dev/zero")
    done = capped_prompter("validate", str(path), timeout=20)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"{path}: error: not a regular file (a character device): "
        "a workflow must be a file on disk",
        f"{path}: 1 error",
    ]


def test_fifo_without_a_writer_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "wf.toml"
    os.mkfifo(fifo)
    for command in ("validate", "run"):
        done = capped_prompter(command, str(fifo), cwd=tmp_path, timeout=20)
        assert done.returncode == 2, command
        assert done.stderr.startswith(f"{fifo}: error: not a regular file (a pipe or FIFO)")


def test_fifo_with_a_writer_is_refused_too(tmp_path: Path) -> None:
    # `prompter validate <(generate)` passes a pipe: refused as well, rather than read unbounded.
    fifo = tmp_path / "wf.toml"
    os.mkfifo(fifo)

    def feed() -> None:
        # Blocks until a reader opens: prompter, or else the test itself, which reads nothing.
        with contextlib.suppress(BrokenPipeError), open(fifo, "w") as f:
            f.write(BASE)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    done = capped_prompter("validate", str(fifo), timeout=20)
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # frees the writer if still waiting
    writer.join(5)
    assert done.returncode == 2
    assert "not a regular file" in done.stderr


# -- NUL: no argument, environment variable or path can hold one --------------------------------

NUL_CASES = [
    ('[settings]\nworking_directory = "/root/../\\u0000x"\n', "working_directory"),
    ('[settings]\nclaude_cli_path = "a\\u0000b"\n', "claude_cli_path"),
    ('[settings]\nmodel = "m\\u0000"\n', "model"),
    ('[settings]\nallowed_tools = ["Bash", "x\\u0000"]\n', "allowed_tools[1]"),
    ('[settings]\ndisallowed_tools = ["\\u0000"]\n', "disallowed_tools[0]"),
    ('[settings]\nworktree_copy = ["\\u0000.env"]\n', "worktree_copy[0]"),
    ('[settings]\nworktree_link = ["node_modules\\u0000"]\n', "worktree_link[0]"),
    ('[settings]\nagent_command = ["\\u0000agent"]\n', "agent_command[0]"),
    ('[settings]\nagent_env = { HOME = "/h\\u0000" }\n', "agent_env.HOME"),
]
TASK_NUL_CASES = [
    ('prompt = "fix\\u0000it"', "prompt"),
    ('verify_command = "true\\u0000"', "verify_command"),
    ('system_prompt = "\\u0000"', "system_prompt"),
    ('agent_command = ["agent", "{prompt}\\u0000"]', "agent_command[1]"),
    ('agent_env = { "MY VAR" = "\\u0000" }', "agent_env.'MY VAR'"),
    ('model = "\\u0000"', "model"),
]


@pytest.mark.parametrize(("settings", "key"), NUL_CASES, ids=[k for _, k in NUL_CASES])
def test_nul_in_a_setting_is_a_located_error(tmp_path: Path, settings: str, key: str) -> None:
    path = write(tmp_path, settings + "\n" + BASE)
    assert errors_of(path) == [
        (
            2,
            f"`{key}` contains a NUL character (U+0000), which no process argument, "
            "environment variable or path can hold",
        )
    ]


@pytest.mark.parametrize(("line", "key"), TASK_NUL_CASES, ids=[k for _, k in TASK_NUL_CASES])
def test_nul_in_a_task_key_is_a_located_error(tmp_path: Path, line: str, key: str) -> None:
    keys = {"name": '"a"', "prompt": '"p"', "verify_command": '"true"'}
    name, value = line.split(" = ", 1)
    keys[name] = value
    text = "[[tasks]]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    ((at, message),) = errors_of(write(tmp_path, text))
    assert message.startswith(f"`{key}` contains a NUL character (U+0000)")
    assert text.splitlines()[at - 1] == line


@pytest.mark.parametrize(
    "settings",
    ['working_directory = "/root/../\\u0000x"', 'claude_cli_path = "a\\u0000b"'],
)
def test_run_refuses_a_nul_path_up_front_instead_of_an_internal_error(
    tmp_path: Path, settings: str
) -> None:
    path = write(tmp_path, f"[settings]\n{settings}\n\n{BASE}")
    for command in ("validate", "run"):
        done = capped_prompter(command, str(path), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        key = settings.split(" =", maxsplit=1)[0]
        assert done.stderr.startswith(f"{path}:2:1: error: `{key}` contains")
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


# -- agent_env names ----------------------------------------------------------------------------


def test_agent_env_names_execve_cannot_take_are_refused_before_any_attempt(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "agent-ran"
    argv = ["sh", "-c", f"touch {marker}"]
    path = write(
        tmp_path,
        '[settings]\nagent = "command"\n'
        f"agent_command = {json.dumps(argv)}\nretry_delay = 0\n"
        'agent_env = { "A=B" = "x", "" = "y", OK = "fine" }\n\n' + BASE,
    )
    for command in ("validate", "run"):
        done = capped_prompter(command, str(path), cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.splitlines() == [
            f"{path}:5:1: error: `agent_env` variable name 'A=B' contains `=`, "
            "which cannot be in a name",
            f"{path}:5:1: error: `agent_env` has an empty variable name",
            f"{path}: 2 errors",
        ]
    assert not marker.exists()


# -- numbers: finite, and within what a run can wait for ----------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("check_interval = inf", "`check_interval` must be a finite number, not inf"),
        ("check_interval = 1e20", "`check_interval` must be ≤ 3600, not 1e+20"),
        ("check_interval = 3600.5", "`check_interval` must be ≤ 3600, not 3600.5"),
        ("verify_timeout = 1e-300", "`verify_timeout` must be ≥ 0.001, not 1e-300"),
        ("verify_timeout = 0.0009", "`verify_timeout` must be ≥ 0.001, not 0.0009"),
        ("verify_timeout = inf", "`verify_timeout` must be a finite number, not inf"),
        ("retry_delay = inf", "`retry_delay` must be a finite number, not inf"),
        ("cpu_budget = inf", "`cpu_budget` must be a finite number, not inf"),
        ("memory_budget_mb = -inf", "`memory_budget_mb` must be a finite number, not -inf"),
        ("max_cost_usd = nan", "`max_cost_usd` must be a finite number, not nan"),
    ],
)
def test_settings_numbers_out_of_range(tmp_path: Path, line: str, message: str) -> None:
    assert errors_of(write(tmp_path, f"[settings]\n{line}\n\n{BASE}")) == [(2, message)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("timeout = 1e-300", "`timeout` must be ≥ 0.001, not 1e-300"),
        ("timeout = inf", "`timeout` must be a finite number, not inf"),
        ("verify_timeout = nan", "`verify_timeout` must be a finite number, not nan"),
        ("cpu_required = inf", "`cpu_required` must be a finite number, not inf"),
        ("memory_required = inf", "`memory_required` must be a finite number, not inf"),
    ],
)
def test_task_numbers_out_of_range(tmp_path: Path, line: str, message: str) -> None:
    assert errors_of(write(tmp_path, f"{BASE}{line}\n")) == [(5, message)]


def test_the_bounds_themselves_are_accepted_and_just_past_them_is_not(tmp_path: Path) -> None:
    at = (
        "[settings]\ncheck_interval = 3600\nverify_timeout = 0.001\n\n" + BASE + "timeout = 0.001\n"
    )
    wf = load_workflow(write(tmp_path, at))
    assert wf.settings.check_interval == 3600 and wf.tasks[0].timeout == 0.001
    past = at.replace("3600", "3600.001").replace("0.001", "0.00099")
    assert [line for line, _ in errors_of(write(tmp_path, past))] == [2, 3, 9]


def test_run_with_an_endless_check_interval_exits_2_instead_of_hanging(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[settings]\ncheck_interval = 1e20\nagent = "command"\nagent_command = ["true"]\n\n' + BASE,
    )
    done = capped_prompter("run", str(path), cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{path}:2:1: error: `check_interval` must be ≤ 3600")


# -- task names and what messages print ----------------------------------------------------------

C1_AND_SEPARATORS = ["\x7f", "\x85", "\x9b", "\x9f", "\u2028", "\u2029"]
BIDI = [
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]


@pytest.mark.parametrize(
    "char", C1_AND_SEPARATORS, ids=[f"U+{ord(c):04X}" for c in C1_AND_SEPARATORS]
)
def test_name_with_a_c1_control_or_line_separator(tmp_path: Path, char: str) -> None:
    name = f"build{char}deploy"
    path = write(tmp_path, BASE.replace('"a"', json.dumps(name)))
    assert errors_of(path) == [
        (2, f"task name {name!r} contains a control character (U+{ord(char):04X})")
    ]


@pytest.mark.parametrize("char", BIDI, ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_name_with_a_bidirectional_formatting_character(tmp_path: Path, char: str) -> None:
    name = f"deploy{char}prod"
    path = write(tmp_path, BASE.replace('"a"', json.dumps(name)))
    ((line, message),) = errors_of(path)
    assert line == 2
    assert message.startswith(
        f"task name {name!r} contains a bidirectional formatting character (U+{ord(char):04X})"
    )


def test_names_keep_their_joiners_and_right_to_left_scripts(tmp_path: Path) -> None:
    # Refusing U+202E must not take the joiners with it: Persian (ZWNJ) and emoji (ZWJ) need them.
    kept = ["👩\u200d💻 review", "می\u200cخواهم", "בדיקה اختبار"]
    text = "".join(BASE.replace('"a"', json.dumps(n, ensure_ascii=False)) + "\n" for n in kept)
    text += BASE.replace('"a"', json.dumps("a\u202eb"))
    errors = errors_of(write(tmp_path, text))
    assert [line for line, _ in errors] == [17]


def test_messages_never_print_a_terminal_escape_or_a_bidi_override(tmp_path: Path) -> None:
    # A depends_on entry is quoted as written: it must not reach the console raw.
    hostile = "x\x1b[2J\u202eevil"
    text = BASE + f"depends_on = [{json.dumps(hostile)}]\n"
    path = write(tmp_path, text)
    done = capped_prompter("validate", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"{path}:5:1: error: unknown dependency `x\\x1b[2J\\u202eevil`"
    )


def test_syntax_error_excerpt_keeps_raw_control_characters_off_the_console(tmp_path: Path) -> None:
    path = tmp_path / "wf.toml"
    path.write_bytes(b'[[tasks]]\nname = "a\x1b[31mred"\n')
    done = capped_prompter("validate", str(path))
    assert done.returncode == 2
    first, excerpt, caret = done.stderr.splitlines()[:3]
    assert first.startswith(f"{path}:2:10: error: invalid TOML")
    assert excerpt == '    name = "a?[31mred"'
    assert caret == "    " + " " * 9 + "^"


def test_strings_too_long_for_a_process_are_refused_by_validate(tmp_path: Path) -> None:
    from prompter.config import MAX_PROCESS_STRING_BYTES

    big = "é" * (MAX_PROCESS_STRING_BYTES // 2 + 1)  # counted in bytes: 2 per character
    text = (
        '[settings]\nagent = "command"\nagent_command = ["true"]\n'
        f'[[tasks]]\nname = "a"\nprompt = "{big}"\nverify_command = "true"\n'
        f'[[tasks]]\nname = "b"\nprompt = "p"\nverify_command = "true"\nsystem_prompt = "{big}"\n'
        f'[[tasks]]\nname = "c"\nagent = "claude"\nprompt = "{big}"\nverify_command = "true"\n'
    )
    errors = errors_of(write(tmp_path, text))
    assert [(line, message.split(" is ")[0]) for line, message in errors] == [
        (6, "`prompt` of task `a`"),
        (12, "`system_prompt` of task `b`"),
    ]  # c's prompt goes to Claude Code on its stdin: no limit there


def test_a_prompt_at_the_limit_still_reaches_the_agent_with_retry_feedback(
    tmp_path: Path,
) -> None:
    from prompter.config import MAX_PROCESS_STRING_BYTES

    # The second attempt's prompt carries the failed check's output: it must still fit.
    prompt = "p" * MAX_PROCESS_STRING_BYTES
    noisy = "seq 1 100000; test -f flag || { touch flag; exit 1; }"
    text = (
        '[settings]\nagent = "command"\nagent_command = ["sh", "-c", "true"]\nretry_delay = 0\n'
        f'[[tasks]]\nname = "a"\nprompt = "{prompt}"\nverify_command = "{noisy}"\n'
    )
    path = write(tmp_path, text)
    done = capped_prompter("run", str(path), "--progress", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
