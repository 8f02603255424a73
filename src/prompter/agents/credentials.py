"""Whether Claude Code will find credentials, checked before any agent starts.

Claude Code authenticates with, first match wins: a cloud provider (`CLAUDE_CODE_USE_BEDROCK`,
`CLAUDE_CODE_USE_VERTEX`, `CLAUDE_CODE_USE_FOUNDRY`), `ANTHROPIC_AUTH_TOKEN`,
`ANTHROPIC_API_KEY`, an `apiKeyHelper` from its settings, `CLAUDE_CODE_OAUTH_TOKEN`, then the
login `claude /login` saved (`$CLAUDE_CONFIG_DIR/.credentials.json`, else
`~/.claude/.credentials.json`; the Keychain on macOS). Its settings files — user
(`$CLAUDE_CONFIG_DIR` or `~/.claude`), project (`.claude/settings.json`,
`.claude/settings.local.json`) and managed — can also set those variables in their `env`.

This check only looks for any of them, in the environment the agent gets (`agent_env` and, as
root, the user it runs as included), never at whether they work: an expired key still fails the
first attempt, as Claude Code reports it. It errs on the side of letting a run start: what it
cannot see (the macOS Keychain) counts as present.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

VARIABLES = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
PROVIDERS = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")
_TRUE = frozenset({"1", "true", "yes", "on"})  # what Claude Code takes as a set flag
MANAGED_SETTINGS = (
    Path("/etc/claude-code/managed-settings.json"),
    Path("/Library/Application Support/ClaudeCode/managed-settings.json"),
)

MISSING = (
    "no credentials for Claude Code{who}: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN "
    "(in the GitHub Action: the inputs `anthropic_api_key` / `claude_code_oauth_token`; "
    "ANTHROPIC_AUTH_TOKEN for a gateway), in the environment or in `agent_env`, or log in with "
    "`claude /login` (saved in $CLAUDE_CONFIG_DIR or ~/.claude/.credentials.json), or set an "
    "`apiKeyHelper` in Claude Code's settings, or use Bedrock, Vertex or Foundry "
    "(CLAUDE_CODE_USE_BEDROCK / CLAUDE_CODE_USE_VERTEX / CLAUDE_CODE_USE_FOUNDRY)"
)


def _from_env(env: Mapping[str, str]) -> str | None:
    for name in PROVIDERS:
        if env.get(name, "").strip().lower() in _TRUE:
            return name
    for name in VARIABLES:
        if env.get(name, "").strip():
            return name
    return None


def _json_object(path: Path) -> dict[str, object] | None:
    """The file's JSON object; None when absent, unreadable or not an object."""
    try:  # without blocking: a FIFO there is not waited on, only regular files are read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = json.loads(file.read(1 << 20) or b"null")  # settings files are small
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _from_settings(path: Path) -> str | None:
    settings = _json_object(path)
    if settings is None:
        return None
    helper = settings.get("apiKeyHelper")
    if isinstance(helper, str) and helper.strip():
        return f"apiKeyHelper in {path}"
    env = settings.get("env")
    if isinstance(env, dict):
        found = _from_env({k: v for k, v in env.items() if isinstance(v, str)})
        if found:
            return f"{found} in {path}"
    return None


def _config_dirs(env: Mapping[str, str]) -> list[Path]:
    dirs = []
    if env.get("CLAUDE_CONFIG_DIR"):
        dirs.append(Path(env["CLAUDE_CONFIG_DIR"]).expanduser())
    home = env.get("HOME") or str(Path.home())
    dirs.append(Path(home) / ".claude")
    return dirs


def _logged_in(env: Mapping[str, str]) -> str | None:
    if sys.platform == "darwin":  # the login is in the Keychain, which is not looked at
        return "the macOS Keychain (not checked)"
    for folder in _config_dirs(env):
        path = folder / ".credentials.json"
        login = _json_object(path)
        if login and any(login.values()):
            return str(path)
    home = Path(env.get("HOME") or str(Path.home()))
    # Claude Code's global config: in $CLAUDE_CONFIG_DIR when set, else ~/.claude.json.
    configs = [Path(env["CLAUDE_CONFIG_DIR"]).expanduser()] if env.get("CLAUDE_CONFIG_DIR") else []
    for legacy in [*(c / ".claude.json" for c in configs), home / ".claude.json"]:
        saved = _json_object(legacy)  # an API key an older Claude Code saved at its login
        if saved and isinstance(saved.get("primaryApiKey"), str) and saved["primaryApiKey"]:
            return f"primaryApiKey in {legacy}"
    return None


def _project_settings(workdir: Path) -> Iterable[Path]:
    for folder in (workdir, *workdir.parents):
        yield folder / ".claude" / "settings.json"
        yield folder / ".claude" / "settings.local.json"


def credentials(env: Mapping[str, str], workdir: Path) -> str | None:
    """Where Claude Code, started with `env` in `workdir`, would find credentials (a short
    description), or None when it would find none."""
    if found := _from_env(env):
        return found
    settings = [d / "settings.json" for d in _config_dirs(env)]
    settings += [*_project_settings(workdir), *MANAGED_SETTINGS]
    for path in settings:
        if found := _from_settings(path):
            return found
    return _logged_in(env)
