"""Named verification checks: which ran, which passed, and which one failed.

Verification functions run their steps inside ``trace.step(name)``. A :class:`CredentialError` raised
inside a step is tagged with the step's name (``error.check``) and with the names of the steps that
passed before it (``error.passed``), so a report can say exactly which checks ran and which failed
without a second orchestration of the same steps. A caller that adds checks of its own (the verifier
SDK adds status, policy and replay) passes one trace through and keeps stepping on it.
"""

from __future__ import annotations

from types import TracebackType

from credentials.errors import CredentialError

__all__ = ["CheckTrace"]


class CheckTrace:
    """An accumulator of passed check names; ``step(name)`` is a context manager."""

    __slots__ = ("passed", "_current")

    def __init__(self) -> None:
        self.passed: list[str] = []
        self._current = ""

    def step(self, name: str) -> CheckTrace:
        """Enter the check ``name``; on clean exit it is recorded as passed (once)."""
        self._current = name
        return self

    def __enter__(self) -> CheckTrace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None:
            if self._current not in self.passed:
                self.passed.append(self._current)
        elif isinstance(exc, CredentialError) and exc.check is None:
            exc.check = self._current
            # A check may run in two steps (validity_period: exp/nbf, then iat): failing the second
            # step means it failed, so it is not also listed as passed.
            exc.passed = tuple(p for p in self.passed if p != self._current)
        return False
