"""Shared database fixtures: every store test runs on SQLite, and on PostgreSQL when one is configured.

``database_url`` is parametrised over the backends:

- ``sqlite``: a temporary file, always;
- ``postgresql``: when ``ELICENCE_TEST_DATABASE_URL`` names a server database to connect to (``.ci/run``
  sets ``postgresql+psycopg://postgres@127.0.0.1:5432/test`` when a server answers). Each test session
  (each xdist worker) creates a throwaway database with a random name through that connection and
  drops it at the end; the test's own database is never touched.

The schema is migrated once per session and backend (``elicence.db.migrate``); each test then gets
it empty: a fresh copy of the migrated SQLite file, or the PostgreSQL tables truncated. Fixtures:

- ``database_url``: a migrated, empty database; ``backend``: ``"sqlite"`` or ``"postgresql"``;
- ``engine`` / ``sessions``: an engine on it (disposed after the test) and its session factory;
- ``empty_database_url``: a database with no tables at all (migration tests).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from elicence.db import make_engine, migrate, normalise_url, role_metadata, session_factory

TEST_DB_ENV = "ELICENCE_TEST_DATABASE_URL"

BACKENDS = [pytest.param("sqlite", id="sqlite")]
if os.environ.get(TEST_DB_ENV):
    BACKENDS.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres))


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get(TEST_DB_ENV):
        return "database backends: sqlite, postgresql"
    return f"database backends: sqlite only ({TEST_DB_ENV} is not set: PostgreSQL cases are not collected)"


# --- PostgreSQL: one throwaway database per session --------------------------------------------------


class _Postgres:
    """The server named by ``ELICENCE_TEST_DATABASE_URL``: creates and drops scratch databases."""

    def __init__(self, url: str) -> None:
        self.base = normalise_url(url)
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            self.admin.connect().close()
        except OperationalError:
            # The named database may not exist on a fresh server: every server has `postgres`.
            self.admin = create_engine(self.base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.created: list[str] = []

    def create(self, prefix: str) -> str:
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            self.drop(self.base.set(database=name).render_as_string(hide_password=False))
        self.admin.dispose()


@pytest.fixture(scope="session")
def _postgres() -> Iterator[_Postgres]:
    url = os.environ.get(TEST_DB_ENV)
    if not url:  # pragma: no cover - the postgresql parameter only exists when it is set
        pytest.skip(f"{TEST_DB_ENV} is not set")
    server = _Postgres(url)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def _postgres_migrated(_postgres: _Postgres) -> str:
    url = _postgres.create("elicence_test")
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return url


def _truncate_all(url: str) -> None:
    # DELETE, children first, then restart the sequences: on a test's few rows this takes ~5 ms, where
    # TRUNCATE (which swaps every table's files) takes ~0.5 s, paid by every PostgreSQL test.
    tables = [t for md in role_metadata() for t in md.sorted_tables]
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for table in reversed(tables):
                connection.execute(table.delete())
            sequences = connection.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()")
            ).scalars()
            for name in list(sequences):
                connection.execute(text(f'ALTER SEQUENCE "{name}" RESTART'))
    finally:
        engine.dispose()


# --- SQLite: a migrated template file, copied per test -----------------------------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return str(path)


# --- the fixtures tests use --------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test case: ``sqlite`` or ``postgresql``."""
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of a migrated database with every table empty."""
    if backend == "sqlite":
        path = tmp_path / "elicence.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_postgres_migrated")
    _truncate_all(url)
    return url


@pytest.fixture
def empty_database_url(backend: str, request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of a database without any table (not migrated)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: _Postgres = request.getfixturevalue("_postgres")
    url = server.create("elicence_empty")
    try:
        yield url
    finally:
        server.drop(url)


@pytest.fixture
def engine(database_url: str):
    """An engine on ``database_url`` (pool large enough for the concurrency tests), disposed after."""
    engine = make_engine(database_url, pool_size=25)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine):
    """The session factory of ``engine``; use it with ``issuer.store.unit_of_work``."""
    return session_factory(engine)
