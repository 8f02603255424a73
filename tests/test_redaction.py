"""Secrets are masked in what we write, also when a write splits them."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from prompter.redaction import MASK, RedactingWriter, Redactor

SECRET = "sk-ant-0123456789-secret"


def test_names_that_hold_secrets() -> None:
    env = {
        "ANTHROPIC_API_KEY": "a" * 20,
        "CLAUDE_CODE_OAUTH_TOKEN": "b" * 20,
        "GITHUB_TOKEN": "c" * 20,
        "DB_PASSWORD": "d" * 20,
        "MY_PAT": "e" * 20,
        "HOME": "/root/home/dir",
        "KEYBOARD": "f" * 20,
        "SHORT_TOKEN": "abc",  # too short to mask without masking ordinary text
    }
    r = Redactor.from_environ(env)
    text = " ".join(env.values())
    assert r.text(text) == " ".join([MASK] * 5 + ["/root/home/dir", "f" * 20, "abc"])


@given(st.binary(max_size=200), st.binary(max_size=200), st.lists(st.integers(1, 60), max_size=8))
def test_writer_masks_across_any_split(before: bytes, after: bytes, cuts: list[int]) -> None:
    data = before + SECRET.encode() + after + SECRET.encode()
    out = io.BytesIO()
    w = RedactingWriter(out, Redactor([SECRET]))
    pos = 0
    for cut in cuts:
        w.write(data[pos : pos + cut])
        pos += cut
    w.write(data[pos:])
    w.drain()
    expected = Redactor([SECRET]).data(data)
    assert out.getvalue() == expected
    assert SECRET.encode() not in out.getvalue()


def test_nothing_to_mask_passes_through_unbuffered() -> None:
    out = io.BytesIO()
    w = RedactingWriter(out, Redactor())
    w.write(b"abc")
    assert out.getvalue() == b"abc"


def test_a_multi_line_secret_is_masked_line_by_line() -> None:
    secret = "line-one-of-the-key\nline-two-of-the-key"
    r = Redactor([secret])
    printed = "begin\r\nline-one-of-the-key\r\nline-two-of-the-key\r\nend"  # other line breaks
    assert r.text(printed) == f"begin\r\n{MASK}\r\n{MASK}\r\nend"
    assert r.data(printed.encode()) == f"begin\r\n{MASK}\r\n{MASK}\r\nend".encode()
    assert r.text(secret) == MASK  # whole, one mask


def test_a_secret_that_is_not_utf8_is_masked_as_its_bytes() -> None:
    # os.environ carries undecodable bytes as surrogates (PEP 383)
    r = Redactor.from_environ({"X_TOKEN": "abc\udcffdefghij"})
    assert r.data(b"got abc\xffdefghij!") == f"got {MASK}!".encode()
    # readable() turns the byte into U+FFFD: that form is masked too
    assert r.text("got abc\ufffddefghij!") == f"got {MASK}!"
