"""Fixtures of the system tests (several ``elicence serve`` processes on one PostgreSQL database).

- ``pg_url``: a fresh, empty PostgreSQL database (not migrated: the servers migrate it at start), created
  through ``ELICENCE_TEST_DATABASE_URL`` and dropped afterwards; the test is skipped without that variable.
- ``shared_secrets``: the settings every process of one deployment must share: the key-encryption key
  file and the trust list operator's key file (created by the first server that starts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from keys.keystore import write_kek_file

TEST_DB_ENV = "ELICENCE_TEST_DATABASE_URL"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if not os.environ.get(TEST_DB_ENV):
        pytest.skip(f"{TEST_DB_ENV} is not set: several servers on one database need PostgreSQL")
    server = request.getfixturevalue("_postgres")  # tests/conftest.py
    url = server.create("elicence_system")
    try:
        yield url
    finally:
        server.drop(url)


@pytest.fixture
def shared_secrets(tmp_path) -> dict[str, str]:
    """``ELICENCE_KEK_FILE`` and ``ELICENCE_TRUST_OPERATOR_KEY_FILE`` for every process of the deployment."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    write_kek_file(secrets_dir / "kek")
    return {"ELICENCE_KEK_FILE": str(secrets_dir / "kek"),
            "ELICENCE_TRUST_OPERATOR_KEY_FILE": str(secrets_dir / "trust-operator.jwk")}
