"""The workflow file: TOML -> typed `Workflow`, or every problem at once as located diagnostics.

`schema.py` holds the pydantic models (keys, types, defaults) and `Workflow`; `loader.py` reads,
parses and checks a file in phases, collecting every problem; `messages.py` words them.
"""

from .loader import MAX_FILE_BYTES, TOP_LEVEL_KEYS, load_workflow
from .messages import format_diagnostics, worktree_path_problem
from .schema import (
    CLAUDE_KEYS,
    FAILURE_KEYWORDS,
    INHERITED_KEYS,
    MAX_CHECK_INTERVAL_S,
    MAX_PROCESS_STRING_BYTES,
    MIN_TIMEOUT_S,
    PLACEHOLDERS,
    RESERVED_NAMES,
    SUCCESS_KEYWORDS,
    AgentKind,
    Isolation,
    Mode,
    PermissionMode,
    Settings,
    Task,
    Workflow,
    with_settings,
)

__all__ = [
    "CLAUDE_KEYS",
    "FAILURE_KEYWORDS",
    "INHERITED_KEYS",
    "MAX_CHECK_INTERVAL_S",
    "MAX_FILE_BYTES",
    "MAX_PROCESS_STRING_BYTES",
    "MIN_TIMEOUT_S",
    "PLACEHOLDERS",
    "RESERVED_NAMES",
    "SUCCESS_KEYWORDS",
    "TOP_LEVEL_KEYS",
    "AgentKind",
    "Isolation",
    "Mode",
    "PermissionMode",
    "Settings",
    "Task",
    "Workflow",
    "format_diagnostics",
    "load_workflow",
    "with_settings",
    "worktree_path_problem",
]
