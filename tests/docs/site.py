"""The docs site for tests: built with the real mkdocs, served by a real loopback HTTP server, and read
by headless Chromium (Debian's) over the DevTools protocol.

Why the DevTools protocol and not Selenium: it needs only the browser and a websocket client
(websocket-client), so nothing is downloaded at test time and there is no chromedriver whose version
must match the browser's.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO


def build(dest: Path, config: Path = REPO / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` into dest, as CI runs it (the hook generates the reference pages)."""
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}  # Material prints an end-of-life banner otherwise
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(dest)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """The folder over HTTP on 127.0.0.1 (an ephemeral port); yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium_or_skip() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        why = "chromium is not installed (scripts/setup.sh installs Debian's chromium when run as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {why}")
        pytest.skip(why)
    return found


class Browser:
    """One headless Chromium page, driven over the DevTools protocol."""

    def __init__(self, binary: str, profile: Path):
        import websocket  # websocket-client

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)  # Chromium refuses an Origin it was not told of
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> int:
        """Load url and wait for it; the HTTP status the page was served with."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = self.js("[document.readyState, location.href]")
            if state[0] == "complete" and state[1].split("#")[0] == url.split("#")[0]:
                break
            time.sleep(0.05)
        status: int = self.js("performance.getEntriesByType('navigation')[0].responseStatus")
        return status

    def wait_for(self, expression: str, timeout_s: float = 20) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        return None

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Every link of the page (resolved by the browser) and every id a fragment can land on.
LINKS_AND_IDS = "[[...document.querySelectorAll('a[href]')].map(a => a.href), [...document.querySelectorAll('[id]')].map(e => e.id)]"


def broken_links(browser: Browser, base: str) -> list[str]:
    """Open every page reachable from base in the browser; each internal link whose page is not served
    with 200, or whose #fragment names no element of its page, as 'FROM -> LINK (why)'."""
    seen: dict[str, tuple[int, set[str]]] = {}
    todo, links = [base], []
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        status = browser.open(url)
        hrefs, ids = browser.js(LINKS_AND_IDS) if status == 200 else ([], [])
        seen[url] = (status, set(ids))
        for href in hrefs:
            if href.startswith(base):
                links.append((url, href))
                page = href.split("#")[0]
                if page not in seen and not page.endswith((".json", ".xml", ".gz", ".png", ".svg", ".ico", ".css", ".js")):
                    todo.append(page)
    problems = []
    for source, href in links:
        page, _, fragment = href.partition("#")
        if page.endswith((".json", ".xml", ".gz", ".png", ".svg", ".ico", ".css", ".js")):
            try:  # a file, not a page: being served is enough
                urllib.request.urlopen(page, timeout=10).close()
            except urllib.error.HTTPError as exc:
                problems.append(f"{source} -> {href} ({exc.code})")
            continue
        status, ids = seen[page]
        if status != 200:
            problems.append(f"{source} -> {href} ({status})")
        elif fragment and fragment not in ids:
            problems.append(f"{source} -> {href} (no element with id {fragment!r})")
    return sorted(set(problems))


def search(browser: Browser, base: str, words: str) -> list[str]:
    """Type words into the site's search box as a person would; the result list's links."""
    assert browser.open(base) == 200
    browser.js("document.querySelector('input.md-search__input').focus()")
    browser.call("Input.insertText", text=words)
    # Material writes "N matching documents" (or "No matching documents") once the query has run.
    meta = browser.wait_for("(t => /matching/.test(t) && t)(document.querySelector('.md-search-result__meta').textContent)")
    assert meta, "the search never answered"
    found: list[str] = browser.js("[...document.querySelectorAll('.md-search-result__list a')].map(a => a.href)")
    return found
