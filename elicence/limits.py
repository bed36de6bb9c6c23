"""The deployment's bound on request headers: ``431 request_header_fields_too_large`` above
:data:`MAX_HEADER_BYTES`, for every role mounted on the app.

Two bounds, one code. :class:`HeaderLimit`, a middleware, counts the names and values of the headers
the server parsed and refuses the request before any handler runs (RFC 6585 s5)::

    HTTP/1.1 431 Request Header Fields Too Large
    {"error": "request_header_fields_too_large", "error_description": "..."}

It sees a head only once the server has parsed all of it, and the server's parser (httptools, llhttp)
keeps a head in memory without limit while it arrives. :class:`BoundedHttpToolsProtocol`, the protocol
``elicence serve`` runs uvicorn with, answers the same 431 and closes the connection as soon as more than
:data:`MAX_HEAD_BYTES` have arrived without the head being complete, so a client cannot make a worker
hold more than that (plus one socket read) for a request head.

Request bodies are bounded by each role (``issuer.api.BodyLimit``, ``wallet.api.WalletBodyLimit``,
``verifier.api.VerifierBodyLimit``, and the portal's own).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEADER_BYTES", "MAX_HEAD_BYTES", "HeaderLimit", "BoundedHttpToolsProtocol", "install"]

#: The most header bytes (names and values, as parsed) one request may carry: h11's own limit on a
#: request head, far above what a browser or the wallet sends (a few hundred bytes to a few KiB).
MAX_HEADER_BYTES = 16 * 1024
#: The most bytes of one request head (request line, headers, separators) the server waits for: the
#: headers' bound with room for the request line and the framing.
MAX_HEAD_BYTES = MAX_HEADER_BYTES + 8 * 1024

_CODE = "request_header_fields_too_large"


class HeaderLimit:
    """ASGI middleware: 431 ``request_header_fields_too_large`` above ``limit`` bytes of headers."""

    def __init__(self, app: Any, limit: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope.get("headers", ()))
            if size > self.limit:
                response = JSONResponse(
                    {"error": _CODE,
                     "error_description": f"the request headers take {size} bytes, more than {self.limit}"},
                    status_code=431, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses a request head still incomplete after
    :data:`MAX_HEAD_BYTES` bytes: 431 ``request_header_fields_too_large``, then the connection is closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._completed = False

    def data_received(self, data: bytes) -> None:
        self._completed = False
        super().data_received(data)
        # Bytes of a read that also ended a message are not counted: how many of them began the next
        # head is unknown (the bound is then this many bytes plus a read or two: still a bound).
        if self._in_head and not self._completed and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                body = json.dumps({"error": _CODE, "error_description": f"the request head is longer than "
                                                                         f"{MAX_HEAD_BYTES} bytes"}).encode()
                self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                                     b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                                     + body)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes, self._completed = True, 0, True


def install(app: FastAPI) -> None:
    """Bound the request headers of every route of ``app``."""
    app.add_middleware(HeaderLimit)
