"""The GitHub Actions workflow `prompter ci generate` writes for a grouping: one job per group,
`needs` as the grouping's reduced edges, and a final `prompter-merge` job.

Written as text, line by line, so the output is the same byte for byte for the same input (the
fingerprint check compares it whole). Values that come from the workflow file are written as
double-quoted YAML strings (JSON escapes are valid there); a value GitHub would evaluate
(`${{`) is refused, not escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..text import escape_controls
from .grouping import Grouping

MERGE_JOB = "prompter-merge"
DEFAULT_USES = "org/prompter-action@v1"
DEFAULT_RUNS_ON = "ubuntu-latest"
CHECKOUT = "actions/checkout@v7"
MAX_JOB_ID = 100
_UNSAFE_ID = re.compile(r"[^a-z0-9]+")
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./@-]*$")


class GenerateError(ValueError):
    """Something of the workflow or the options cannot be written into a CI workflow."""


@dataclass(frozen=True)
class CiOptions:
    workflow: str  # the workflow file's path from the repository root, with `/`
    uses: str = DEFAULT_USES
    runs_on: str = DEFAULT_RUNS_ON
    header: tuple[str, ...] = ()  # comment lines at the top, without `# `


def job_ids(names: Sequence[str]) -> list[str]:
    """`p-<name>` per group from its first task's name: lowercase, runs of anything but
    `a-z0-9` as one `-`, at most MAX_JOB_ID characters; a repeat gets `-2`, `-3` …"""
    taken: set[str] = {MERGE_JOB}
    ids = []
    for name in names:
        stem = "p-" + (_UNSAFE_ID.sub("-", name.lower()).strip("-") or "task")
        stem = stem[:MAX_JOB_ID].rstrip("-")
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            suffix = f"-{n}"
            candidate = stem[: MAX_JOB_ID - len(suffix)].rstrip("-") + suffix
        taken.add(candidate)
        ids.append(candidate)
    return ids


def quoted(value: str) -> str:
    """A double-quoted YAML string; refused if GitHub would evaluate part of it."""
    if "${{" in value:
        raise GenerateError(
            f"{value!r} holds `${{{{`, which GitHub would evaluate as an expression"
        )
    return json.dumps(value, ensure_ascii=False)


def scalar(value: str) -> str:
    """A path or reference: as it is when that is unambiguous, else quoted."""
    return value if _PLAIN.match(value) else quoted(value)


def tasks_value(names: Sequence[str]) -> str:
    """The action's `tasks` input: names separated by spaces, or one per line when a name
    holds a blank or a comma (the action splits a value with line breaks only at them)."""
    if any(" " in n or "," in n or "\t" in n for n in names):
        return quoted("".join(f"{n}\n" for n in names))
    return quoted(" ".join(names))


def render(names: Sequence[str], grouping: Grouping, options: CiOptions) -> str:
    """The workflow's text. `names` are the task names by index."""
    for name in names:
        if name != name.strip():
            raise GenerateError(
                f"task `{escape_controls(name)}`: a name with a leading or trailing blank "
                "cannot be passed to a job's `tasks` input"
            )
    ids = job_ids([names[g[0]] for g in grouping.groups])
    lines = [f"# {line}".rstrip() for line in options.header]
    lines += [
        "name: prompter",
        "on:",
        "  workflow_dispatch:",
        "  workflow_call:",
        "    secrets:",
        "      ANTHROPIC_API_KEY:",
        "        required: false",
        "permissions:",
        "  contents: read",
        "jobs:",
    ]
    for g, tasks in enumerate(grouping.groups):
        listed = ", ".join(escape_controls(names[t]) for t in tasks)
        lines.append(f"  # {len(tasks)} task{'s' * (len(tasks) != 1)}: {listed}")
        lines += _job(ids[g], [ids[n] for n in grouping.needs[g]], options)
        lines += _step(
            options,
            [
                ("tasks", tasks_value([names[t] for t in tasks])),
                ("fanout_job", ids[g]),
                ("fanout_imports", quoted(" ".join(ids[i] for i in grouping.imports(g)))),
                ("anthropic_api_key", "${{ secrets.ANTHROPIC_API_KEY }}"),
            ],
        )
    lines.append("  # the merge: every job's changes, one state, one report")
    lines += _job(MERGE_JOB, ids, options)
    lines += _step(options, [("fanout_merge", quoted(" ".join(ids)))])
    return "\n".join(lines) + "\n"


def _job(job: str, needs: Sequence[str], options: CiOptions) -> list[str]:
    lines = [f"  {job}:"]
    if needs:
        lines.append(f"    needs: [{', '.join(needs)}]")
        # A failed upstream job must not skip this one: it runs and records its tasks skipped.
        lines.append("    if: ${{ !cancelled() }}")
    lines += [
        f"    runs-on: {scalar(options.runs_on)}",
        "    steps:",
        f"      - uses: {CHECKOUT}",
        "        with:",
        "          persist-credentials: false",
    ]
    return lines


def _step(options: CiOptions, inputs: Sequence[tuple[str, str]]) -> list[str]:
    lines = [f"      - uses: {scalar(options.uses)}", "        with:"]
    lines.append(f"          workflow: {scalar(options.workflow)}")
    lines += [f"          {key}: {value}" for key, value in inputs]
    return lines
