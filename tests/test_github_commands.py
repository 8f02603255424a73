"""The workflow-command layer: escaping, fences, outputs, annotation limits."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from prompter.github.commands import (
    ANNOTATIONS_PER_TYPE,
    SUMMARY_BYTES,
    Annotation,
    Annotations,
    Console,
    InertWriter,
    append_summary,
    command,
    inert,
    write_outputs,
)

from .runner_model import commands, outputs


@given(st.text(), st.text())
def test_any_message_and_property_round_trip_through_the_runner(message: str, title: str) -> None:
    line = command("error", message, title=title, file="a,b:c.toml", line=3)
    assert "\n" not in line and "\r" not in line
    (parsed,) = commands(line)
    assert parsed.name == "error"
    assert parsed.data == message
    # the runner drops a property with an empty value; command() leaves it out
    expected = {"file": "a,b:c.toml", "line": "3"} | ({"title": title} if title else {})
    assert parsed.properties == expected


@given(st.text())
def test_untrusted_text_never_issues_a_command(text: str) -> None:
    out = io.StringIO()
    console = Console(out)
    console.untrusted(f"::error::injected\n{text}\n::set-output name=x::y\n  ::warning::z")
    console.info("after")
    assert commands(out.getvalue()) == []  # the fence held, and it was closed
    assert out.getvalue().endswith("after\n")


# Text built to look like commands in both syntaxes, in pieces a hypothesis run recombines.
_COMMANDISH = st.lists(
    st.sampled_from(
        [
            "::error::",
            "##[error]",
            "##[warning title=x;]",
            "::",
            ":",
            "##[",
            "#",
            "[",
            "]",
            "error",
            " ",
            "\t",
            "\n",
            "\r",
            "\r\n",
            "\u2003",
            "%0A",
            "text",
        ]
    ),
    max_size=30,
).map("".join)


@given(st.lists(st.one_of(_COMMANDISH, st.text()), max_size=8))
def test_lines_through_an_inert_writer_are_never_commands(pieces: list[str]) -> None:
    out = io.StringIO()
    writer = InertWriter(out)
    for piece in pieces:  # written in pieces, as print() and progress lines do
        writer.write(piece)
    assert commands(out.getvalue()) == []
    # Only zero-width spaces were added: the text reads as written.
    assert out.getvalue().replace("\u200b", "") == "".join(pieces).replace("\u200b", "")
    # In pieces or whole: the same output.
    whole = io.StringIO()
    InertWriter(whole).write("".join(pieces))
    assert out.getvalue() == whole.getvalue()


def test_inert_breaks_both_command_syntaxes() -> None:
    assert commands("::error::x\n  ::warning::y\na ##[error]z") != []  # the model sees them
    for line in ("::error::x", "  ::warning::y", "a ##[error]z", "\u2003::notice::n"):
        assert commands(inert(line)) == []
    assert inert("plain: text :: here") == "plain: text :: here"  # nothing else changes


def test_console_info_quotes_without_issuing_commands() -> None:
    out = io.StringIO()
    console = Console(out)
    console.info("::error::a")
    console.info("file x ##[warning]b")
    console.text.write("▶ task ##[error title=t;]c\n")
    assert commands(out.getvalue()) == []
    assert "##\u200b[warning]b" in out.getvalue()


def test_groups_and_masks() -> None:
    out = io.StringIO()
    console = Console(out)
    console.mask("line one\nline two")
    with console.group("task\n::error::x"):
        console.untrusted("::error::no")
    names = [(c.name, c.data) for c in commands(out.getvalue())]
    assert names == [
        ("add-mask", "line one"),
        ("add-mask", "line two"),
        ("group", "task ::error::x"),
        ("endgroup", ""),
    ]


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), st.text()))
def test_outputs_parse_back_whatever_their_value(values: dict[str, str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out"
        write_outputs(path, values)
        parsed = outputs(path.read_bytes().decode("utf-8"))
    # A CR cannot survive the runner's line reader; it is written as a LF.
    assert parsed == {k: v.replace("\r\n", "\n").replace("\r", "\n") for k, v in values.items()}


def test_annotations_are_capped_per_type_with_a_note() -> None:
    out = io.StringIO()
    notes = Annotations(Console(out), "see the summary")
    for i in range(25):
        notes.add(Annotation("error", f"e{i}", file="wf.toml", line=i + 1))
    for i in range(3):
        notes.add(Annotation("warning", f"w{i}"))
    notes.flush()
    found = commands(out.getvalue())
    errors = [c for c in found if c.name == "error"]
    assert len(errors) == ANNOTATIONS_PER_TYPE
    assert errors[-1].data == "16 more like this: see the summary"
    assert [c.data for c in found if c.name == "warning"] == ["w0", "w1", "w2"]


def test_annotation_messages_are_cut_to_the_runner_limit() -> None:
    out = io.StringIO()
    Console(out).annotation("error", "x" * 10_000)
    (c,) = commands(out.getvalue())
    assert len(c.data) == 4096


def test_summary_over_the_limit_gets_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "summary"
    path.write_bytes(b"x" * (SUMMARY_BYTES - 10))
    assert not append_summary(path, "a long summary", "short")
    assert path.read_bytes().endswith(b"short")
    assert append_summary(tmp_path / "fresh", "ok", "no")
