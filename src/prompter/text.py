"""Untrusted text made safe to show or store: one module, one name per treatment.

Task names, agent and process output, reasons and file names may hold anything: terminal escape
sequences, control characters, lone surrogates (from bytes decoded with surrogateescape),
bidirectional overrides. Each function here does one thing to such text, and its name says what:

- `escape_controls`: controls and bidi characters written as backslash escapes (diagnostics).
- `mask_controls`: each of those characters replaced by one mask character.
- `fold_lines`: every CR and LF becomes a space, so the text is one line.
- `console_line`: `fold_lines`, then `escape_controls`: what a console shows (events, progress).
- `strip_terminal_codes`: escape sequences and controls other than tab and newline removed, CR LF
  and lone CR turned into LF (process output for logs).
- `scrub_surrogates`: lone surrogates become U+FFFD, so the text encodes as UTF-8 (records).
- `xml_safe`: a tail without ANSI codes, controls XML 1.0 forbids, bidi reordering characters
  or surrogates (reports).
- `single_line`: whitespace runs become one space, then `truncate` (one-line excerpts).
- `report_line`: `xml_safe` text as one bounded line (report cells, notes).

Only `re` is imported: the CLI imports this at start-up.
"""

from __future__ import annotations

import re

# What must not reach a console raw, as character-class bodies. CONTROL: C0 and C1 controls and
# DEL (terminal escapes, line breaks) and the line and paragraph separators. BIDI: the
# bidirectional formatting characters, which reorder how the text around them displays (the
# "Trojan Source" trick); the joiners U+200C and U+200D are not among them (Persian, emoji).
CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
BIDI_REORDERING = r"\u202a-\u202e\u2066-\u2069"  # embeddings, overrides, isolates
BIDI = r"\u061c\u200e\u200f" + BIDI_REORDERING  # and the marks, which only hint direction

_UNSAFE = re.compile(f"[{CONTROL}{BIDI}]")

# Escape sequences as ECMA-48 defines them, in 7-bit (ESC-introduced) and 8-bit (C1) form.
# String sequences (OSC, DCS, SOS, PM, APC) are removed only when terminated: an unterminated
# introducer would otherwise swallow everything after it. Their body excludes ESC, so each scan
# stops at the next ESC and the whole pass stays linear.
_TERMINAL_CODES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"  # CSI: colours, cursor movement
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"  # OSC etc.
    r"|\x1b[\x20-\x2f]+[\x30-\x7e]"  # nF: character set selection such as ESC ( B
    r"|\x1b[\x30-\x7e]"  # Fp/Fe/Fs: two-character sequences such as ESC 7, ESC =
)
# C0 except \t and \n, DEL, C1; also any ESC left over from a malformed sequence. And the
# bidirectional embeddings, overrides and isolates: in a log they would reorder what a reader
# sees (the marks U+200E/U+200F, which only hint direction, stay).
_TERMINAL_CONTROLS = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_REORDERING}]")
_CR = re.compile(r"\r\n?")

# For reports: CSI, OSC (ended by BEL or ST) and two-character escape sequences, 7-bit only. An
# OSC that is never ended (a literal `ESC ]` in a diff, a program killed mid-sequence) stops at
# the end of its line: it must not swallow the rest of the output, where the failure usually is.
# Unlike `_TERMINAL_CODES` it removes an unended OSC up to the line's end; the reports' tests
# and readers rely on that, so the two stay apart.
_REPORT_CODES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[@-Z\\-_])"
)
# What XML 1.0 forbids (C0 controls but tab and newline; U+FFFE/U+FFFF), the C1 controls, and
# the bidi embeddings, overrides and isolates: in a rendered report they would reorder what a
# reader sees around them ("Trojan Source"), as in a log (`_TERMINAL_CONTROLS`).
_XML_FORBIDDEN = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff{BIDI_REORDERING}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def escape_controls(text: str) -> str:
    """`text` with each control, line/paragraph separator and bidi character written as its
    backslash escape (`\\x1b`, `\\n`, `\\u202e`): what it says stays visible, none of it acts."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def mask_controls(text: str, mask: str) -> str:
    """`text` with each character `escape_controls` would escape replaced by `mask` (one column
    for one character, for a caret under a column)."""
    return _UNSAFE.sub(mask, text)


def fold_lines(text: str) -> str:
    """`text` on one line: each CR and each LF becomes a space (CR LF two)."""
    return text.replace("\r", " ").replace("\n", " ")


def console_line(text: str) -> str:
    """Text for a console, as it is: one line (`fold_lines`), with terminal escapes, other
    control characters and bidirectional overrides written as escapes (`escape_controls`)."""
    return escape_controls(fold_lines(text))


def strip_terminal_codes(text: str) -> str:
    """Text a person can read in a log: terminal escape sequences and control characters other
    than newline and tab removed (bidi embeddings, overrides and isolates too), CR LF and lone
    CR turned into LF. An unended string sequence (OSC …) loses only its introducer."""
    text = _TERMINAL_CODES.sub("", text)
    text = _CR.sub("\n", text)
    return _TERMINAL_CONTROLS.sub("", text)


def scrub_surrogates(text: str) -> str:
    """`text` with each lone surrogate (from undecodable bytes) as U+FFFD: encodable as UTF-8.
    Returns `text` itself when there is none (the usual case costs one encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def xml_safe(text: str, last: int | None = None) -> str:
    """Printable text any XML or markdown writer can take: the `last` characters of `text`,
    without ANSI escapes, the control characters XML forbids or bidi embeddings, overrides and
    isolates; lone surrogates become U+FFFD;
    CR and CR LF become LF; tabs and newlines stay. Slices first, so a 100 MB string costs no
    more than its tail."""
    if last is not None and len(text) > last:
        text = text[len(text) - last :]
    text = _REPORT_CODES.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _XML_FORBIDDEN.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def truncate(text: str, limit: int, *, rstrip: bool = True) -> str:
    """`text` if at most `limit` characters, else its first `limit - 1` and "…" (with the white
    space before the "…" dropped when `rstrip`)."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    return (head.rstrip() if rstrip else head) + "…"


def single_line(text: str, limit: int, *, rstrip: bool = True) -> str:
    """`text` with every run of white space (line breaks too) as one space, no leading or
    trailing space, at most `limit` characters (`truncate`). Removes nothing else: clean first."""
    return truncate(_SPACES.sub(" ", text).strip(), limit, rstrip=rstrip)


def report_line(text: str | None, limit: int = 300) -> str:
    """`xml_safe` text on one line (`single_line`), at most `limit` characters; "" for None."""
    if not text:
        return ""
    return single_line(xml_safe(text[: limit * 4]), limit)
