"""Housekeeping: the roles' expired single-use values and finished transactions are deleted while the
deployment serves, every ``ELICENCE_PURGE_INTERVAL`` seconds (``0``: never).

Without it the tables of values that only matter until they expire grow with every request: the issuer's
``c_nonce`` values and access tokens, the wallet's access tokens, the verifier's finished transactions
(their stored results are personal data), logins and replay entries. Each purge is one idempotent
``DELETE ... WHERE expires_at <= now`` per table, so every worker of a deployment may run it: a second
worker deletes what the first left, or nothing. A purge that fails (the database is down) is logged
and tried again at the next interval; it never stops the server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

__all__ = ["Housekeeping"]

_log = logging.getLogger(__name__)


class Housekeeping:
    """Runs ``jobs`` (name, callable returning how many rows went) every ``interval`` seconds in a daemon
    thread, from :meth:`start` to :meth:`stop`; ``interval`` 0 runs nothing."""

    def __init__(self, jobs: Sequence[tuple[str, Callable[[], int]]], *, interval: float) -> None:
        if interval < 0:
            raise ValueError("interval must be 0 (never) or positive")
        self.jobs = tuple(jobs)
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int | None]:
        """Every job once; rows deleted by job name (``None`` for a job that failed, which is logged)."""
        done: dict[str, int | None] = {}
        for name, job in self.jobs:
            try:
                done[name] = job()
            except Exception:  # noqa: BLE001 - the next interval tries again; the server goes on
                _log.warning("housekeeping: %s failed; tried again in %s s", name, self.interval, exc_info=True)
                done[name] = None
        self.runs += 1
        return done

    def start(self) -> None:
        if self.interval == 0 or not self.jobs or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="elicence-housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            gone = self.run_once()
            if any(gone.values()):
                _log.info("housekeeping: deleted %s", ", ".join(f"{n} {c}" for n, c in gone.items() if c))

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """A FastAPI lifespan: running while the app serves."""
        self.start()
        try:
            yield
        finally:
            self.stop()
