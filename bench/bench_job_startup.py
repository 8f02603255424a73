"""What one CI job costs before its first task starts, per action kind, measured under act.

Each variant is a one-task workflow (command agent `true`, verify `true`) run as a one-job
GitHub workflow by nektos/act on podman's Docker API, set up as tests/test_container_fanout.py
and tests/test_container_host.py set it up (tests/containers.py: the local Debian base image,
the runner-like job image, act's flags). The job: `actions/checkout` (act copies the
repository in), the action step, a step that keeps prompter's state.json. Start-up is the act
job's wall time minus the run prompter recorded (state.json: the run's finished_at -
started_at); the action step's own time (act prints it) is reported beside it.

Variants (`--variants`, comma-separated):
  empty            checkout and `run: true`: the floor act and the job container cost here
  prebuilt         the released `@v1` path: action.yml pinned by scripts/pin-action-image to
                   `docker://` an image built once beforehand (untimed); nothing is built
  dockerfile       `uses: ./` building the Dockerfile, its layers in podman's cache (act would
                   reuse an image it built before: its tag is removed before each round)
  dockerfile-cold  `uses: ./` with a fresh line after FROM each round: apt-get and pip run again
                   (needs the Debian mirror and PyPI); the images it builds are removed after
  host-warm        `uses: ./host` with the runner's tool cache kept (the venv is reused)
  host-cold        `uses: ./host` with the tool cache emptied before each round (venv + pip)

Rounds are interleaved (every variant once per round) after `--warmup` untimed rounds of the
other variants, which fill the layer cache and the tool cache; medians are reported.
Not measured: a GitHub-hosted runner's allocation and image pull from GHCR (see bench/README.md).
Needs root, podman, runc and debootstrap, like the container tests.
Usage: python bench/bench_job_startup.py [--variants a,b] [--rounds 3] [--warmup 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.containers: the container tests' podman and act helpers

from tests.containers import (  # noqa: E402
    ACT_IMAGE,
    ACTION_TAG,
    BUILD_TIMEOUT,
    act_binary,
    action_image,
    base_image,
    commit_all,
    copy_of_checkout,
    docker_api,
    image_id,
    job_image,
    podman,
)

from common import emit, log  # noqa: E402

VARIANTS = ["empty", "prebuilt", "dockerfile", "dockerfile-cold", "host-warm", "host-cold"]
DEFAULT_VARIANTS = "empty,prebuilt,dockerfile,host-warm,host-cold,dockerfile-cold"
PINNED = "localhost/prompter-bench-action"  # the "released" image, tagged 0.0.0
STEP = "Prompter action"
FLOW = """\
[settings]
agent = "command"
agent_command = ["true"]

[[tasks]]
name = "one"
prompt = "nothing to do"
verify_command = "true"
depends_on = []
"""
ACTION_STEP = """\
      - name: Prompter action
        id: prompter
        uses: {uses}
        with:
          workflow: flows/one.toml
          upload_artifact: "false"
      - name: Keep the state
        env:
          STATE_PATH: ${{{{ steps.prompter.outputs.state_path }}}}
        run: cp "$STATE_PATH" /act-store/state.json
"""
EMPTY_STEP = """\
      - name: Prompter action
        run: "true"
      - name: Keep the state
        run: "true"
"""
JOB = """\
name: startup
on: push
jobs:
  startup:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
{steps}"""


@dataclass
class Sample:
    variant: str
    act_s: float  # the act job's wall time
    step_s: float | None  # the action step as act times it
    prompter_s: float  # the run prompter recorded
    startup_s: float  # act_s - prompter_s


def make_repo(root: Path, variant: str) -> Path:
    repo = root / variant / "repo"
    copy_of_checkout(repo)
    (repo / "flows").mkdir(exist_ok=True)
    (repo / "flows" / "one.toml").write_text(FLOW, "utf-8")
    uses = "./host" if variant.startswith("host") else "./"
    steps = EMPTY_STEP if variant == "empty" else ACTION_STEP.format(uses=uses)
    (repo / ".github" / "workflows").mkdir(parents=True, exist_ok=True)
    (repo / ".github" / "workflows" / "startup.yml").write_text(JOB.format(steps=steps), "utf-8")
    if variant == "prebuilt":  # what the release does to action.yml
        pin = [str(ROOT / "scripts" / "pin-action-image"), PINNED, "0.0.0", "action.yml"]
        subprocess.run(pin, cwd=repo, check=True)
    commit_all(repo)
    return repo


def bust_layer_cache(repo: Path) -> None:
    """A new line right after FROM: every later layer (apt-get, pip) is built again."""
    dockerfile = repo / "Dockerfile"
    text = dockerfile.read_text("utf-8")
    text = re.sub(r"^LABEL prompter-bench=.*\n", "", text, flags=re.M)
    text = text.replace(
        "FROM ${BASE_IMAGE}\n", f"FROM ${{BASE_IMAGE}}\nLABEL prompter-bench={uuid.uuid4().hex}\n"
    )
    dockerfile.write_text(text, "utf-8")
    commit_all(repo)


def go_seconds(text: str) -> float:
    """A Go duration as act prints it (`850ms`, `12.3s`, `1m2.5s`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|µs|us|ns|h|m|s)", text))


def step_seconds(log_text: str) -> float | None:
    found = re.findall(rf"Success - Main {STEP} \[([^\]]+)\]", log_text)
    return go_seconds(found[-1]) if found else None


def prompter_seconds(state_file: Path) -> float:
    if not state_file.exists():
        return 0.0
    runs = json.loads(state_file.read_text("utf-8"))["runs"]
    last = max(runs, key=lambda run: run["started_at"])
    return float(last["finished_at"] - last["started_at"])


@dataclass
class Bench:
    root: Path
    api_env: dict[str, str]
    job: str

    def act(self, variant: str, repo: Path) -> Sample:
        store = self.root / variant / "act-store"
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(parents=True)
        store.chmod(0o777)
        tools = self.root / variant / "toolcache"
        if variant == "host-cold":
            shutil.rmtree(tools, ignore_errors=True)
        tools.mkdir(exist_ok=True)
        home = self.root / "home"
        stand_ins = ROOT / "tests" / "act"
        start = time.monotonic()
        proc = subprocess.run(
            [act_binary(), "push", "-W", ".github/workflows/startup.yml", "-j", "startup",
             "-P", f"ubuntu-latest={self.job}", "--pull=false", "--container-daemon-socket", "-",
             "--rm",
             "--local-repository", f"actions/upload-artifact@v7={stand_ins / 'upload-artifact'}",
             "--local-repository",
             f"actions/download-artifact@v8={stand_ins / 'download-artifact'}",
             "--container-options", f"-v {store}:/act-store -v {tools}:/toolcache",
             "--env", "RUNNER_TOOL_CACHE=/toolcache"],
            cwd=repo, env=dict(self.api_env, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config")),
            capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        )  # fmt: skip
        act_s = time.monotonic() - start
        text = proc.stdout + proc.stderr
        (self.root / variant / "act.log").write_text(text, "utf-8")
        if proc.returncode != 0:
            raise SystemExit(f"{variant}: act exited {proc.returncode}\n{text[-6000:]}")
        prompter_s = prompter_seconds(store / "state.json")
        if variant != "empty" and prompter_s == 0.0:
            raise SystemExit(f"{variant}: no state.json from the run\n{text[-4000:]}")
        return Sample(
            variant=variant,
            act_s=round(act_s, 2),
            step_s=step_seconds(text),
            prompter_s=round(prompter_s, 2),
            startup_s=round(act_s - prompter_s, 2),
        )


def image_ids() -> set[str]:
    return set(podman("images", "-a", "-q", "--no-trunc").stdout.split())


def run_variant(bench: Bench, variant: str, repo: Path) -> Sample:
    if variant.startswith("dockerfile"):
        # act reuses an image tagged act-dockeraction:latest instead of building `uses: ./`:
        # without the tag it builds, from podman's layer cache where the layers are there.
        podman("untag", ACT_IMAGE, check=False)
    if variant != "dockerfile-cold":
        return bench.act(variant, repo)
    bust_layer_cache(repo)
    before = image_ids()
    try:
        return bench.act(variant, repo)
    finally:  # each cold build leaves ~700 MB of layers: drop what this build made
        for made in sorted(image_ids() - before, reverse=True):
            podman("rmi", made, check=False)


def prepare(variants: list[str]) -> str:
    """The images every variant starts from, built (or found in the cache) untimed."""
    base = base_image()
    job = job_image()
    # act builds `uses: ./` from the Dockerfile's default FROM: the local base image stands in.
    podman("tag", base, "docker.io/library/python:3.12-slim")
    if "prebuilt" in variants:
        podman("tag", action_image(), f"{PINNED}:0.0.0")
    return job


def summarize(samples: list[Sample], variants: list[str]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for variant in variants:
        mine = [s for s in samples if s.variant == variant]
        steps = [s.step_s for s in mine if s.step_s is not None]
        out[variant] = {
            "startup_median_s": round(statistics.median(s.startup_s for s in mine), 1),
            "startup_min_s": round(min(s.startup_s for s in mine), 1),
            "startup_max_s": round(max(s.startup_s for s in mine), 1),
            "act_median_s": round(statistics.median(s.act_s for s in mine), 1),
            "step_median_s": round(statistics.median(steps), 1) if steps else None,
            "prompter_median_s": round(statistics.median(s.prompter_s for s in mine), 2),
        }
    return out


def table(summary: dict[str, dict[str, float | None]], rounds: int) -> str:
    floor = summary.get("empty", {}).get("startup_median_s")
    lines = [
        f"{rounds} interleaved rounds, medians (min-max of start-up), seconds\n",
        "| variant | start-up | min-max | over `empty` | action step | prompter run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, m in summary.items():
        over = "" if floor is None else f"{m['startup_median_s'] - floor:.1f}"  # type: ignore[operator]
        step = "" if m["step_median_s"] is None else f"{m['step_median_s']:.1f}"
        lines.append(
            f"| {variant} | {m['startup_median_s']:.1f} | {m['startup_min_s']:.1f}-"
            f"{m['startup_max_s']:.1f} | {over} | {step} | {m['prompter_median_s']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--keep", action="store_true", help="keep the repositories and logs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown or not variants:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    job = prepare(variants)
    root = Path(tempfile.mkdtemp(prefix="prompter-job-startup-"))
    home = root / "home" / ".config" / "act"
    home.mkdir(parents=True)
    (home / "actrc").write_text(f"-P ubuntu-latest={job}\n", "utf-8")
    repos = {variant: make_repo(root, variant) for variant in variants}
    samples: list[Sample] = []
    load = [os.getloadavg()[0]]
    try:
        with docker_api(root / "podman.sock") as api:
            bench = Bench(root=root, api_env=api, job=job)
            for r in range(-args.warmup, args.rounds):
                for variant in variants:
                    if r < 0 and variant.endswith("-cold"):
                        continue  # cold by construction: nothing to warm
                    sample = run_variant(bench, variant, repos[variant])
                    log(f"round {r}: {variant}: {sample}")
                    if r >= 0:
                        samples.append(sample)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        if "prebuilt" in variants:
            podman("untag", f"{PINNED}:0.0.0", check=False)
    load.append(os.getloadavg()[0])
    summary = summarize(samples, variants)
    result = {
        "rounds": args.rounds,
        "warmup": args.warmup,
        "variants": summary,
        "samples": [asdict(s) for s in samples],
        "loadavg_1m": load,
        "cpus": os.cpu_count(),
        "action_image_mb": image_mb(ACTION_TAG),
    }
    emit(result, table(summary, args.rounds), args.json)
    return 0


def image_mb(tag: str) -> float | None:
    if image_id(tag) is None:
        return None
    size = podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
    return round(int(size) / 2**20) if size.isdigit() else None


if __name__ == "__main__":
    sys.exit(main())
