"""The loader's wording: one sentence per pydantic error in the words of the TOML file, what is
wrong with a task name or a `worktree_copy` path, and the small helpers messages share."""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..diagnostics import BIDI, CONTROL, Diagnostic, did_you_mean
from .schema import ENV_NAME_PATTERN, RESERVED_NAMES, Settings


def format_diagnostics(diagnostics: Sequence[Diagnostic]) -> str:
    return "\n".join(d.format() for d in diagnostics)


def file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a pipe or FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "another kind of file")


def worktree_path_problem(item: str) -> str | None:
    """Why a `worktree_copy` / `worktree_link` entry is not a path inside the repository (the
    rest of a message that starts with the entry), or None. Only the text is judged here; what
    the path leads to on disk is checked when a run starts (`worktrees.confined_source`)."""
    inside = "name a path inside the repository, relative to its root"
    if not item:
        return f"is empty: {inside}"
    if item.startswith("/"):
        return f"is an absolute path: {inside}"
    parts = [part for part in item.split("/") if part not in ("", ".")]
    if ".." in parts:
        return f"has a `..` component, which can lead out of the repository: {inside}"
    if not parts:
        return f"is the repository itself: {inside}"
    if any(part.casefold() == ".git" for part in parts):
        return "is git's own data (`.git`), which a task's worktree must not copy or share"
    return None


def name_problem(name: str) -> str | None:
    if not name.strip():
        return "task name is empty"
    if name in RESERVED_NAMES:
        return (
            f"`{name}` is a reserved word and cannot be a task name "
            f"(reserved: {quoted(sorted(RESERVED_NAMES))}, as they are transition keywords)"
        )
    if name != name.strip():
        return f"task name {name!r} has leading or trailing white space"
    if m := _CONTROL.search(name):
        return f"task name {name!r} contains a control character (U+{ord(m.group()):04X})"
    if m := _BIDI.search(name):
        return (
            f"task name {name!r} contains a bidirectional formatting character "
            f"(U+{ord(m.group()):04X}), which can reorder how it and the text around it display"
        )
    if len(name) > 200:
        return f"task name is {len(name)} characters long; the limit is 200"
    return None


_CONTROL = re.compile(f"[{CONTROL}]")
_BIDI = re.compile(f"[{BIDI}]")


def chain(names: Sequence[str], keep: int = 10) -> str:
    """`a -> b -> c`, shortened in the middle past 2 * `keep` + 1 names (a cycle can go through
    thousands of tasks: one message line, not hundreds of kilobytes)."""
    if len(names) <= 2 * keep + 1:
        return " -> ".join(names)
    more = len(names) - 2 * keep
    return " -> ".join([*names[:keep], f"… ({more} more) …", *names[-keep:]])


def quoted(words: Sequence[str]) -> str:
    return ", ".join(f'"{w}"' for w in words)


_TOML_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a float",
    bool: "a boolean",
    dict: "a table",
    list: "an array",
}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "tuple_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "int_from_float": "an integer",
}


def _env_name_problem(name: str) -> str:
    if not name:
        return "`agent_env` has an empty variable name"
    if "=" in name:
        # execve takes `NAME=value` strings: the first `=` would end the name.
        return f"`agent_env` variable name {name!r} contains `=`, which cannot be in a name"
    return f"`agent_env` variable name {name!r} contains a NUL character (U+0000)"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(loc: Sequence[Any]) -> str:
    """A pydantic location as the TOML file writes it: `agent_command[1]`, `agent_env.PATH`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]" if out else ""  # a leading index is the task's: not in the file
        elif part != "[key]":  # pydantic's marker for an error in a table's key
            text = part if _BARE_KEY.fullmatch(part) else repr(part)
            out += f".{text}" if out else text
    return out


def _describe(value: Any) -> str:
    kind = next((v for t, v in _TOML_TYPES.items() if type(value) is t), "a date/time")
    if kind == "a date/time":  # as the file writes it, not as Python's repr
        shown = value.isoformat() if hasattr(value, "isoformat") else str(value)
    else:
        shown = _number(value) if kind == "an integer" else repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} ({shown})" if kind not in ("a table", "an array") else kind


def _number(value: Any) -> str:
    if type(value) is int and value.bit_length() > 64:
        # repr() refuses ints of over 4300 digits, and a hexadecimal TOML integer can be one
        return f"{value.bit_length()} bits long"
    return f"{value:g}" if isinstance(value, float) else repr(value)


def explain(error: Mapping[str, Any], model: type[BaseModel]) -> str:
    """One sentence for one pydantic error, in the words of the TOML file."""
    loc = error["loc"]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    keys = [p for p in loc if isinstance(p, str)]
    key = keys[-1] if keys else "value"
    if len(loc) > 1 and isinstance(loc[-1], int):
        key = f"{loc[-2]}[{loc[-1]}]" if isinstance(loc[-2], str) else key
    if kind == "missing":
        return f"missing required key `{key}`"
    if kind == "extra_forbidden":
        if model is Settings and loc == ("tasks",):
            return (
                "`tasks` is inside [settings]: every key after a [settings] header belongs to it; "
                "write tasks as [[tasks]] tables, or put `tasks = [...]` before [settings]"
            )
        hint = did_you_mean(str(loc[-1]), model.model_fields)
        return f"unknown key `{loc[-1]}`{hint}"
    if kind in _EXPECTED:
        return f"`{key}` must be {_EXPECTED[kind]}, not {_describe(error.get('input'))}"
    if kind == "finite_number":
        return f"`{key}` must be a finite number, not {_number(error.get('input'))}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == ENV_NAME_PATTERN:
        return _env_name_problem(error.get("input", ""))
    if kind == "string_pattern_mismatch":  # NO_NUL_PATTERN, the only other
        return (
            f"`{_dotted(loc)}` contains a NUL character (U+0000), which no process argument, "
            "environment variable or path can hold"
        )
    if kind == "literal_error":
        return f"`{key}` must be one of {ctx.get('expected')}, not {error.get('input')!r}"
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("≤", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, name = bounds[kind]
        return f"`{key}` must be {sign} {_number(ctx.get(name))}, not {_number(error.get('input'))}"
    if kind in ("too_short", "string_too_short"):
        return f"`{key}` must not be empty"
    return f"`{key}`: {error.get('msg', 'invalid value')}"
