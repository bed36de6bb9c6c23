"""The wallet's Alembic migrations produce exactly the tables of wallet/store.py, on every backend."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect

from elicence.db import alembic_config, make_engine, migrate, role_metadata, target_heads
from wallet.store import WalletBase

WALLET_TABLES = {
    "wallet_user",
    "wallet_session",
    "wallet_refresh_token",
    "wallet_access_token",
    "wallet_enterprise",
    "wallet_member",
    "wallet_key",
    "wallet_kek_check",
    "wallet_credential",
    "wallet_usage",
}


def _wallet_differences(engine, metadata: MetaData) -> list:
    """Differences between the database and ``metadata``, on the wallet's tables only."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = compare_metadata(context, metadata)
    return [d for d in diffs if "wallet_" in repr(d)]


def test_migrated_schema_equals_the_models(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        assert "wallet_0001" in migrate(engine)
        assert WALLET_TABLES <= set(inspect(engine).get_table_names())
        assert _wallet_differences(engine, WalletBase.metadata) == []
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("wallet_member")}
        assert indexes["ix_wallet_member_one_legal_representative"]["unique"]
    finally:
        engine.dispose()


def test_the_comparison_sees_a_model_change_the_migrations_lack(database_url):
    changed = MetaData(naming_convention=WalletBase.metadata.naming_convention)
    for table in WalletBase.metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "wallet_usage":
            copy.append_column(Column("extra", Integer, nullable=True))
    engine = make_engine(database_url)
    try:
        kinds = {d[0] for d in _wallet_differences(engine, changed) if isinstance(d, tuple)}
    finally:
        engine.dispose()
    assert "add_column" in kinds


def test_the_wallet_branch_is_labelled_and_a_head():
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_revision("wallet@head").revision == "wallet_0001"
    assert "wallet" in scripts.get_revision("wallet_0001").branch_labels
    assert "wallet_0001" in target_heads()
    assert WalletBase.metadata in role_metadata()
    assert {t.name for t in WalletBase.metadata.sorted_tables} == WALLET_TABLES


def test_downgrading_the_wallet_branch_removes_only_its_tables(empty_database_url):
    engine = make_engine(empty_database_url)
    try:
        migrate(engine)
        others = set(inspect(engine).get_table_names()) - WALLET_TABLES
        cfg = alembic_config(engine)
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "wallet@base")
        assert set(inspect(engine).get_table_names()) == others
        migrate(engine)
        assert WALLET_TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
