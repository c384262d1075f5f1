"""Render a leaderboard.html in headless Chromium and save a PNG of it (and say what went wrong).

    python scripts/screenshot_leaderboard.py results/suite-mini/leaderboard/leaderboard.html results/leaderboard.png
    python scripts/screenshot_leaderboard.py PAGE OUT.png [--width 1100] [--height 1500 | --full-page] [--scale 1]

By default the PNG is the top ``--height`` CSS pixels of the page laid out ``--width`` wide (the
table and the first plots); ``--full-page`` takes all of it. The page's console errors, script
errors and images that did not load are printed on stderr, and the exit status is 1 if there were
any (the PNG is written all the same).

Chromium is found as $OPTBENCH_CHROMIUM, else ``chromium`` (Debian's package; scripts/setup.sh
installs it), ``chromium-browser``, ``google-chrome`` on PATH.

How: Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe`` (JSON
messages ending in NUL on file descriptors 3 and 4), with the standard library only. That gives
real events (console messages, uncaught exceptions, failed loads), lets us ask the live page
whether each image decoded, and captures the screenshot in one launch, with no extra package and
no browser download of its own, whatever Chromium version the system has (the protocol methods used
here have been stable for years). tests/test_browser.py imports :class:`HeadlessChromium` from here.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Runs in the page once it has loaded: waits for every image to decode (or fail), then reports
# the leaderboard table and each image's state.
INSPECT = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map((img) => img.decode().catch(() => null)));
  const table = document.querySelector("table#leaderboard");
  return {
    title: document.title,
    height: Math.ceil(document.documentElement.scrollHeight),
    header: table ? [...table.querySelectorAll("thead th")].map((th) => th.textContent) : null,
    rows: table ? [...table.querySelectorAll("tbody tr")].map(
      (tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)) : null,
    images: images.map((img) => ({alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth,
                                   naturalHeight: img.naturalHeight})),
  };
})()"""


def find_chromium() -> str | None:
    """The Chromium executable to use, or None."""
    chosen = os.environ.get("OPTBENCH_CHROMIUM")
    if chosen:
        return shutil.which(chosen)
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


def no_chromium_reason() -> str:
    """Why :func:`find_chromium` found nothing, and what to do."""
    chosen = os.environ.get("OPTBENCH_CHROMIUM")
    looked = f"OPTBENCH_CHROMIUM={chosen}" if chosen else f"{', '.join(CANDIDATES)} or $OPTBENCH_CHROMIUM"
    return (f"no Chromium found (looked for {looked} on PATH); scripts/setup.sh installs Debian's chromium when "
            f"run as root with apt-get")


@dataclass
class Page:
    """What a rendered page showed: its table, its images and every error it logged."""

    url: str
    title: str
    height: int  # CSS pixels of the whole page at the width it was laid out
    header: list[str] | None  # the leaderboard table's column names (None: no table#leaderboard)
    rows: list[list[str]] | None  # its body rows' cell texts
    images: list[dict[str, Any]]  # per <img>: alt, complete, naturalWidth, naturalHeight
    console_errors: list[str] = field(default_factory=list)  # console.error/assert and Log errors (failed loads)
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions
    png: bytes | None = None

    @property
    def broken_images(self) -> list[str]:
        return [img["alt"] or "(no alt)" for img in self.images if not (img["complete"] and img["naturalWidth"] > 0)]

    def problems(self) -> list[str]:
        """Everything that went wrong, one line each (empty for a clean page)."""
        return ([f"console error: {e}" for e in self.console_errors] + [f"page error: {e}" for e in self.page_errors]
                + [f"image did not load: {alt}" for alt in self.broken_images])


class BrowserError(RuntimeError):
    """Chromium could not be started, died, or did not answer in time."""


class HeadlessChromium:
    """One headless Chromium process, driven over ``--remote-debugging-pipe``.

    ``with HeadlessChromium() as browser: page = browser.render(path)``; each render opens a fresh
    tab (no state shared between pages) and closes it afterwards.
    """

    def __init__(self, executable: str | None = None, timeout_s: float = 30.0) -> None:
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError(no_chromium_reason())
        self.timeout_s = timeout_s
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> HeadlessChromium:
        self._profile = tempfile.TemporaryDirectory(prefix="optbench-chromium-")
        self._stderr = open(Path(self._profile.name) / "stderr.log", "wb")  # closed in __exit__
        # Two pipes: we write commands, Chromium reads them on fd 3; it writes answers and events on fd 4.
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        # Move the child's ends above 9 so that putting them on 3 and 4 cannot overwrite each other.
        child_read = fcntl.fcntl(to_browser, fcntl.F_DUPFD_CLOEXEC, 10)
        child_write = fcntl.fcntl(from_browser, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser, from_browser):
            os.close(fd)
        flags = [
            "--headless", "--remote-debugging-pipe",
            # The sandbox needs an unprivileged user namespace or the setuid helper (chromium-sandbox,
            # not installed by scripts/setup.sh), and refuses to run as root at all; the pages are
            # local files this project wrote.
            "--no-sandbox",
            "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync", "--mute-audio",
            "--hide-scrollbars", f"--user-data-dir={self._profile.name}", "about:blank",
        ]
        # A tiny trampoline puts the pipe ends on fds 3 and 4, then becomes Chromium (no preexec_fn,
        # which is unsafe in a process with threads, as torch's are).
        trampoline = ("import os, sys; a, b = int(sys.argv[1]), int(sys.argv[2]); os.dup2(a, 3); os.dup2(b, 4); "
                      "os.close(a); os.close(b); os.execv(sys.argv[3], sys.argv[3:])")
        self._process: subprocess.Popen | None = None
        try:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", trampoline, str(child_read), str(child_write), self.executable, *flags],
                    stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr,
                    pass_fds=(child_read, child_write))
            finally:
                os.close(child_read)
                os.close(child_write)
            self.send("Browser.getVersion")  # answers once Chromium is up
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._process is not None and self._process.poll() is None:
                with contextlib.suppress(BrowserError):
                    self.send("Browser.close", timeout_s=5)
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        finally:
            for fd in (self._to_browser, self._from_browser):
                os.close(fd)
            self._stderr.close()
            self._profile.cleanup()

    @property
    def version(self) -> str:
        return self.send("Browser.getVersion")["product"]

    # -- the protocol ---------------------------------------------------------------------------

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float | None = None) -> dict[str, Any]:
        """Send one command and return its result; events read meanwhile are kept for :meth:`wait_for`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"Chromium is gone (sending {method}){self._stderr_tail()}") from None
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._read(deadline, f"the answer to {method}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_for(self, method: str, session: str, timeout_s: float | None = None) -> dict[str, Any]:
        """The first event ``method`` of ``session`` (already received, or the next to come)."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        seen = 0
        while True:
            for event in self._events[seen:]:
                if event["method"] == method and event.get("sessionId") == session:
                    return event.get("params", {})
            seen = len(self._events)
            message = self._read(deadline, f"the event {method}")
            if "method" in message:
                self._events.append(message)

    def _read(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError(f"Chromium did not send {waiting_for} within {self.timeout_s:g} s"
                                   f"{self._stderr_tail()}")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                self._process.wait(timeout=5)
                raise BrowserError(f"Chromium exited (status {self._process.returncode}) while we waited for "
                                   f"{waiting_for}{self._stderr_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        lines = (Path(self._profile.name) / "stderr.log").read_text(errors="replace").splitlines()[-15:]
        return "; its last output:\n" + "\n".join(lines) if lines else ""

    # -- pages ----------------------------------------------------------------------------------

    def render(self, page: str | Path, width: int = 1100, height: int = 1500, screenshot: bool = False,
               full_page: bool = False, scale: float = 1.0) -> Page:
        """Load ``page`` (a file) in a fresh tab ``width`` CSS pixels wide, wait for it and its images,
        and report what it showed; with ``screenshot``, also a PNG of its top ``height`` pixels (all of
        it with ``full_page``)."""
        url = Path(page).resolve().as_uri()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
                      session=session)
            navigated = self.send("Page.navigate", {"url": url}, session=session)
            if navigated.get("errorText"):
                raise BrowserError(f"could not open {url}: {navigated['errorText']}")
            self.wait_for("Page.loadEventFired", session)
            found = self.send("Runtime.evaluate", {"expression": INSPECT, "awaitPromise": True,
                                                   "returnByValue": True}, session=session)
            if "exceptionDetails" in found:
                raise BrowserError(f"inspecting {url} failed: {found['exceptionDetails'].get('text')}")
            seen = found["result"]["value"]
            result = Page(url=url, title=seen["title"], height=seen["height"], header=seen["header"],
                          rows=seen["rows"], images=seen["images"])
            if screenshot:
                clip_height = seen["height"] if full_page else min(height, seen["height"])
                shot = self.send("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": clip_height, "scale": 1}}, session=session)
                result.png = base64.b64decode(shot["data"])
            self._collect_errors(session, result)
            return result
        finally:
            self.send("Target.closeTarget", {"targetId": target})
            self._events = [e for e in self._events if e.get("sessionId") != session]

    def _collect_errors(self, session: str, page: Page) -> None:
        for event in self._events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                page.console_errors.append(" ".join(str(arg.get("value", arg.get("description", "")))
                                                    for arg in params.get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                page.page_errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                page.console_errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the leaderboard.html to render")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1100, help="layout width in CSS pixels (default 1100)")
    parser.add_argument("--height", type=int, default=1500, help="how much of the top to keep (default 1500)")
    parser.add_argument("--full-page", action="store_true", help="the whole page instead of its top")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixels per CSS pixel (default 1)")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        parser.error(f"{args.page} is not a file")
    try:
        with HeadlessChromium() as browser:
            page = browser.render(args.page, width=args.width, height=args.height, screenshot=True,
                                  full_page=args.full_page, scale=args.scale)
    except BrowserError as error:
        print(f"[screenshot] {error}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(page.png or b"")
    rows = len(page.rows) if page.rows is not None else "no leaderboard table"
    print(f"[screenshot] wrote {args.out} ({len(page.png or b'') // 1024} KiB; page {page.height} px tall, "
          f"{rows} rows, {len(page.images)} images)", file=sys.stderr)
    for problem in page.problems():
        print(f"[screenshot] {problem}", file=sys.stderr)
    return 1 if page.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
