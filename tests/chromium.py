"""Headless Debian chromium driven over the DevTools protocol: pages load, charts are counted,
console errors collected. One place for the browser start, its port file and its clean stop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from farm.waiting import wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOT_INSTALLED = "Debian's chromium is not installed (apt-get install -y chromium)"


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if any(e.get("method") == method for e in self.events):
                return True
            self.events.append(json.loads(self.ws.recv()))  # blocks until the next message
            return False
        wait_until(seen, timeout, method, 0)

    def evaluate(self, expression: str):
        """A JSON.stringify(...) expression's value, parsed."""
        return json.loads(self.call("Runtime.evaluate", returnByValue=True, expression=expression)["result"]["value"])

    def problems(self, levels: tuple[str, ...] = ("error", "warning")) -> list[dict]:
        """Exceptions, failed loads, and console or log entries at ``levels`` seen so far."""
        return [e for e in self.events if e.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
                or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in levels)
                or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] in levels)]


def wait_file(path: Path, timeout: float) -> str:
    text = wait_until(lambda: path.exists() and path.read_text().strip(), timeout, f"{path} to be written", 0.05)
    return text.split()[0]


@contextmanager
def headless(profile: Path, window: str = "1280,900") -> Iterator[DevTools]:
    """A headless chromium with its own profile; yields its page's DevTools client with the
    Runtime, Log, Page and Network domains on, and stops the browser's whole process group."""
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--window-size={window}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        port = wait_file(profile / "DevToolsActivePort", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            target = next(t for t in json.load(resp) if t["type"] == "page")
        cdp = DevTools(target["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page", "Network"):
            cdp.call(f"{domain}.enable")
        yield cdp
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)
