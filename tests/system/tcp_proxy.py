"""A TCP proxy for fault tests: sits between a server process and PostgreSQL and can cut the line.

:class:`TcpProxy` runs an asyncio loop in a thread of the test. :meth:`TcpProxy.cut` closes every
connection and stops listening (new connections are refused); :meth:`TcpProxy.restore` listens again
on the same port. :meth:`TcpProxy.arm` cuts at a chosen moment: when a connection's client-to-server
bytes have shown the given patterns in order (SQL text is visible in PostgreSQL's wire protocol when
TLS is off: ``sslmode=disable``), either before the last chunk is forwarded (the database never
sees it) or right after (the database gets it, the client never hears back).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; see the module docstring."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.tripped = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._trigger: tuple[tuple[bytes, ...], bool] | None = None

    # -- control (from the test's thread) -------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Close every connection and refuse new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._call(self._listen())

    def arm(self, *patterns: bytes, forward: bool = False) -> None:
        """Cut when one connection's client bytes show ``patterns`` in order; the chunk holding the last
        is forwarded first when ``forward``. :attr:`tripped` is set when it fires."""
        self.tripped.clear()
        self._trigger = (tuple(patterns), forward)

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _call(self, coro) -> None:  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- the loop -------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()  # RST, no goodbye: as when the database host vanishes
        self._links.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._links |= {client_w, server_w}
        await asyncio.gather(self._pump(client_r, server_w, watch=True), self._pump(server_r, client_w, watch=False))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, watch: bool) -> None:
        seen: list[int] = [0]  # how many of the armed patterns this connection has shown
        tail = b""
        try:
            while chunk := await reader.read(65536):
                fire = False
                if watch and self._trigger is not None:
                    window = tail + chunk
                    fire = self._advance(window, seen)
                    tail = window[-64:]
                if fire and not self._trigger_forwards():
                    await self._fire()
                    return
                writer.write(chunk)
                await writer.drain()
                if fire:
                    await self._fire()
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
            self._links.discard(writer)

    def _advance(self, window: bytes, seen: list[int]) -> bool:
        assert self._trigger is not None
        patterns: Sequence[bytes] = self._trigger[0]
        pos = 0
        while seen[0] < len(patterns):
            found = window.find(patterns[seen[0]], pos)
            if found < 0:
                return False
            pos = found + len(patterns[seen[0]])
            seen[0] += 1
        return True

    def _trigger_forwards(self) -> bool:
        return self._trigger is not None and self._trigger[1]

    async def _fire(self) -> None:
        self._trigger = None
        await self._cut()
        self.tripped.set()
