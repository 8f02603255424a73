"""A page opened in Debian's headless Chromium and driven over the DevTools protocol, for the
`report.html` tests: what it logged, what it requested, what script in it says, a screenshot.

The protocol runs over a pipe (`--remote-debugging-pipe`: messages are JSON ended by a NUL on
the child's fds 3 and 4), so nothing but Chromium is needed: no websocket client, no driver.
`Runtime.evaluate` runs as the debugger, outside the page's Content-Security-Policy, which is
how the tests click and read the page while the page itself may run only its own script.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .mermaid_render import HEADLESS_FLAGS, chromium

TIMEOUT = 60.0  # seconds for any one answer of the browser


@dataclass
class Logged:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, CSP reports
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class Page:
    """One Chromium with one tab; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        self.width, self.height = width, height
        self.logged = Logged()
        self._next = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Page:
        self._profile = tempfile.TemporaryDirectory(prefix="report-html-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # the child reads commands on fd 3 and answers on fd 4
            # Copied above 10 first: either pipe end may itself be fd 3 or 4.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
            for target, fd in zip((3, 4), high, strict=True):
                os.dup2(fd, target)
                os.set_inheritable(target, True)

        self._proc = subprocess.Popen(
            [
                chromium(),
                *HEADLESS_FLAGS,
                f"--user-data-dir={self._profile.name}",
                "--remote-debugging-pipe",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # fds 3 and 4 must survive: the pipes are not inheritable, their dup2 copies are
            close_fds=False,
            start_new_session=True,
            preexec_fn=fds,  # noqa: PLW1509 - the test process spawns nothing concurrently here
        )
        os.close(to_child_r)
        os.close(from_child_w)
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        # Closed through the protocol, so its helper processes are gone before the profile is
        # removed; killed (its own process group) only if it does not close.
        with contextlib.suppress(OSError, RuntimeError):
            self._call("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        self._profile.cleanup()

    # -- the protocol -------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        os.write(self._to_child, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline or self._proc.poll() is not None:
                raise RuntimeError("chromium did not answer (exited or timed out)")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(message))

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))
            self._event(answer)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self._call(method, self._session, **params)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        self._events.append(message)
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.logged.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning"):
            args = [a.get("value", a.get("description", "")) for a in params["args"]]
            self.logged.errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            self.logged.errors.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            self.logged.requests.append(params["request"]["url"])

    # -- what the tests use -------------------------------------------------------------------

    def open(self, path: Path) -> float:
        """Load `path` and wait until its script says it is ready and a frame was painted;
        the seconds that took."""
        if not path.is_file():
            raise FileNotFoundError(path)
        started = time.monotonic()
        self.call("Page.navigate", url=path.resolve().as_uri())
        deadline = time.monotonic() + TIMEOUT
        while (
            self.js("document.readyState") != "complete"
            or self.js("document.body && document.body.dataset.ready") != "true"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page did not get ready: {self.logged.errors}")
            time.sleep(0.02)
        self.js("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return time.monotonic() - started

    def js(self, expression: str) -> Any:
        """The value of `expression` in the page (awaited if it is a promise)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the first element `selector` finds."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " const x = r.x + r.width / 2, y = r.y + r.height / 2;"
            " const hit = document.elementFromPoint(x, y);"
            " return [x, y, !!hit && (hit === e || e.contains(hit))]; })()"
        )
        if not box[2]:
            raise RuntimeError(f"{selector} is not what a click at its middle hits (hidden?)")
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def dark(self, on: bool = True) -> None:
        features = [{"name": "prefers-color-scheme", "value": "dark" if on else "light"}]
        self.call("Emulation.setEmulatedMedia", features=features)

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
