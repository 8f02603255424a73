"""Whatever `state.json` or its journal holds — nesting 100,000 deep, wrong types, numbers past
any range, garbage, invalid UTF-8 — is a damaged state: `status`, `report` and `run` exit 2 with
one line naming the file (never 70, an internal error), `plan` warns and plans, and the file is
left as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prompter.state import StateError, StateStore

from .harness import Harness

DEEP = 100_000


def deep(opening: bytes, closing: bytes, inner: bytes = b"1") -> bytes:
    return opening * DEEP + inner + closing * DEEP


SNAPSHOTS = {
    "deep arrays": b'{"version": 1, "tasks": ' + deep(b"[", b"]") + b"}",
    "deep objects": b'{"version": 1, "tasks": ' + deep(b'{"a": ', b"}") + b"}",
    "only deep arrays": deep(b"[", b"]"),
    "deep and unclosed": b"[" * DEEP,
    "a float past range": b'{"version": 1e999, "tasks": {}}',
    "a 5000-digit int": b'{"version": ' + b"9" * 5000 + b', "tasks": {}}',
    "a 4000-digit version": b'{"version": 1' + b"0" * 4000 + b', "tasks": {}}',
    "wrong types": b'{"version": "one", "tasks": [], "runs": {}}',
    "a record of the wrong type": b'{"version": 1, "tasks": {"a": [1, 2]}}',
    "garbage": bytes(range(256)) * 4,
    "invalid UTF-8": b'{"version": 1, "tasks": {"\xff\xfe": {}}}',
}

JOURNALS = {
    "deep arrays": b'{"task": ' + deep(b"[", b"]") + b"}",
    "deep objects": b'{"task": ' + deep(b'{"a": ', b"}") + b"}",
    # (Where a float goes, 1e999 is infinity: a time or cost reports already show as unknown.)
    "a float past range": b'{"task": {"name": "a", "fingerprint": "x", "status": "failed", '
    b'"run_id": "r", "visits": 1e999}}',
    "a 5000-digit int": b'{"run": {"run_id": "r", "workflow": "w", "started_at": '
    + b"9" * 5000
    + b"}}",
    "wrong types": b'{"task": {"name": 5, "status": [], "attempts": "none"}}',
    "garbage": bytes(range(10)) + bytes(range(11, 256)),  # no newline inside: one line
    "invalid UTF-8": b'{"run": {"run_id": "\xff", "workflow": "w", "started_at": 1}}',
}

COMMANDS = {
    "status": ("status",),
    "report": ("report",),
    "run": ("run", "--progress", "none", "prompter.toml"),
    "plan": ("plan", "prompter.toml"),
}


@pytest.fixture
def h(h: Harness) -> Harness:
    """The shared harness with one task, `a`, written, and its report folder."""
    h.task("a", depends_on=[])
    h.write()
    (h.root / ".prompter").mkdir()
    return h


def check(h: Harness, command: str, path: Path, content: bytes, start: str, end: str) -> None:
    done = h.cli(*COMMANDS[command])
    (message,) = done.stderr.splitlines()  # one line
    assert len(message) < 400, message
    if command == "plan":
        assert done.returncode == 0, done.stderr
        assert message.startswith(f"prompter: warning: {start}")
        assert message.endswith(f"{end}; planned without measured durations")
        assert "critical path: a" in done.stdout
    else:
        assert done.returncode == 2, done.stderr
        assert message.startswith(f"prompter: {start}")
        assert message.endswith(end)
    assert path.read_bytes() == content  # left as it was
    assert h.calls() == []


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", SNAPSHOTS)
def test_a_damaged_snapshot_is_exit_2_naming_it(h: Harness, case: str, command: str) -> None:
    path = h.root / ".prompter" / "state.json"
    path.write_bytes(SNAPSHOTS[case])
    start = ".prompter/state.json: corrupt state, not a prompter state file ("
    check(h, command, path, SNAPSHOTS[case], start, "); move it away to start without history")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", JOURNALS)
def test_a_damaged_journal_line_is_exit_2_naming_it(h: Harness, case: str, command: str) -> None:
    path = h.root / ".prompter" / "state.json.journal"
    content = JOURNALS[case] + b"\n"
    path.write_bytes(content)
    start = ".prompter/state.json.journal:1: corrupt journal entry ("
    check(h, command, path, content, start, "); repair or delete that line")


# -- the loader, on anything ----------------------------------------------------------------------

KEYS = (
    *("version", "tasks", "runs", "task", "run", "name", "status", "run_id", "fingerprint"),
    *("started_at", "finished_at", "attempts", "number", "workflow", "visits", "a"),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["pending", "passed", "failed", "a", "r", ""]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """JSON shaped like a state or a journal line (or not), sometimes nested past any limit,
    sometimes with huge numbers, sometimes plain bytes."""
    kind = draw(st.sampled_from(["json", "deep", "bytes", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    text = json.dumps(draw(json_values), allow_nan=True)
    if kind == "deep":
        depth = draw(st.integers(500, 20_000))
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"tasks": ', "}"), ('{"a": ', "}")]))
        text = opening * depth + text + closing * draw(st.sampled_from([depth, 0, depth // 2]))
    elif kind == "huge":
        digits = draw(st.integers(300, 6_000))
        text = text.replace("0", "9" * digits, 1) if "0" in text else "1" + "0" * digits
    return text.encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=documents(), journal=documents() | st.none())
def test_the_loader_loads_anything_or_raises_a_state_error(
    tmp_path_factory: pytest.TempPathFactory, snapshot: bytes, journal: bytes | None
) -> None:
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_bytes(snapshot)
    if journal is not None:
        path.with_name("state.json.journal").write_bytes(journal.replace(b"\n", b" ") + b"\n")
    try:
        StateStore(path).load()
    except StateError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(str(path))
