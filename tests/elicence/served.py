"""A real ``elicence serve`` process for the tests that need one: started in a working directory of its own
(its ``var/`` is there), on a free port, waited for until ``/healthz`` answers, and stopped (its whole
process group) at the end. Settings come from a clean environment: no ``ELICENCE_*`` variable of the
test run leaks in, only those the test gives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
LOG_NAME = "serve.log"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    base: str  # http://<public host>:<port>, the deployment's public URL
    workdir: Path
    env: dict[str, str]

    @property
    def var(self) -> Path:
        return self.workdir / "var"

    def output(self) -> str:
        """What the server printed so far (the banner, then uvicorn's log)."""
        return (self.workdir / LOG_NAME).read_text(encoding="utf-8", errors="replace")


@contextmanager
def elicence_serve(workdir: Path, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """Run ``elicence serve`` in ``workdir`` with ``env`` (``ELICENCE_*`` settings) until the block ends;
    it listens on 127.0.0.1, which is also its public URL (as under ``make run``), on a free port."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ELICENCE_")}
    base = f"http://127.0.0.1:{port}"
    clean.update({"ELICENCE_PORT": str(port), "ELICENCE_PUBLIC_URL": base, "PYTHONPATH": str(ROOT), **(env or {})})
    served = Served(base, workdir, clean)
    # To a file, not a pipe: a pipe nobody reads would block the server once its log fills the buffer.
    with open(workdir / LOG_NAME, "wb") as log:
        server = subprocess.Popen([str(Path(sys.prefix) / "bin" / "elicence"), "serve"], cwd=workdir, env=clean,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, served.output()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield served
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
