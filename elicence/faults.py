"""The deployment's answer when its database is away: ``503 temporarily_unavailable`` with ``Retry-After``.

One exception handler for every role mounted on the app (issuer, wallet, verifier, portal). A request
that meets a lost, refused or exhausted database connection gets::

    HTTP/1.1 503 Service Unavailable
    Retry-After: 5
    {"error": "temporarily_unavailable", "error_description": "..."}

instead of a ``500 server_error``: the client may retry (with the same ``Idempotency-Key`` where it
sent one). Nothing half-done is left behind, since each request's writes are one transaction that
the database rolls back when the connection goes; the engine's ``pool_pre_ping``
(:func:`elicence.db.make_engine`) replaces dead connections, so the service recovers by itself when
the database is back.

What counts as "unavailable" (:func:`database_unavailable`): SQLAlchemy's ``OperationalError`` and
``InterfaceError`` (a connection refused, reset, closed or timed out; on PostgreSQL also a
serialisation failure or deadlock, which a retry resolves), any ``DBAPIError`` that invalidated its
connection, the pool's ``TimeoutError`` (no connection free in time), and the drivers' own
``psycopg.OperationalError`` / ``InterfaceError`` if one escapes unwrapped. On SQLite only a locked,
busy or unopenable database file counts; other SQLite errors (a missing table) are faults of ours
and stay ``500``. Any other exception goes on to the app's own handlers.
"""

from __future__ import annotations

import sqlite3

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

__all__ = ["RETRY_AFTER_S", "database_unavailable", "install"]

#: What ``Retry-After`` tells a client to wait (seconds): long enough for a failover or a restart to
#: begin, short enough that a person at a counter is not kept waiting.
RETRY_AFTER_S = 5

#: The SQLite errors that say "the file is busy or cannot be reached now", by message.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "unable to open database file",
                     "disk i/o error", "database is busy")

try:  # the PostgreSQL driver is optional (SQLite deployments do not install it)
    import psycopg

    _DRIVER_ERRORS: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # pragma: no cover - psycopg is a dependency of the server extra
    _DRIVER_ERRORS = ()


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used now (see the module docstring), not a bug."""
    if isinstance(exc, sa_exc.TimeoutError):  # the pool: no connection free within pool_timeout
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if not isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return False
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.Error):
        return isinstance(exc, sqlite3.OperationalError) and str(exc).lower().startswith(_SQLITE_TRANSIENT)
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, *_DRIVER_ERRORS))


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"error": "temporarily_unavailable",
         "error_description": "The database is unavailable; try again shortly. 数据库暂时不可用，请稍后重试。"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S), "Cache-Control": "no-store"},
    )


def install(app: FastAPI) -> None:
    """Answer database outages on ``app`` with 503 + ``Retry-After``; other errors go on to the app's handlers."""

    async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            return _unavailable()
        raise exc  # not an outage: the app's catch-all handler answers (500, no detail)

    for kind in (sa_exc.DBAPIError, sa_exc.TimeoutError, *_DRIVER_ERRORS):
        app.add_exception_handler(kind, _database_error)
