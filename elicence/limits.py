"""The deployment's bound on request headers: ``431 request_header_fields_too_large`` above
:data:`MAX_HEADER_BYTES`, for every role mounted on the app.

The server alone does not give a fixed bound: uvicorn's h11 parser refuses an unfinished request head
above 16 KiB (``h11_max_incomplete_event_size``), but a head that arrives whole in one socket read (up to
256 KiB with asyncio) is parsed before that check runs. This middleware counts the names and values of
the headers the server parsed and refuses the request before any handler runs (RFC 6585 s5)::

    HTTP/1.1 431 Request Header Fields Too Large
    {"error": "request_header_fields_too_large", "error_description": "..."}

Request bodies are bounded by each role (``issuer.api.BodyLimit``, ``wallet.api.WalletBodyLimit``,
``verifier.api.VerifierBodyLimit``, and the portal's own).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

__all__ = ["MAX_HEADER_BYTES", "HeaderLimit", "install"]

#: The most header bytes (names and values, as parsed) one request may carry: h11's own limit on a
#: request head, far above what a browser or the wallet sends (a few hundred bytes to a few KiB).
MAX_HEADER_BYTES = 16 * 1024


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
                    {"error": "request_header_fields_too_large",
                     "error_description": f"the request headers take {size} bytes, more than {self.limit}"},
                    status_code=431, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Bound the request headers of every route of ``app``."""
    app.add_middleware(HeaderLimit)
