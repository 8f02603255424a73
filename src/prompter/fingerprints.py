"""Task fingerprints: what a task's definition was when its record was made.

A task whose definition (or any upstream definition) changed since it passed runs again: each
`TaskRecord` carries the fingerprint of its task, compared with `fingerprints(workflow)` now.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Final

from .config import Workflow

FINGERPRINT_VERSION: Final = 2  # bump when the fingerprinted fields change: re-runs everything

# What decides what the agent is asked and how, and what counts as passing. Not the retry and
# transition policy (max_attempts, on_success, on_failure): a pass stays a pass under them.
_FINGERPRINTED = (
    "name",
    "prompt",
    "verify_command",
    "verify_success_code",
    "system_prompt",
    "agent",
    "agent_command",
    "timeout",
    "verify_timeout",
    "resume_previous_session",
    "model",
    "max_turns",
    "allowed_tools",
    "disallowed_tools",
    "permission_mode",
)
_AS_FLOAT = frozenset({"timeout", "verify_timeout"})  # `600` and `600.0` are the same limit


def fingerprints(workflow: Workflow) -> dict[str, str]:
    """sha256 of each task's definition and (graph mode) its dependencies' fingerprints.

    Dependencies enter by fingerprint, so a change anywhere upstream changes every downstream
    fingerprint, and nothing depends on file order or on the order of `depends_on`. One pass in
    topological order: O(V + E) hashing (plus sorting each task's dependency fingerprints).
    """
    tasks = workflow.tasks
    deps = workflow.graph.deps
    out = [""] * len(tasks)
    workdir = _working_directory_as_written(workflow)
    for i in workflow.graph.order:
        task = tasks[i]
        definition: dict[str, Any] = {"v": FINGERPRINT_VERSION}
        for key in _FINGERPRINTED:
            value = getattr(task, key)
            definition[key] = float(value) if key in _AS_FLOAT and value is not None else value
        definition["agent_env"] = {**workflow.settings.agent_env, **task.agent_env}
        definition["working_directory"] = workdir
        if deps[i]:  # roots hash alike in both modes: adding `depends_on = []` re-runs nothing
            definition["deps"] = sorted(out[d] for d in deps[i])
        out[i] = _sha256_of_json(definition)
    return {task.name: out[i] for i, task in enumerate(tasks)}


def _working_directory_as_written(workflow: Workflow) -> str:
    """`working_directory` as written; without one, the default relative to the workflow file's
    folder: `.` for a file at the root of its repository (or outside git), as before the default
    became the repository's root, so that a pass there still stands; `..` for one a folder down
    (where the tasks ran in the file's folder before, and so run again)."""
    written = workflow.settings.working_directory
    if written is not None:
        return written
    return Path(
        os.path.relpath(workflow.workdir, workflow.path.absolute().parent.resolve())
    ).as_posix()


_HASHED_IN_PIECES = 1 << 16  # characters: a longer string value is escaped and hashed piecewise


def _sha256_of_json(definition: dict[str, Any]) -> str:
    """sha256 of `json.dumps(definition, sort_keys=True, separators=(",", ":"))`, UTF-8 (ASCII:
    `ensure_ascii`). A long string value (a prompt of many MB) is escaped and hashed a piece at
    a time: made whole, the JSON, its parts and its bytes held about three copies of it."""
    if all(not isinstance(v, str) or len(v) <= _HASHED_IN_PIECES for v in definition.values()):
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    # The same bytes: `{`, then `"key":value` joined by `,` in key order, then `}`. Escaping is
    # per code point, so the escaped pieces of a string are the pieces of the escaped string.
    digest = hashlib.sha256(b"{")
    for n, key in enumerate(sorted(definition)):
        value = definition[key]
        digest.update(b',"' if n else b'"')
        digest.update(json.encoder.encode_basestring_ascii(key)[1:].encode())
        digest.update(b":")
        if isinstance(value, str) and len(value) > _HASHED_IN_PIECES:
            digest.update(b'"')
            for start in range(0, len(value), _HASHED_IN_PIECES):
                piece = value[start : start + _HASHED_IN_PIECES]
                digest.update(json.encoder.encode_basestring_ascii(piece)[1:-1].encode())
            digest.update(b'"')
        else:
            digest.update(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
    digest.update(b"}")
    return digest.hexdigest()
