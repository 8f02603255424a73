"""What GitHub's runner makes of a step's output and file commands (a model for tests).

Mirrors actions/runner's ActionCommandManager and ActionCommand parsing. The output is split
into lines as .NET's ReadLine does (CR, LF or CR LF). A line is a command in either syntax:
`::name k=v,k=v::data` when it starts with `::` after leading white space, or the old
`##[name k=v;k=v]data`, found anywhere in the line; only registered command names count, in any
case. `::stop-commands::TOKEN` disables every command until one named TOKEN (in either syntax).
GITHUB_OUTPUT holds `name=value` lines or `name<<DELIM` heredocs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REGISTERED = {
    "add-mask", "add-matcher", "add-path", "debug", "echo", "endgroup", "error", "group",
    "notice", "remove-matcher", "save-state", "set-env", "set-output", "stop-commands", "warning",
}  # fmt: skip


@dataclass
class Command:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def _unescape(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for plain, escaped in pairs:
        text = text.replace(escaped, plain)
    return text


_DATA = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))
_PROPERTY = (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25"))
_LEGACY = ((";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D"), ("%", "%25"))


def _parse_v2(line: str, registered: set[str]) -> Command | None:
    line = line.lstrip()
    if not line.startswith("::"):
        return None
    end = line.find("::", 2)
    if end < 0:
        return None
    name, _, props = line[2:end].partition(" ")
    if name.lower() not in registered:
        return None
    properties = {}
    for pair in filter(None, props.strip().split(",")):
        key, _, value = pair.partition("=")
        if key and value:
            properties[key] = _unescape(value, _PROPERTY)
    return Command(name, properties, _unescape(line[end + 2 :], _DATA))


def _parse_v1(line: str, registered: set[str]) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    name, _, props = line[start + 3 : end].partition(" ")
    if name.lower() not in registered:
        return None
    properties = {}
    for pair in filter(None, props.split(";")):
        key, _, value = pair.partition("=")
        if key and value:
            properties[key] = _unescape(value, _LEGACY)
    return Command(name, properties, _unescape(line[end + 1 :], _LEGACY))


def commands(output: str) -> list[Command]:
    found: list[Command] = []
    registered = set(REGISTERED)
    stop_token: str | None = None
    for line in re.split(r"\r\n|\r|\n", output):
        parsed = _parse_v2(line, registered) or _parse_v1(line, registered)
        if parsed is None:
            continue
        if stop_token is not None:
            if parsed.name.lower() == stop_token.lower():
                registered.discard(stop_token.lower())
                stop_token = None
            continue
        if parsed.name == "stop-commands":
            stop_token = parsed.data
            registered.add(stop_token.lower())
            continue
        found.append(parsed)
    return found


def outputs(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line:
            name, delimiter = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delimiter:  # IndexError if never closed: the runner fails too
                body.append(lines[i])
                i += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values
