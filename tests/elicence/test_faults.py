"""elicence.faults: a database that cannot be used now answers 503 + Retry-After; a bug stays a 500.

Real SQLite errors: the file is locked by another connection (a writer holding ``BEGIN EXCLUSIVE``) and
the engine waits no time for it. The PostgreSQL side (a connection cut and refused) is
tests/system/test_db_outage.py, against a real server process.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from elicence import faults


def _app(url: str) -> FastAPI:
    engine = create_engine(url, connect_args={"timeout": 0})
    app = FastAPI()
    faults.install(app)

    @app.post("/write")
    def write() -> dict[str, str]:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
        return {"status": "ok"}

    @app.get("/missing")
    def missing() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        return {"status": "ok"}

    return app


def test_a_locked_sqlite_database_answers_503_with_retry_after(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    client = TestClient(_app(f"sqlite:///{path}"))
    assert client.post("/write").status_code == 200
    holder.execute("BEGIN EXCLUSIVE")
    try:
        r = client.post("/write")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert r.status_code == 503 and int(r.headers["Retry-After"]) == faults.RETRY_AFTER_S
    assert r.json()["error"] == "temporarily_unavailable" and r.json()["error_description"]
    assert client.post("/write").status_code == 200  # the lock gone, the same engine works again


def test_a_database_error_that_is_a_bug_is_not_reported_as_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    sqlite3.connect(path).close()
    r = TestClient(_app(f"sqlite:///{path}"), raise_server_exceptions=False).get("/missing")
    assert r.status_code == 500 and "Retry-After" not in r.headers
