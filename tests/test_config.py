"""The loader: compat with Prompter 0.10, defaults, unusable files, and fuzzing."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompter.cli import main
from prompter.config import MAX_FILE_BYTES, Settings, Task, Workflow, load_workflow
from prompter.diagnostics import Severity, WorkflowError

from .toml_text import toml_value
from .workflow_files import errors_of, write

COMPAT = Path(__file__).parent / "compat" / "prompter-0.10"
COMPAT_FILES = sorted(COMPAT.rglob("*.toml"))


# -- Prompter 0.10 files ---------------------------------------------------------------------


def test_all_ten_compat_workflows_are_present() -> None:
    assert len(COMPAT_FILES) == 10


@pytest.mark.parametrize("path", COMPAT_FILES, ids=[p.stem for p in COMPAT_FILES])
def test_compat_workflow_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: valid (")


def test_compat_parallel_example_is_graph_mode_with_its_dependencies() -> None:
    wf = load_workflow(COMPAT / "examples" / "parallel-execution.toml")
    assert wf.mode == "graph"
    deps = {
        t.name: sorted(wf.tasks[d].name for d in wf.graph.deps[i]) for i, t in enumerate(wf.tasks)
    }
    assert deps["generate_test_plan"] == ["analyze_tests", "create_architecture_diagram"]
    assert deps["database_migration"] == ["analyze_backend"]
    mem = wf.tasks[wf.index["memory_intensive_task"]]
    assert (mem.memory_required, mem.cpu_required) == (4096, 2.0)
    assert wf.tasks[wf.index["database_migration"]].exclusive


def test_compat_sequential_jumps_keep_their_meaning() -> None:
    wf = load_workflow(COMPAT / "examples" / "task-jumping.toml")
    assert wf.mode == "sequential"
    build = wf.tasks[wf.index["build"]]
    assert (build.on_success, build.on_failure) == ("run_tests", "fix_build_errors")


def test_max_retries_is_accepted_with_a_located_warning() -> None:
    wf = load_workflow(COMPAT / "example.toml")
    (warning,) = wf.warnings
    assert warning.severity is Severity.WARNING
    assert warning.line == 11 and "max_retries has no effect" in warning.message


def test_claude_only_keys_on_a_command_task_warn_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "wf.toml"
    path.write_text(
        '[settings]\nagent = "command"\nagent_command = ["true"]\n'
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
        'model = "claude-sonnet-4-5"\nresume_previous_session = true\n'
    )
    wf = load_workflow(path)
    assert [(w.line, w.message) for w in wf.warnings] == [
        (8, 'model has no effect: task `a` uses agent = "command"'),
        (9, 'resume_previous_session has no effect: task `a` uses agent = "command"'),
    ]


# -- defaults: one source ---------------------------------------------------------------------


def test_defaults_match_the_specification(tmp_path: Path) -> None:
    wf = load_workflow(
        write(tmp_path, '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\n')
    )
    s, t = wf.settings, wf.tasks[0]
    assert (s.check_interval, s.max_parallel_tasks, s.enable_parallel) == (0, 4, True)
    assert (s.max_iterations, s.verify_timeout, s.agent, s.allow_infinite_loops) == (
        1000,
        300,
        "claude",
        False,
    )
    assert (t.verify_success_code, t.on_success, t.on_failure, t.max_attempts) == (
        0,
        "next",
        "retry",
        3,
    )
    assert (t.timeout, t.priority, t.exclusive, t.depends_on) == (None, 0, False, None)
    assert wf.mode == "sequential"


def test_task_inherits_agent_settings_unless_it_overrides_them(tmp_path: Path) -> None:
    wf = load_workflow(
        write(
            tmp_path,
            """
[settings]
agent = "command"
agent_command = ["agent", "{prompt}"]
verify_timeout = 20

[[tasks]]
name = "a"
prompt = "p"
verify_command = "v"

[[tasks]]
name = "b"
prompt = "p"
verify_command = "v"
agent = "claude"
verify_timeout = 5
""",
        )
    )
    a, b = wf.tasks
    assert (a.agent, a.agent_command, a.verify_timeout) == ("command", ["agent", "{prompt}"], 20)
    assert (b.agent, b.verify_timeout) == ("claude", 5)


def test_depends_on_key_alone_selects_graph_mode(tmp_path: Path) -> None:
    body = '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\n'
    wf = load_workflow(write(tmp_path, body + "depends_on = []\n" + body.replace('"a"', '"b"')))
    assert wf.mode == "graph"


def test_working_directory_is_relative_to_the_workflow_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    text = '[settings]\nworking_directory = ".."\n'
    text += '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\n'
    wf = load_workflow(write(tmp_path / "sub", text))
    assert wf.workdir == tmp_path.resolve()


def test_task_lines_point_at_headers_even_with_lookalikes_in_strings(tmp_path: Path) -> None:
    text = (
        "# [[tasks]] in a comment\n"
        '[[tasks]]\nname = "a"\nverify_command = "v"\nprompt = """\n[[tasks]]\n"""\n'
        '\n  [[ tasks ]]\nname = "b"\nprompt = "p"\nverify_command = "v"\n'
    )
    wf = load_workflow(write(tmp_path, text))
    assert wf.task_lines == (2, 9)


def test_unknown_placeholder_in_agent_command_warns_with_suggestion(tmp_path: Path) -> None:
    text = (
        '[settings]\nagent = "command"\nagent_command = ["x", "{promt}", "${HOME}"]\n'
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\n'
    )
    wf = load_workflow(write(tmp_path, text))
    messages = [(w.line, w.message) for w in wf.warnings]
    assert len(messages) == 1  # {HOME} is not close to any placeholder: passed as is, silently
    assert messages[0][0] == 3 and "did you mean `{prompt}`?" in messages[0][1]


def test_sequential_loop_without_allow_infinite_loops_warns(tmp_path: Path) -> None:
    text = (
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\non_failure = "b"\n'
        '[[tasks]]\nname = "b"\nprompt = "p"\nverify_command = "v"\non_success = "a"\n'
    )
    wf = load_workflow(write(tmp_path, text))
    assert any("can revisit a task (a -> b -> a)" in w.message for w in wf.warnings)
    allowed = load_workflow(
        write(tmp_path, "[settings]\nallow_infinite_loops = true\n" + text, "ok.toml")
    )
    assert allowed.warnings == ()


def test_graph_only_keys_in_sequential_mode_warn(tmp_path: Path) -> None:
    wf = load_workflow(
        write(tmp_path, '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\npriority = 3\n')
    )
    assert [(w.line, "no effect in sequential mode" in w.message) for w in wf.warnings] == [
        (5, True)
    ]


# -- unusable files: one clear error, exit 2, never a traceback --------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope.toml") == [(0, "no such file")]


def test_directory(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [(0, "is a directory, not a workflow file")]


def test_empty_and_blank_files(tmp_path: Path) -> None:
    for text in ("", "\n\n   \n"):
        ((line, message),) = errors_of(write(tmp_path, text))
        assert line == 1 and "the file is empty" in message


def test_comments_only_file_has_no_tasks(tmp_path: Path) -> None:
    assert errors_of(write(tmp_path, "# nothing here\n")) == [
        (1, "no tasks: add at least one [[tasks]] table")
    ]


def test_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    data = b'[[tasks]]\nname = "a"\nprompt = "caf\xe9"\nverify_command = "v"\n'
    ((line, message),) = errors_of(write(tmp_path, data))
    assert line == 3 and "not UTF-8" in message and "0xe9" in message


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    data = '\ufeff[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "v"\n'.encode()
    assert load_workflow(write(tmp_path, data)).tasks[0].name == "a"


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    ((line, message),) = errors_of(path)
    assert line == 0 and "limited to 256 MiB" in message


def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x = 1\n")
    path.chmod(0)
    if os.geteuid() != 0:  # root reads a mode-000 file, so this half runs only for users
        assert errors_of(path) == [(0, "permission denied")]
    assert errors_of(path / "below-a-file.toml") == [(0, "cannot read: Not a directory")]


def test_binary_garbage(tmp_path: Path) -> None:
    ((line, message),) = errors_of(write(tmp_path, bytes(range(256)) * 4))
    assert line >= 1 and ("not UTF-8" in message or "invalid TOML" in message)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    ((_, message),) = errors_of(write(tmp_path, "x = " + "[" * 100_000 + "]" * 100_000 + "\n"))
    assert "invalid TOML" in message


def test_syntax_error_shows_the_line_and_a_caret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[[tasks]]\nname = "a"\nprompt = oops\n')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{path}:3:10: error: invalid TOML")
    assert err[1] == "    prompt = oops"
    assert err[2] == "    " + " " * 9 + "^"


# -- fuzzing: the loader returns a model or located errors, nothing else ---------------------

KNOWN_KEYS = sorted(set(Settings.model_fields) | set(Task.model_fields))


def toml_document(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    tables: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append(f"[{json.dumps(key)}]")
            tables += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                tables.append(f"[[{json.dumps(key)}]]")
                tables += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.append(f"{json.dumps(key)} = {toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


names = st.sampled_from(["a", "b", "c", "next", "stop", "", "a b", "end"])
scalars = st.one_of(
    st.booleans(),
    st.integers(-5, 300),
    st.floats(-10, 1e6, allow_nan=False),
    names,
    st.text(max_size=8),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.lists(names, max_size=4))
keys = st.one_of(
    st.sampled_from(KNOWN_KEYS), st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
)
tables = st.dictionaries(keys, values, max_size=8)
documents = st.fixed_dictionaries(
    {},
    optional={
        "settings": st.one_of(tables, scalars),
        "tasks": st.one_of(st.lists(tables, max_size=5), scalars),
        "extra": values,
    },
)


def assert_loader_contract(path: Path) -> None:
    text = path.read_bytes()
    try:
        wf = load_workflow(path)
    except WorkflowError as exc:
        assert exc.errors, "a WorkflowError must carry at least one error"
        lines = text.count(b"\n") + 1
        for d in exc.diagnostics:
            assert 0 <= d.line <= lines + 1, d
            assert d.message and "\n" not in d.message, d
    else:
        assert isinstance(wf, Workflow) and wf.tasks


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(doc=documents)
def test_fuzz_structured_documents(tmp_path: Path, doc: dict[str, Any]) -> None:
    assert_loader_contract(write(tmp_path, toml_document(doc)))


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    assert_loader_contract(write(tmp_path, data))


SNIPPETS = [
    '"',
    "'''",
    '"""',
    "[",
    "]]",
    "[[tasks]]",
    "=",
    "\n",
    "depends_on = [",
    "#",
    "\\",
    "{",
    "\x00",
    "é",
    "name",
]


@FUZZ
@given(
    source=st.sampled_from(COMPAT_FILES),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1),
            st.integers(0, 40),
            st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=5)),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_mutated_compat_files(
    tmp_path: Path, source: Path, edits: list[tuple[float, int, str]]
) -> None:
    text = source.read_text("utf-8")
    for where, cut, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + cut :]
    assert_loader_contract(write(tmp_path, text))


def test_a_multi_line_on_failure_value_is_named_on_one_line(tmp_path: Path) -> None:
    # Found by test_fuzz_mutated_compat_files: the value went into the message as it was.
    path = write(
        tmp_path,
        '[[tasks]]\nname = "a"\nprompt = "p"\nverify_command = "true"\n'
        'on_failure = """retry\nmax"""\n',
    )
    assert errors_of(path) == [
        (
            5,
            'on_failure = "retry\\nmax" is neither one of "retry", "next", "stop" nor a task '
            "name; did you mean `retry`?",
        )
    ]
