"""The database: engines, sessions and schema migrations for every role (SQLAlchemy 2.0, Alembic).

- :func:`make_engine` opens SQLite (the embedded default) or PostgreSQL (through psycopg 3) from a URL.
  SQLite connections get ``journal_mode=WAL`` (readers never block the writer), ``foreign_keys=ON``
  (SQLite leaves them off), ``synchronous=NORMAL`` (in WAL mode: never corrupt, but a power cut
  may lose the last commits; an application crash loses nothing) and a busy timeout, and every
  read-write transaction starts with ``BEGIN IMMEDIATE``: writers queue on the database lock at the
  start of the transaction instead of failing with ``SQLITE_BUSY`` when a deferred read lock cannot
  be upgraded. That is what makes "lock the row, then write" sequences of
  the stores (status index allocation, audit appends) safe on SQLite, which has no ``FOR UPDATE``.
  A session opened with :func:`read_only` uses a plain deferred ``BEGIN`` and never waits for writers.
  PostgreSQL engines test each pooled connection before handing it out (``pool_pre_ping``) and give
  up connecting after ``PG_CONNECT_TIMEOUT_S`` (unless the URL sets ``connect_timeout``): when the
  server goes away requests fail fast (``elicence.faults`` answers them 503), and when it is back
  the dead connections are replaced without a restart.
- :func:`session_factory` makes sessions that do not expire objects on commit.
- :func:`migrate` runs ``alembic upgrade heads`` programmatically (at start, and in tests) over one
  environment, ``elicence/migrations``, which includes each role's version folder with its branch
  label (``issuer`` -> ``issuer/migrations/versions``). On PostgreSQL it holds an advisory lock so
  that workers starting together migrate once.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

__all__ = [
    "SQLITE_BUSY_TIMEOUT_S",
    "PG_CONNECT_TIMEOUT_S",
    "ROLE_SCHEMAS",
    "normalise_url",
    "make_engine",
    "session_factory",
    "read_only",
    "alembic_config",
    "migrate",
    "current_heads",
    "target_heads",
    "role_metadata",
]

#: How long a SQLite writer waits for the database lock before failing (seconds).
SQLITE_BUSY_TIMEOUT_S = 30.0

#: How long opening a PostgreSQL connection may take before it fails (seconds).
PG_CONNECT_TIMEOUT_S = 5

#: Each role's tables: (branch label, module holding its declarative base, base class name,
#: package-relative version folder). Roles arriving later add a line here.
ROLE_SCHEMAS: tuple[tuple[str, str, str, str], ...] = (
    ("issuer", "issuer.store", "IssuerBase", "migrations/versions"),
    ("wallet", "wallet.store", "WalletBase", "migrations/versions"),
    ("verifier", "verifier.store", "VerifierBase", "migrations/versions"),
)

_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK_KEY = 0x656C6963  # "elic": serialises concurrent `migrate` calls on one PostgreSQL server
_READ_ONLY_OPTION = "elicence_read_only"


def normalise_url(url: str | URL) -> URL:
    """``url`` as a SQLAlchemy URL, with PostgreSQL pinned to psycopg 3 (``postgresql+psycopg``)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, echo: bool = False, pool_size: int = 5) -> Engine:
    """An engine for ``url`` (SQLite file or memory, or PostgreSQL), with the settings above.

    A SQLite file's directory is created if missing. Raises ``sqlalchemy.exc.ArgumentError`` for a
    malformed URL and ``ModuleNotFoundError`` when the driver is not installed.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size,
                         connect_args=connect_args)


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        # One shared connection for an in-memory database (each connection would see its own).
        poolclass=StaticPool if memory else None,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below: pysqlite's own implicit BEGIN is
        # deferred and emitted late, which turns concurrent writers into SQLITE_BUSY failures.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only_tx = connection.get_execution_options().get(_READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only_tx else "BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (``expire_on_commit=False``)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextlib.contextmanager
def read_only(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only: on SQLite a deferred transaction that never waits for writers.

    It is rolled back at the end; a write inside it may fail with "database is locked" on SQLite.
    """
    with factory() as session:
        session.connection(execution_options={_READ_ONLY_OPTION: True})
        try:
            yield session
        finally:
            session.rollback()


# --- migrations ------------------------------------------------------------------------------------------


def role_metadata() -> list[MetaData]:
    """The ``MetaData`` of every role's tables (what the migrations must produce)."""
    out = []
    for _label, module, base, _versions in ROLE_SCHEMAS:
        out.append(getattr(importlib.import_module(module), base).metadata)
    return out


def _version_locations() -> list[str]:
    locations = []
    for _label, module, _base, versions in ROLE_SCHEMAS:
        package = importlib.import_module(module.split(".")[0])
        locations.append(str(Path(package.__file__).resolve().parent / versions))
    return locations


def alembic_config(engine: Engine | None = None) -> Config:
    """The Alembic configuration of the project (no ``alembic.ini`` needed); ``engine`` sets its URL."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(_version_locations()))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> list[str]:
    """Upgrade the database to every branch's head (``alembic upgrade heads``); returns the heads.

    Idempotent. Runs in one transaction (DDL is transactional in PostgreSQL and SQLite), so a failed
    migration leaves the schema as it was. Raises what Alembic or the driver raises.
    """
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released at commit: a second worker waits here, then finds nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "heads")
    return sorted(current_heads(engine))


def current_heads(engine: Engine) -> set[str]:
    """The revisions the database is at (empty for a database never migrated)."""
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def target_heads() -> set[str]:
    """The head revision of every branch in the code."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
