"""elicence.db: engines with the right SQLite settings, migrations run programmatically and safely twice."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import inspect, text

from elicence.db import (
    current_heads,
    make_engine,
    migrate,
    normalise_url,
    read_only,
    session_factory,
    target_heads,
)


def test_postgres_urls_use_psycopg3():
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_connections_get_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'dir' / 'x.db'}")
    try:
        assert (tmp_path / "sub" / "dir").is_dir()
        with engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        with engine.begin() as c:
            c.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
            c.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id))")
        with pytest.raises(Exception, match="FOREIGN KEY"):
            with engine.begin() as c:
                c.exec_driver_sql("INSERT INTO child VALUES (1, 42)")
    finally:
        engine.dispose()


def _try_write_lock(path) -> bool:
    """Whether another connection can take the write lock right now (no waiting)."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


def test_sqlite_write_transactions_take_the_lock_at_begin_and_read_only_ones_do_not(tmp_path):
    path = tmp_path / "lock.db"
    engine = make_engine(f"sqlite:///{path}")
    sessions = session_factory(engine)
    try:
        with sessions() as s, s.begin():
            s.execute(text("SELECT 1"))  # only a read so far, yet the write lock is held
            assert not _try_write_lock(path)
        assert _try_write_lock(path)
        with read_only(sessions) as s:
            s.execute(text("SELECT 1"))
            assert _try_write_lock(path)
    finally:
        engine.dispose()


def test_in_memory_sqlite_can_be_migrated():
    engine = make_engine("sqlite://")
    try:
        migrate(engine)
        assert "issuer_credential" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_workers_starting_together_migrate_once(empty_database_url):
    engines = [make_engine(empty_database_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine) -> None:
        try:
            barrier.wait(30)
            migrate(engine)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert current_heads(engines[0]) == target_heads()
    finally:
        for e in engines:
            e.dispose()
