#!/usr/bin/env bash
# Installs prompter from this action's own source (the folder above host/) into a virtual
# environment outside the workspace: under the runner's tool cache (kept between jobs on a
# self-hosted runner), keyed by a hash of the source and the interpreter, reused when present.
# Sets the step output `bin`, the environment's bin folder.
set -euo pipefail
src="$(cd "$GITHUB_ACTION_PATH/.." && pwd)"
python="$(command -v python3)"
version="$(python3 -c 'import platform; print(platform.python_version())')"
key="$(
  {
    printf '%s %s\n' "$python" "$version"
    cd "$src"
    find pyproject.toml src -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
)"
root="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/prompter-action"
venv="$root/$key"
mkdir -p "$root"
# Two jobs of a self-hosted runner sharing the tool cache: one installs, the other waits.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$root/$key.lock"
  flock 9
fi
if [ -x "$venv/bin/prompter-action" ] && [ -e "$venv/.complete" ]; then
  echo "prompter-action: reusing the environment $venv"
else
  started=$SECONDS
  rm -rf "$venv"
  # Built from a copy: pip would leave build/ and *.egg-info in the source, which can be the
  # workspace (`uses: ./host`).
  build="$(mktemp -d)"
  trap 'rm -rf "$build"' EXIT
  cp -R "$src/pyproject.toml" "$src/README.md" "$src/src" "$build/"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$build"
  touch "$venv/.complete"
  echo "prompter-action: installed $("$venv/bin/prompter" --version) in $venv ($((SECONDS - started)) s)"
fi
echo "bin=$venv/bin" >>"$GITHUB_OUTPUT"
