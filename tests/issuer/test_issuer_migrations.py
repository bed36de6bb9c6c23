"""The issuer's Alembic migrations produce exactly the tables of issuer/store.py, on every backend."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, Integer, MetaData, inspect

from elicence.db import alembic_config, current_heads, make_engine, migrate, role_metadata, target_heads
from issuer.store import IssuerBase

ISSUER_TABLES = {
    "issuer_authority",
    "issuer_operator",
    "issuer_key",
    "issuer_kek_check",
    "issuer_record",
    "issuer_status_list",
    "issuer_status_token",
    "issuer_credential",
    "issuer_offer",
    "issuer_access_token",
    "issuer_nonce",
    "issuer_idempotency",
    "issuer_audit",
    "issuer_audit_head",
}


def _differences(engine, metadata: MetaData) -> list:
    with engine.connect() as connection:
        # Other roles' tables live in the same database: compare the issuer's own only.
        context = MigrationContext.configure(connection, opts={
            "compare_type": True,
            "include_name": lambda name, type_, parent: type_ != "table" or name.startswith("issuer_"),
        })
        return compare_metadata(context, metadata)


def test_migrated_schema_equals_the_models(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        assert "issuer_0002" in migrate(engine)
        assert {t for t in inspect(engine).get_table_names() if t.startswith("issuer_")} == ISSUER_TABLES
        assert _differences(engine, IssuerBase.metadata) == []
    finally:
        engine.dispose()


def test_the_comparison_sees_a_model_change_the_migrations_lack(database_url):
    # The check above can fail: a column and an index the migrations never created are reported.
    changed = MetaData(naming_convention=IssuerBase.metadata.naming_convention)
    for table in IssuerBase.metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "issuer_credential":
            copy.append_column(Column("extra", Integer, nullable=True))
            Index("ix_issuer_credential_extra", copy.c.extra)
    engine = make_engine(database_url)
    try:
        kinds = {diff[0] if isinstance(diff, tuple) else diff[0][0] for diff in _differences(engine, changed)}
    finally:
        engine.dispose()
    assert {"add_column", "add_index"} <= kinds


def test_migrate_is_idempotent_and_reaches_every_head(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        assert current_heads(engine) == set()
        migrate(engine)
        migrate(engine)
        assert current_heads(engine) == target_heads()
        assert "issuer_0002" in target_heads()
    finally:
        engine.dispose()


def test_the_issuer_branch_is_labelled():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_revision("issuer@head").revision == "issuer_0002"
    assert "issuer" in scripts.get_revision("issuer_0001").branch_labels


def test_downgrading_the_issuer_branch_removes_its_tables(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        migrate(engine)
        cfg = alembic_config(engine)
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "issuer@base")
        assert not ISSUER_TABLES & set(inspect(engine).get_table_names())
        migrate(engine)  # and back up again
        assert ISSUER_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_every_role_metadata_is_migrated():
    assert IssuerBase.metadata in role_metadata()
    assert {t.name for t in IssuerBase.metadata.sorted_tables} == ISSUER_TABLES
