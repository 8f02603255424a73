"""Workflow files the loader tests write, and the errors the loader finds in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from prompter.config import load_workflow
from prompter.diagnostics import WorkflowError


def write(tmp_path: Path, text: str | bytes, name: str = "wf.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    return [(d.line, d.message) for d in caught.value.errors]
