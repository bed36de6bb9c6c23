"""Fixtures of the page tests (tests/elicence/test_*_page.py): the Chromium to drive and a real server.

- ``chromium``: the system Chromium (``ELICENCE_CHROMIUM`` or ``/usr/bin/chromium``) with Playwright; the
  test is skipped without them, except under ``CI=true`` (``.ci/run`` installs Debian's chromium), where
  it fails. Request it before the server so that a skip costs nothing.
- ``live_server``: a free loopback port (``.port``, ``.base``) and ``.start(app)``, which serves an ASGI
  app there under uvicorn in a thread until the test ends.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from elicence.limits import BoundedHttpToolsProtocol


@pytest.fixture
def chromium() -> str:
    """The Chromium to drive, or skip (fail under CI, where .ci/run installs it); before the server starts."""
    path = os.environ.get("ELICENCE_CHROMIUM") or "/usr/bin/chromium"
    missing = None
    if not Path(path).is_file():
        missing = f"no Chromium at {path} (install Debian's chromium or set ELICENCE_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing is None:
        return path
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {missing}")
    pytest.skip(missing)


class LiveServer:
    """A free port on 127.0.0.1; :meth:`start` serves an app on it (uvicorn, in a thread)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(self, app: Any) -> None:
        """Serve ``app`` until the test ends; returns once the server accepts connections."""
        # The HTTP protocol `elicence serve` runs (its loop, uvloop, too: asyncio in a thread is the same here).
        uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                           http=BoundedHttpToolsProtocol))
        thread = threading.Thread(target=uv.run, name=f"page-test-server-{self.port}", daemon=True)
        thread.start()
        self._running.append((uv, thread))
        deadline = time.monotonic() + 20
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        for uv, thread in self._running:
            uv.should_exit = True
            thread.join(timeout=10)


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    server = LiveServer()
    try:
        yield server
    finally:
        server.stop()
