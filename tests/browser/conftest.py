"""Browser fixtures: the real app served over HTTP on 127.0.0.1, driven by Debian's Chromium via Playwright.

The browser tests are skipped when no Chromium is installed, except in CI (``CI`` set),
where a missing Chromium is an error. Playwright's own browser downloads are never used.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_test_app

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def chromium_path() -> str | None:
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = chromium_path()
    if path is None:
        _unavailable("Chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    return path  # type: ignore[return-value]


@dataclass
class LiveServer:
    url: str
    app: object


@pytest.fixture
def live_server(tmp_path: Path, nlp, studies_file: Path) -> Iterator[LiveServer]:
    """A fresh app (temp SQLite, fixture trials ingested) served by werkzeug in a background thread."""
    from werkzeug.serving import make_server

    app = make_test_app(tmp_path, nlp, studies_file, RATE_LIMIT="100000 per minute")
    app.extensions["trialmatch"].ensure_index()  # ready, as a started server is (/health answers 200)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["trialmatch"].engine.dispose()


@pytest.fixture(scope="session")
def browser(chromium_executable: str, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_executable,
            headless=True, args=CHROMIUM_ARGS)
        try:
            yield context
        finally:
            context.close()


@dataclass
class PageMonitor:
    """What the page did besides rendering: console errors, page errors, every request URL."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def non_local_requests(self) -> list[str]:
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname not in LOCAL_HOSTS:
                out.append(url)
        return out


@pytest.fixture
def browser_page(browser, live_server: LiveServer):
    """A new tab on the live server's origin; ``page.monitor`` collects errors and request URLs.

    Requests to any other host are recorded (so tests can assert there are none) and aborted,
    so a stray external fetch never hangs on this closed network.
    """
    page = browser.new_page()
    page.set_default_timeout(30_000)
    monitor = PageMonitor()
    page.on("console", lambda msg: monitor.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: monitor.page_errors.append(str(exc)))
    page.on("request", lambda req: monitor.requests.append(req.url))

    def guard(route):
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort()

    page.route("**/*", guard)
    page.monitor = monitor  # type: ignore[attr-defined]
    page.base_url = live_server.url  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        page.close()
