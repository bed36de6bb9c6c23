"""Group commit: requests that arrive while one batch is being written wait and go into the next.

The credential endpoint's transaction locks the authority's status list and audit head from the
index allocation to the commit, so one credential per transaction caps an authority at the rate of
that serial section. :class:`GroupCommit` hands whatever has queued to one callable at a time (in a
thread of its own) and gives each caller its own outcome; under load the batches grow, idle a batch is
one request and nothing waits for a timer. The thread stops after ``idle`` seconds without work and
starts again with the next request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Run ``handle(batch)`` on queued items, at most ``max_batch`` at a time, one batch at a time; a
    batch waits up to ``linger`` seconds after its first item for more.

    ``handle`` returns one outcome per item, in order: a value, or an exception for that item alone.
    If ``handle`` itself raises, every item of the batch gets that exception.
    """

    def __init__(self, handle: Callable[[Sequence[T]], Sequence[Any]], *, max_batch: int = 64, linger: float = 0.002,
                 idle: float = 2.0, name: str = "group-commit") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._handle = handle
        self._max = max_batch
        self._linger = linger
        self._idle = idle
        self._name = name
        self._pending: list[tuple[T, Future[Any]]] = []
        self._ready = threading.Condition()
        self._running = False

    def submit(self, item: T) -> Future[Any]:
        """Queue ``item``; the future gets its outcome."""
        future: Future[Any] = Future()
        with self._ready:
            self._pending.append((item, future))
            if self._running:
                self._ready.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            with self._ready:
                deadline = time.monotonic() + self._idle
                while not self._pending:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._running = False
                        return
                    self._ready.wait(left)
                if self._linger and len(self._pending) < self._max:
                    # The first request of a batch waits a moment for the ones arriving just behind it:
                    # a transaction costs about the same for one request as for a dozen.
                    until = time.monotonic() + self._linger
                    while len(self._pending) < self._max and (left := until - time.monotonic()) > 0:
                        self._ready.wait(left)
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            try:
                outcomes = list(self._handle([item for item, _ in batch]))
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
            except BaseException as exc:  # noqa: BLE001 - every caller must hear of it, and the loop go on
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes):
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
