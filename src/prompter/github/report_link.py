"""The step summary's last line: a link to the report artifact, which holds `report.html`.

The URL is made from the runner's own variables (server, repository, run id) and the id the
upload returned; each is checked for the shape GitHub gives it, so that nothing else ends up in
the markdown. Without them (not on a runner, an upload that failed) there is no line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .commands import append_summary

_SERVER = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]+)?")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_ID = re.compile(r"[0-9]{1,20}")


def artifact_url(env: Mapping[str, str], artifact_id: str) -> str | None:
    """The artifact's page on the run, or None when a part is missing or not as GitHub makes it."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repository, run = env.get("GITHUB_REPOSITORY", ""), env.get("GITHUB_RUN_ID", "")
    parts = ((_SERVER, server), (_REPOSITORY, repository), (_ID, run), (_ID, artifact_id))
    if not all(pattern.fullmatch(value) for pattern, value in parts):
        return None
    return f"{server}/{repository}/actions/runs/{run}/artifacts/{artifact_id}"


def link_markdown(url: str) -> str:
    return (
        f"\n**[The full report]({url})**: `report.html` in the report artifact, one file that "
        "opens in any browser, offline: the dependency graph, the timeline and every attempt.\n"
    )


def append_link(env: Mapping[str, str], artifact_id: str) -> bool:
    """Append the link to the step summary; whether it was (OSError when it cannot be)."""
    target, url = env.get("GITHUB_STEP_SUMMARY"), artifact_url(env, artifact_id)
    if not target or url is None:
        return False
    text = link_markdown(url)
    return append_summary(Path(target), text, "")
