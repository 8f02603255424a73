"""Validation of odd and hostile workflow files: line separators that are not newlines, names
that look the same, integers TOML cannot hold, many unknown names, long cycles and loops, empty
verify commands, dates where strings belong."""

from __future__ import annotations

import difflib
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from prompter import diagnostics
from prompter.config import load_workflow
from prompter.diagnostics import Severity, WorkflowError

from .harness import prompter_cli
from .workflow_files import write


def task(name: str, *extra: str) -> str:
    return "\n".join(
        ["[[tasks]]", f'name = "{name}"', 'prompt = "p"', 'verify_command = "true"', *extra, ""]
    )


def diagnostics_of(path: Path) -> list[tuple[int, Severity, str]]:
    try:
        wf = load_workflow(path)
    except WorkflowError as exc:
        found = exc.diagnostics
    else:
        found = wf.warnings
    return [(d.line, d.severity, d.message) for d in found]


# -- positions: only "\n" ends a line in TOML -------------------------------------------------


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_unicode_line_separators_in_strings_and_comments_do_not_shift_lines(
    tmp_path: Path, separator: str
) -> None:
    # TOML allows these in strings and comments; they do not end a line there, nor for tomllib.
    text = (
        f"# a comment{separator}with a separator\n"  # 1
        "[[tasks]]\n"  # 2
        'name = "a"\n'  # 3
        f'prompt = "x{separator}y"\n'  # 4
        'verify_command = "true"\n'  # 5
        "max_attempts = 0\n"  # 6
    )
    done = prompter_cli("validate", str(write(tmp_path, text)))
    assert done.returncode == 2
    assert "wf.toml:6:1: error: `max_attempts` must be ≥ 1, not 0" in done.stderr


def test_syntax_error_after_a_line_separator_quotes_the_right_line(tmp_path: Path) -> None:
    text = '# note\u2028more\n[[tasks]]\nname = "a"\nprompt = = "p"\n'
    done = prompter_cli("validate", str(write(tmp_path, text)))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'wf.toml'}:4:")
    assert lines[1] == '    prompt = = "p"'


def test_task_lines_with_a_line_separator_and_a_quoted_header(tmp_path: Path) -> None:
    # The quoted header `[["tasks"]]` makes the loader fall back to its scanner for task lines.
    text = '# x\u2028y\n[["tasks"]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
    assert load_workflow(write(tmp_path, text)).task_lines == (2,)


def test_task_lines_are_not_fooled_by_a_header_inside_a_prompt(tmp_path: Path) -> None:
    text = (
        '[["tasks"]]\n'  # 1: quoted, which the quick header count does not see
        'name = "a"\n'
        'prompt = """\n'
        "[[tasks]]\n"  # 4: inside the prompt, which it does
        '"""\n'
        'verify_command = "true"\n'
        "\n"
        "[[tasks]]\n"  # 8
        'name = "b"\n'
        'prompt = "p"\n'
        'verify_command = "true"\n'
    )
    assert load_workflow(write(tmp_path, text)).task_lines == (1, 8)


# -- names that look the same ------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def test_names_differing_only_in_unicode_normalisation_are_duplicates(tmp_path: Path) -> None:
    assert NFC != NFD
    path = write(tmp_path, task(NFC, "depends_on = []") + task(NFD, "depends_on = []"))
    found = diagnostics_of(path)
    assert [(line, sev) for line, sev, _ in found] == [(7, Severity.ERROR)]
    message = found[0][2]
    assert "duplicate task name" in message and "line 2" in message
    assert "Unicode" in message


def test_a_dependency_written_in_another_normalisation_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, task(NFC, "depends_on = []") + task("x", f'depends_on = ["{NFD}"]'))
    ((line, sev, message),) = diagnostics_of(path)
    assert (line, sev) == (10, Severity.ERROR)
    assert message.startswith(f"unknown dependency `{NFD}`")
    assert "Unicode" in message and "line 2" in message
    assert "did you mean" not in message  # a suggestion identical to the eye helps no one


def test_a_jump_target_written_in_another_normalisation_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, task("x", f'on_success = "{NFD}"') + task(NFC))
    ((line, sev, message),) = diagnostics_of(path)
    assert (line, sev) == (5, Severity.ERROR)
    assert "Unicode" in message and "line 7" in message


def test_names_differing_in_case_stay_distinct(tmp_path: Path) -> None:
    path = write(
        tmp_path, task("Build", "depends_on = []") + task("build", 'depends_on = ["Build"]')
    )
    assert [t.name for t in load_workflow(path).tasks] == ["Build", "build"]


# -- integers TOML cannot hold -----------------------------------------------------------------


def test_integers_beyond_64_bits_are_errors_at_their_key(tmp_path: Path) -> None:
    huge = "1" + "0" * 30
    text = (
        "[settings]\n"
        f"max_parallel_tasks = {huge}\n"  # 2
        f"cpu_budget = {huge}\n"  # 3
        + task(
            "a", f"max_attempts = -{huge}", f"timeout = {huge}", "priority = 9223372036854775807"
        )
    )
    found = diagnostics_of(write(tmp_path, text))
    errors = [(line, msg) for line, sev, msg in found if sev is Severity.ERROR]
    assert [line for line, _ in errors] == [2, 3, 8, 9]
    for _, message in errors:
        assert "64-bit" in message, message
        assert "must be a number, not an integer" not in message


# -- many unknown names: suggestions are bounded work ------------------------------------------


def test_suggestions_for_many_unknown_dependencies_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 1500
    examined = 0
    real = difflib.get_close_matches

    def counting(word: str, possibilities: Any, *args: Any, **kwargs: Any) -> list[str]:
        nonlocal examined
        pool = list(possibilities)
        examined += len(pool)
        return real(word, pool, *args, **kwargs)

    monkeypatch.setattr(diagnostics.difflib, "get_close_matches", counting)
    text = "".join(task(f"t{i}", f'depends_on = ["u{i}", "t{i}x"]') for i in range(n))
    with pytest.raises(WorkflowError) as caught:
        load_workflow(write(tmp_path, text))
    messages = [d.message for d in caught.value.errors]
    assert len(messages) == 2 * n
    assert messages[1] == "unknown dependency `t0x`; did you mean `t0`?"  # the first still get one
    # Before: 2 * n * n = 4.5 million names compared (5000 tasks took minutes).
    assert examined <= diagnostics.SUGGESTION_BUDGET


# -- long cycles -------------------------------------------------------------------------------


def test_a_long_dependency_cycle_is_reported_on_one_readable_line(tmp_path: Path) -> None:
    n = 2000
    text = "".join(task(f"t{i}", f'depends_on = ["t{(i + 1) % n}"]') for i in range(n))
    ((_, _, message),) = diagnostics_of(write(tmp_path, text))
    assert message.startswith("dependency cycle: t0 -> t1 -> t2 -> ")
    assert f"({n - 19} more)" in message  # t10 … t1990
    assert message.endswith("-> t1999 -> t0 (each task depends on the next)")
    assert len(message) < 500


def test_a_long_sequential_loop_warning_is_one_readable_line(tmp_path: Path) -> None:
    n = 300
    text = "".join(task(f"t{i}", f'on_success = "t{(i + 1) % n}"') for i in range(n))
    ((_, sev, message),) = diagnostics_of(write(tmp_path, text))
    assert sev is Severity.WARNING
    assert message.startswith("transitions can revisit a task (t0 -> t1 -> ")
    assert f"({n - 19} more)" in message and len(message) < 500


def test_a_short_cycle_keeps_its_full_path(tmp_path: Path) -> None:
    names = [f"n{i}" for i in range(20)]
    text = "".join(
        task(name, f'depends_on = ["{names[(i + 1) % 20]}"]') for i, name in enumerate(names)
    )
    ((_, _, message),) = diagnostics_of(write(tmp_path, text))
    assert message == (
        f"dependency cycle: {' -> '.join([*names, 'n0'])} (each task depends on the next)"
    )


# -- values that validate but do nothing -------------------------------------------------------


@pytest.mark.parametrize("command", ["", "   ", "\t\n"])
def test_an_empty_verify_command_warns_that_the_task_always_passes(
    tmp_path: Path, command: str
) -> None:
    text = '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = ' + repr(command).replace(
        "'", '"'
    )
    done = prompter_cli("validate", str(write(tmp_path, text + "\n")))
    assert done.returncode == 0, done.stderr
    assert "wf.toml:4:1: warning: verify_command is empty" in done.stderr
    assert "always passes" in done.stderr


def test_a_date_where_a_string_belongs_is_shown_as_toml_writes_it(tmp_path: Path) -> None:
    text = (
        "[[tasks]]\nname = 2024-01-02T03:04:05Z\nprompt = 1979-05-27\nverify_command = 07:32:00\n"
    )
    messages = [m for _, _, m in diagnostics_of(write(tmp_path, text))]
    assert messages == [
        "`name` must be a string, not a date/time (2024-01-02T03:04:05+00:00)",
        "`prompt` must be a string, not a date/time (1979-05-27)",
        "`verify_command` must be a string, not a date/time (07:32:00)",
    ]


def test_an_integer_of_thousands_of_digits_is_a_located_syntax_error(tmp_path: Path) -> None:
    # tomllib raises a bare ValueError (Python's int-from-string digit limit) for it.
    text = task("a") + "max_attempts = 1" + "0" * 5000 + "\n"
    done = prompter_cli("validate", str(write(tmp_path, text)))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{tmp_path / 'wf.toml'}:5:16: error: invalid TOML: ")
    assert "64-bit" in done.stderr.splitlines()[0]


def test_a_hexadecimal_integer_of_thousands_of_digits_is_described_not_crashed_on(
    tmp_path: Path,
) -> None:
    huge = "0x" + "F" * 5000  # no digit limit for hexadecimal, but repr() of it has one
    text = task("a", f"depends_on = [{huge}]", f"timeout = {huge}")
    done = prompter_cli("validate", str(write(tmp_path, text)))
    assert done.returncode == 2, done.stderr
    assert "internal error" not in done.stderr
    assert "wf.toml:5:1: error: `depends_on[0]` must be a string, not an integer" in done.stderr
    assert "wf.toml:6:1: error: `timeout` is an integer outside TOML's 64-bit range" in done.stderr
