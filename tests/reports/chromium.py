"""A tiny headless-Chromium driver over the DevTools protocol (stdlib only, ``--remote-debugging-pipe``).

Chromium reads JSON commands, each ended by a NUL byte, on fd 3 and writes replies and events
on fd 4. ``check_pages`` opens each page in a fresh tab and collects what a report test needs:
console errors and exceptions, every request the page made, every image's decoded size, and a
PNG screenshot of the whole page.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, binary: str, profile: str, width: int, height: int) -> None:
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()

        def fds() -> None:  # in the child: the protocol's fixed fd numbers (via high ones: no clobbering)
            high_r, high_w = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={width},{height}",
                "about:blank"]
        # close_fds=False: the dup2'd fds 3 and 4 are inheritable; every other fd of ours is
        # close-on-exec (Python's default), so only the protocol pipes reach chromium.
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False,  # noqa: PLW1509
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 30.0) -> dict[str, Any]:
        for ev in self.events:
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
        deadline = time.monotonic() + timeout
        while True:
            ev = self._read(deadline)
            self.events.append(ev)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


IMAGES_JS = """
Promise.all(Array.from(document.images).map(img => img.decode().then(() => true, () => false).then(ok => ({
  ok: ok, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
  alt: img.alt}))))
"""


def check_pages(paths: list[Path], *, width: int = 1280, height: int = 900, full_page: bool = True,
                timeout: float = 60.0) -> list[PageResult]:
    """Load each local HTML file in headless Chromium; RuntimeError when no Chromium is there."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError("no chromium binary on PATH")
    results = []
    with tempfile.TemporaryDirectory(prefix="riverbed-chromium-") as profile:
        pipe = _Pipe(binary, profile, width, height)
        try:
            for path in paths:
                results.append(_check(pipe, Path(path).resolve().as_uri(), width, height, full_page, timeout))
        finally:
            pipe.close()
    return results


def _check(pipe: _Pipe, url: str, width: int, height: int, full_page: bool, timeout: float) -> PageResult:
    target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                      "mobile": False}, session=session)
    start = len(pipe.events)
    pipe.send("Page.navigate", {"url": url}, session=session)
    pipe.wait_event("Page.loadEventFired", session, timeout)
    images = pipe.send("Runtime.evaluate", {"expression": IMAGES_JS, "awaitPromise": True, "returnByValue": True},
                       session=session, timeout=timeout)["result"]["value"]
    shot_params: dict[str, Any] = {"format": "png"}
    if full_page:
        size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot_params.update(captureBeyondViewport=True,
                           clip={"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000), "scale": 1})
    shot = base64.b64decode(pipe.send("Page.captureScreenshot", shot_params, session=session, timeout=timeout)["data"])
    res = PageResult(url, images=images, screenshot=shot)
    for ev in pipe.events[start:]:
        if ev.get("sessionId") != session:
            continue
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            res.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            res.console_errors.append(str(p.get("exceptionDetails", {}).get("text")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            res.console_errors.append(str(p["entry"].get("text")))
        elif method == "Network.requestWillBeSent":
            req_url = p.get("request", {}).get("url", "")
            if req_url != url and not req_url.startswith("data:"):
                res.requests.append(req_url)
    pipe.send("Target.closeTarget", {"targetId": target})
    return res
