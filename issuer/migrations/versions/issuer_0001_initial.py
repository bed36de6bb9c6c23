"""issuer: initial tables

Every table of the issuer role (docs: issuer/store.py). Written by hand from the models, checked by
tests/issuer/test_issuer_migrations.py, which asserts that the migrated schema and the models'
metadata do not differ on SQLite and PostgreSQL.

Times are ``DateTime(timezone=True)`` (``issuer.store.UtcDateTime`` stores UTC through it); the
migration does not import the models, so later changes to them cannot rewrite history.

Revision ID: issuer_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "issuer_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("issuer",)
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "issuer_authority",
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("issuer_id", sa.String(512), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("vcts", sa.JSON(), nullable=False),
        sa.Column("status_list_size", sa.Integer(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("slug", name="pk_issuer_authority"),
        sa.UniqueConstraint("issuer_id", name="uq_issuer_authority_issuer_id"),
    )

    op.create_table(
        "issuer_operator",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("authority_slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_issuer_operator"),
        sa.ForeignKeyConstraint(["authority_slug"], ["issuer_authority.slug"], name="fk_issuer_operator_authority_slug"),
        sa.UniqueConstraint("key_hash", name="uq_issuer_operator_key_hash"),
    )
    op.create_index("ix_issuer_operator_authority_slug", "issuer_operator", ["authority_slug"])

    # The keystore (keys.keystore.KeyRecordStore): private keys only as AES-GCM ciphertext.
    op.create_table(
        "issuer_key",
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
        sa.PrimaryKeyConstraint("kid", name="pk_issuer_key"),
        sa.ForeignKeyConstraint(["owner"], ["issuer_authority.slug"], name="fk_issuer_key_owner"),
        sa.CheckConstraint("state IN ('active', 'retired', 'revoked')", name="ck_issuer_key_state"),
    )
    op.create_index("ix_issuer_key_owner", "issuer_key", ["owner"])

    op.create_table(
        "issuer_kek_check",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_issuer_kek_check"),
        sa.CheckConstraint("id = 1", name="ck_issuer_kek_check_single_row"),
    )

    op.create_table(
        "issuer_record",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("authority_slug", sa.String(64), nullable=False),
        sa.Column("vct", sa.String(512), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_issuer_record"),
        sa.ForeignKeyConstraint(["authority_slug"], ["issuer_authority.slug"], name="fk_issuer_record_authority_slug"),
        sa.UniqueConstraint("authority_slug", "vct", "uscc", name="uq_issuer_record_authority_slug_vct_uscc"),
        sa.CheckConstraint("length(uscc) = 18", name="ck_issuer_record_uscc_length"),
    )
    op.create_index("ix_issuer_record_uscc", "issuer_record", ["uscc"])

    op.create_table(
        "issuer_status_list",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("authority_slug", sa.String(64), nullable=False),
        sa.Column("uri", sa.String(512), nullable=False),
        sa.Column("bits", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("statuses", sa.LargeBinary(), nullable=False),
        sa.Column("used", sa.LargeBinary(), nullable=False),
        sa.Column("used_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_issuer_status_list"),
        sa.ForeignKeyConstraint(
            ["authority_slug"], ["issuer_authority.slug"], name="fk_issuer_status_list_authority_slug"
        ),
        sa.UniqueConstraint("uri", name="uq_issuer_status_list_uri"),
        sa.CheckConstraint("bits IN (1, 2, 4, 8)", name="ck_issuer_status_list_bits"),
        sa.CheckConstraint("used_count >= 0 AND used_count <= size", name="ck_issuer_status_list_used_count"),
    )
    op.create_index("ix_issuer_status_list_authority_slug", "issuer_status_list", ["authority_slug"])

    op.create_table(
        "issuer_credential",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("authority_slug", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=True),
        sa.Column("vct", sa.String(512), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("holder_thumbprint", sa.String(128), nullable=True),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("status_list_id", sa.Integer(), nullable=False),
        sa.Column("status_idx", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        _time("status_changed_at", nullable=True),
        _time("issued_at"),
        _time("expires_at", nullable=True),
        sa.Column("replaced_by", sa.String(36), nullable=True),
        sa.Column("granted_under", sa.String(36), nullable=True),
        sa.Column("credential_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_issuer_credential"),
        sa.ForeignKeyConstraint(
            ["authority_slug"], ["issuer_authority.slug"], name="fk_issuer_credential_authority_slug"
        ),
        sa.ForeignKeyConstraint(["record_id"], ["issuer_record.id"], name="fk_issuer_credential_record_id"),
        sa.ForeignKeyConstraint(["kid"], ["issuer_key.kid"], name="fk_issuer_credential_kid"),
        sa.ForeignKeyConstraint(
            ["status_list_id"], ["issuer_status_list.id"], name="fk_issuer_credential_status_list_id"
        ),
        sa.ForeignKeyConstraint(["replaced_by"], ["issuer_credential.id"], name="fk_issuer_credential_replaced_by"),
        sa.ForeignKeyConstraint(
            ["granted_under"], ["issuer_credential.id"], name="fk_issuer_credential_granted_under"
        ),
        # Two credentials never share a status index (DESIGN.md: "What must never happen").
        sa.UniqueConstraint(
            "status_list_id", "status_idx", name="uq_issuer_credential_status_list_id_status_idx"
        ),
        sa.CheckConstraint("status IN ('valid', 'suspended', 'revoked')", name="ck_issuer_credential_status"),
    )
    op.create_index("ix_issuer_credential_uscc", "issuer_credential", ["uscc"])
    op.create_index("ix_issuer_credential_status", "issuer_credential", ["status"])
    op.create_index("ix_issuer_credential_issued_at", "issuer_credential", ["issued_at"])
    op.create_index("ix_issuer_credential_kid", "issuer_credential", ["kid"])
    op.create_index("ix_issuer_credential_granted_under", "issuer_credential", ["granted_under"])
    op.create_index("ix_issuer_credential_record_id", "issuer_credential", ["record_id"])
    op.create_index("ix_issuer_credential_credential_hash", "issuer_credential", ["credential_hash"])
    op.create_index(
        "ix_issuer_credential_authority_slug_issued_at", "issuer_credential", ["authority_slug", "issued_at"]
    )

    op.create_table(
        "issuer_offer",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("authority_slug", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=True),
        sa.Column("configuration_id", sa.String(200), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("pin_salt", sa.LargeBinary(), nullable=True),
        sa.Column("pin_hash", sa.LargeBinary(), nullable=True),
        sa.Column("pin_attempts", sa.Integer(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=True),
        sa.Column("granted_under", sa.String(36), nullable=True),
        _time("expires_at"),
        sa.Column("state", sa.String(16), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_issuer_offer"),
        sa.ForeignKeyConstraint(["authority_slug"], ["issuer_authority.slug"], name="fk_issuer_offer_authority_slug"),
        sa.ForeignKeyConstraint(["record_id"], ["issuer_record.id"], name="fk_issuer_offer_record_id"),
        sa.ForeignKeyConstraint(["granted_under"], ["issuer_credential.id"], name="fk_issuer_offer_granted_under"),
        sa.UniqueConstraint("code_hash", name="uq_issuer_offer_code_hash"),
        sa.CheckConstraint(
            "state IN ('offered', 'redeemed', 'issued', 'expired', 'withdrawn')", name="ck_issuer_offer_state"
        ),
        sa.CheckConstraint("pin_attempts >= 0", name="ck_issuer_offer_pin_attempts"),
    )
    op.create_index("ix_issuer_offer_authority_slug", "issuer_offer", ["authority_slug"])
    op.create_index("ix_issuer_offer_record_id", "issuer_offer", ["record_id"])

    op.create_table(
        "issuer_access_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("offer_id", sa.String(36), nullable=False),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_issuer_access_token"),
        sa.ForeignKeyConstraint(["offer_id"], ["issuer_offer.id"], name="fk_issuer_access_token_offer_id"),
    )
    op.create_index("ix_issuer_access_token_offer_id", "issuer_access_token", ["offer_id"])
    op.create_index("ix_issuer_access_token_expires_at", "issuer_access_token", ["expires_at"])

    op.create_table(
        "issuer_nonce",
        sa.Column("value", sa.String(128), nullable=False),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("value", name="pk_issuer_nonce"),
    )
    op.create_index("ix_issuer_nonce_expires_at", "issuer_nonce", ["expires_at"])

    op.create_table(
        "issuer_idempotency",
        sa.Column("operator_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("operator_id", "key", name="pk_issuer_idempotency"),
        sa.ForeignKeyConstraint(["operator_id"], ["issuer_operator.id"], name="fk_issuer_idempotency_operator_id"),
    )
    op.create_index("ix_issuer_idempotency_created_at", "issuer_idempotency", ["created_at"])

    # The hash-chained audit log (credentials.audit); one chain per authority.
    op.create_table(
        "issuer_audit",
        sa.Column("chain", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        _time("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", "seq", name="pk_issuer_audit"),
    )
    op.create_table(
        "issuer_audit_head",
        sa.Column("chain", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_issuer_audit_head"),
    )


def downgrade() -> None:
    for table in (
        "issuer_audit_head",
        "issuer_audit",
        "issuer_idempotency",
        "issuer_nonce",
        "issuer_access_token",
        "issuer_offer",
        "issuer_credential",
        "issuer_status_list",
        "issuer_record",
        "issuer_kek_check",
        "issuer_key",
        "issuer_operator",
        "issuer_authority",
    ):
        op.drop_table(table)  # their indexes go with them
