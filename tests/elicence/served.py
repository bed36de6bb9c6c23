"""A real ``elicence serve`` process for the tests that need one: started in a working directory of its own
(its ``var/`` is there), on a free port, waited for until ``/healthz`` answers, and stopped (its whole
process group) at the end. Settings come from a clean environment: no ``ELICENCE_*`` variable of the
test run leaks in, only those the test gives. The server runs this working tree (``PYTHONPATH``).

The runner is :func:`elicence.story.serving`, the same that ``elicence demo --start`` uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from elicence.story import Served, free_port, serving

__all__ = ["ROOT", "SHORT_TTL", "Served", "elicence_serve", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
#: A department keeps a status list for its ``ttl`` (60 s by default): tests that scan again after a
#: revocation serve 3 s lists, so the wait is seconds, not a minute.
SHORT_TTL = {"ELICENCE_STATUS_TTL": "3"}


@contextmanager
def elicence_serve(workdir: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> Iterator[Served]:
    """Run ``elicence serve [args]`` in ``workdir`` with ``env`` (``ELICENCE_*`` settings) until the block
    ends; it listens on 127.0.0.1, which is also its public URL (as under ``make run``) unless ``env`` sets
    ``ELICENCE_PUBLIC_URL``, on a free port (``Served.base``)."""
    with serving(workdir, {"PYTHONPATH": str(ROOT), **(env or {})}, args) as served:
        yield served
