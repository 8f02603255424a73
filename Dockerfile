# The prompter-action container. The runner builds this file on every job that uses the action
# (`runs.image: Dockerfile` in action.yml); `docker build -t prompter .` and a plain `docker run`
# reproduce a CI run locally (see the README).
#
# BASE_IMAGE: any Debian-like image with python3 >= 3.11 and the venv module. The default is the
# official slim image (python at /usr/local/bin); the tests build on a local Debian bookworm
# image (python3 at /usr/bin), so nothing below assumes where python3 lives.
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ARG VERSION=dev
LABEL org.opencontainers.image.title="prompter-action" \
      org.opencontainers.image.description="Run AI coding agents over a dependency graph of tasks, each checked by a shell command." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

# git: agents and verify commands work on a git checkout. tini: the container's PID 1 (below).
# Not pinned: the version follows the base image's Debian release and its security updates; a
# pin would break with every point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory /github/workspace

# The package and its dependencies in a virtual environment at a fixed absolute path, so the
# entrypoint does not depend on PATH or on where the base image keeps python. The wheel of
# claude-agent-sdk bundles the Claude Code CLI.
COPY pyproject.toml README.md /tmp/prompter-src/
COPY src /tmp/prompter-src/src
# The package is installed from this source tree; its dependencies' ranges are in pyproject.toml.
# hadolint ignore=DL3013
RUN python3 -m venv /opt/prompter \
 && /opt/prompter/bin/pip install --no-cache-dir --disable-pip-version-check /tmp/prompter-src \
 && rm -rf /tmp/prompter-src

# Agent and verify output reaches the job log as it is written.
ENV PYTHONUNBUFFERED=1

# No USER and no WORKDIR: the runner starts the container as root with
# --workdir /github/workspace, and the entrypoint relies on that contract.
# The runner starts the entrypoint as PID 1 (no --init), which inherits every process an agent
# leaves behind: tini reaps them (prompter reaps only its own children) and passes signals on.
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/prompter/bin/prompter-action"]
