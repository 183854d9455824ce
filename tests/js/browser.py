"""Helpers for tests that run JavaScript in Debian's Chromium through Playwright.

Playwright never downloads a browser here: it drives /usr/bin/chromium. Tests that need a
browser are skipped (with the reason) when Chromium or the Playwright package is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

CHROMIUM = os.environ.get("HSM_SIGNER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
REPO = Path(__file__).resolve().parents[2]


def require_browser():
    """The sync Playwright module, or skip the test when no browser can be driven."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("the Python playwright package is not installed")
    return sync_api


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (Playwright ``Browser``)."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _Handler(SimpleHTTPRequestHandler):
    routes: dict[str, Path] = {}
    dynamic: dict[str, Callable[[], bytes]] = {}
    csp = "default-src 'self'"

    def translate_path(self, path: str) -> str:
        path = unquote(urlsplit(path).path)
        for prefix, root in self.routes.items():
            if path.startswith(prefix):
                target = (root / path[len(prefix):]).resolve()
                if target == root or root in target.parents:
                    return str(target)
        return str(REPO / "does-not-exist")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.dynamic.get(urlsplit(self.path).path)
        if body is None:
            return super().do_GET()
        data = body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", self.csp)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def guess_type(self, path):
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A browser that closes a connection early (page closed, request cancelled) is not an error.
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextmanager
def static_server(routes: dict[str, Path], dynamic: dict[str, object] | None = None) -> Iterator[str]:
    """Serve ``routes`` (URL prefix -> directory) on 127.0.0.1; yield the base URL.

    ``dynamic`` maps exact paths to JSON-able values served as application/json.
    Every response carries a strict Content-Security-Policy, like the real app.
    """
    handler = type("Handler", (_Handler,), {
        "routes": {prefix: root.resolve() for prefix, root in routes.items()},
        "dynamic": {path: (lambda value=value: json.dumps(value).encode()) for path, value in (dynamic or {}).items()},
    })
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
