"""Headless Chromium driven over the DevTools protocol (a websocket), for UI tests.

Chromium's own --dump-dom/--screenshot stop before the Dagster UI has laid out its graph (the
layout runs asynchronously), so the test polls the live page instead.
"""

import base64
import itertools
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from pdm_assets_tests.support.paths import free_port

CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network: without the background-networking ones Chromium keeps trying to
# reach Google's hosts.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
    "--window-size=1600,1000",
]


class Page:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        self._connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._connection.recv(timeout=60))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})  # type: ignore[no-any-return]

    def text(self) -> str:
        result = self.call(
            "Runtime.evaluate",
            expression="document.body ? document.body.innerText : ''",
            returnByValue=True,
        )
        return str(result.get("result", {}).get("value", ""))

    def wait_for_text(
        self, needles: list[str], timeout: float, *, every: bool = False
    ) -> list[str]:
        """Poll the page until one of `needles` shows (or, with `every`, all of them);
        return the ones shown (maybe none)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            shown = [needle for needle in needles if needle in text]
            done = len(shown) == len(needles) if every else bool(shown)
            if done or time.monotonic() > deadline:
                return shown
            time.sleep(1)

    def click_text(self, label: str) -> bool:
        """Click the first button whose text is `label` (e.g. a first-visit dialog's "Skip")."""
        script = (
            "(() => { const hit = [...document.querySelectorAll('button, [role=button], a')]"
            f".find(e => e.textContent.trim() === {json.dumps(label)});"
            " if (hit) { hit.click(); return true; } return false; })()"
        )
        result = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        return bool(result.get("result", {}).get("value"))

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


@contextmanager
def open_page(url: str, profile: Path) -> Iterator[Page]:
    port = free_port()
    process = subprocess.Popen(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        target = _page_target(port)
        with connect(target, max_size=None, open_timeout=30) as connection:
            page = Page(connection)
            page.call("Page.enable")
            page.call("Page.navigate", url=url)
            yield page
    finally:
        process.terminate()
        process.wait(timeout=30)


def _page_target(port: int, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as reply:
                targets = json.loads(reply.read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("Chromium's DevTools endpoint did not come up")
        time.sleep(0.5)
