#!/usr/bin/env bash
# The host action's first step: prompter needs python3 >= 3.11 with its venv module on the runner.
set -uo pipefail
if command -v python3 >/dev/null 2>&1 \
  && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "prompter-action: $(command -v python3) $(python3 -c 'import platform; print(platform.python_version())')"
  exit 0
fi
if command -v python3 >/dev/null 2>&1; then
  found="$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?') at $(command -v python3)"
else
  found="no python3 on PATH"
fi
echo "::error title=prompter-action (host)::needs python3 >= 3.11 with the venv module on the runner (found: ${found}); add a step 'uses: actions/setup-python@v6' with 'python-version: \"3.12\"' before this action"
exit 1
