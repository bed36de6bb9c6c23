"""wallet: initial tables

Every table of the wallet role (docs: wallet/store.py). Written by hand from the models, checked by
tests/wallet/test_wallet_migrations.py, which asserts that the migrated schema and the models'
metadata do not differ on SQLite and PostgreSQL.

Times are ``DateTime(timezone=True)`` (``wallet.store`` stores UTC through it); the migration does
not import the models, so later changes to them cannot rewrite history.

Revision ID: wallet_0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wallet_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("wallet",)
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id(name: str = "id", *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(36), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "wallet_user",
        _id(),
        sa.Column("phone", sa.String(14), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("sign_in_failures", sa.Integer(), nullable=False),
        _time("sign_in_locked_until", nullable=True),
        sa.Column("pin_hash", sa.String(255), nullable=True),
        sa.Column("pin_failures", sa.Integer(), nullable=False),
        _time("pin_locked_until", nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_user"),
        sa.UniqueConstraint("phone", name="uq_wallet_user_phone"),
        sa.CheckConstraint("sign_in_failures >= 0", name="ck_wallet_user_sign_in_failures"),
        sa.CheckConstraint("pin_failures >= 0", name="ck_wallet_user_pin_failures"),
    )

    # A sign-in session is a family of rotating refresh tokens; revoking it ends every token in it.
    op.create_table(
        "wallet_session",
        _id(),
        _id("user_id"),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_session"),
        sa.ForeignKeyConstraint(["user_id"], ["wallet_user.id"], name="fk_wallet_session_user_id"),
    )
    op.create_index("ix_wallet_session_user_id", "wallet_session", ["user_id"])

    op.create_table(
        "wallet_refresh_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        _id("session_id"),
        _time("issued_at"),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_wallet_refresh_token"),
        sa.ForeignKeyConstraint(["session_id"], ["wallet_session.id"], name="fk_wallet_refresh_token_session_id"),
    )
    op.create_index("ix_wallet_refresh_token_session_id", "wallet_refresh_token", ["session_id"])
    op.create_index("ix_wallet_refresh_token_expires_at", "wallet_refresh_token", ["expires_at"])

    op.create_table(
        "wallet_access_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        _id("session_id"),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_wallet_access_token"),
        sa.ForeignKeyConstraint(["session_id"], ["wallet_session.id"], name="fk_wallet_access_token_session_id"),
    )
    op.create_index("ix_wallet_access_token_session_id", "wallet_access_token", ["session_id"])
    op.create_index("ix_wallet_access_token_expires_at", "wallet_access_token", ["expires_at"])

    op.create_table(
        "wallet_enterprise",
        _id(),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_enterprise"),
        sa.UniqueConstraint("uscc", name="uq_wallet_enterprise_uscc"),
    )

    op.create_table(
        "wallet_member",
        _id("enterprise_id"),
        _id("user_id"),
        sa.Column("role", sa.String(32), nullable=False),
        _id("added_by", nullable=True),
        _time("added_at"),
        sa.PrimaryKeyConstraint("enterprise_id", "user_id", name="pk_wallet_member"),
        sa.ForeignKeyConstraint(["enterprise_id"], ["wallet_enterprise.id"], name="fk_wallet_member_enterprise_id"),
        sa.ForeignKeyConstraint(["user_id"], ["wallet_user.id"], name="fk_wallet_member_user_id"),
        sa.ForeignKeyConstraint(["added_by"], ["wallet_user.id"], name="fk_wallet_member_added_by"),
        sa.CheckConstraint("role IN ('legal_representative', 'administrator', 'staff')", name="ck_wallet_member_role"),
    )
    op.create_index("ix_wallet_member_user_id", "wallet_member", ["user_id"])
    # Exactly one legal representative (法定代表人) per enterprise.
    op.create_index(
        "ix_wallet_member_one_legal_representative",
        "wallet_member",
        ["enterprise_id"],
        unique=True,
        sqlite_where=sa.text("role = 'legal_representative'"),
        postgresql_where=sa.text("role = 'legal_representative'"),
    )

    # The keystore (keys.keystore.KeyRecordStore): private keys only as AES-GCM ciphertext.
    op.create_table(
        "wallet_key",
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        _time("created_at"),
        _time("retired_at", nullable=True),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_wallet_key"),
        sa.CheckConstraint("state IN ('active', 'retired', 'revoked')", name="ck_wallet_key_state"),
    )
    op.create_index("ix_wallet_key_owner", "wallet_key", ["owner"])

    op.create_table(
        "wallet_kek_check",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_kek_check"),
        sa.CheckConstraint("id = 1", name="ck_wallet_kek_check_single_row"),
    )

    op.create_table(
        "wallet_credential",
        _id(),
        _id("enterprise_id", nullable=True),
        _id("user_id", nullable=True),
        sa.Column("holder_kid", sa.String(128), nullable=False),
        sa.Column("vct", sa.String(512), nullable=False),
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("configuration_id", sa.String(200), nullable=False),
        sa.Column("credential", sa.Text(), nullable=False),
        sa.Column("credential_hash", sa.String(64), nullable=False),
        _time("received_at"),
        _time("expires_at", nullable=True),
        sa.Column("status_list_uri", sa.String(512), nullable=True),
        sa.Column("status_list_idx", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        _time("status_checked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_credential"),
        sa.ForeignKeyConstraint(["enterprise_id"], ["wallet_enterprise.id"], name="fk_wallet_credential_enterprise_id"),
        sa.ForeignKeyConstraint(["user_id"], ["wallet_user.id"], name="fk_wallet_credential_user_id"),
        sa.ForeignKeyConstraint(["holder_kid"], ["wallet_key.kid"], name="fk_wallet_credential_holder_kid"),
        sa.UniqueConstraint("credential_hash", name="uq_wallet_credential_credential_hash"),
        sa.CheckConstraint("enterprise_id IS NOT NULL OR user_id IS NOT NULL", name="ck_wallet_credential_owner"),
        sa.CheckConstraint(
            "status IS NULL OR status IN ('valid', 'invalid', 'suspended')", name="ck_wallet_credential_status"
        ),
    )
    op.create_index("ix_wallet_credential_enterprise_id", "wallet_credential", ["enterprise_id"])
    op.create_index("ix_wallet_credential_user_id", "wallet_credential", ["user_id"])
    op.create_index("ix_wallet_credential_holder_kid", "wallet_credential", ["holder_kid"])

    # The usage record (用照记录): every presentation the wallet made.
    op.create_table(
        "wallet_usage",
        _id(),
        _id("enterprise_id", nullable=True),
        _id("user_id"),
        sa.Column("credential_ids", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("verifier_client_id", sa.String(512), nullable=True),
        sa.Column("verifier_name", sa.String(200), nullable=True),
        sa.Column("purpose", sa.String(500), nullable=True),
        sa.Column("disclosed", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("nonce", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name="pk_wallet_usage"),
        sa.ForeignKeyConstraint(["enterprise_id"], ["wallet_enterprise.id"], name="fk_wallet_usage_enterprise_id"),
        sa.ForeignKeyConstraint(["user_id"], ["wallet_user.id"], name="fk_wallet_usage_user_id"),
        sa.CheckConstraint("channel IN ('qr', 'openid4vp')", name="ck_wallet_usage_channel"),
        sa.CheckConstraint("outcome IN ('shown', 'sent', 'refused', 'failed')", name="ck_wallet_usage_outcome"),
    )
    op.create_index("ix_wallet_usage_enterprise_id_at", "wallet_usage", ["enterprise_id", "at"])
    op.create_index("ix_wallet_usage_user_id_at", "wallet_usage", ["user_id", "at"])


def downgrade() -> None:
    for table in (
        "wallet_usage",
        "wallet_credential",
        "wallet_kek_check",
        "wallet_key",
        "wallet_member",
        "wallet_enterprise",
        "wallet_access_token",
        "wallet_refresh_token",
        "wallet_session",
        "wallet_user",
    ):
        op.drop_table(table)  # their indexes go with them
