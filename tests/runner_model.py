"""What GitHub's runner makes of a step's output and file commands (a model for tests).

Mirrors actions/runner's ActionCommandManager and file-command parsing: commands are lines that
start with `::` (after leading whitespace), `::stop-commands::TOKEN` disables them until a line
`::TOKEN::`, and GITHUB_OUTPUT holds `name=value` lines or `name<<DELIM` heredocs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Command:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def _unescape(text: str, prop: bool = False) -> str:
    text = text.replace("%0D", "\r").replace("%0A", "\n")
    if prop:
        text = text.replace("%3A", ":").replace("%2C", ",")
    return text.replace("%25", "%")


def commands(output: str) -> list[Command]:
    found: list[Command] = []
    stop_token: str | None = None
    for raw in output.split("\n"):  # the runner splits on newlines only (not str.splitlines)
        line = raw.removesuffix("\r").lstrip()  # leading blanks: still a command, to be safe
        if stop_token is not None:
            if line.rstrip() == f"::{stop_token}::":
                stop_token = None
            continue
        if not line.startswith("::"):
            continue
        end = line.find("::", 2)
        if end < 0:
            continue
        head, data = line[2:end], line[end + 2 :]
        name, _, props = head.partition(" ")
        if name == "stop-commands":
            stop_token = data
            continue
        properties = {}
        for pair in filter(None, props.split(",")):
            key, _, value = pair.partition("=")
            properties[key] = _unescape(value, prop=True)
        found.append(Command(name, properties, _unescape(data)))
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
