"""verifier: initial tables

Every table of the verifier service (docs: verifier/store.py). Written by hand from the models, checked
by tests/verifier/service/test_verifier_store.py, which asserts that the migrated schema and the
models' metadata do not differ on SQLite and PostgreSQL. The migration does not import the models, so
later changes to them cannot rewrite history.

Revision ID: verifier_0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "verifier_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("verifier",)
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "verifier_registrar",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_verifier_registrar"),
    )
    op.create_table(
        "verifier_department",
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("name_zh", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=False),
        sa.Column("dns_name", sa.String(253), nullable=False),
        sa.Column("vcts", sa.JSON(), nullable=False),
        sa.Column("kid", sa.String(128), nullable=True),
        sa.Column("certificate", sa.Text(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("slug", name="pk_verifier_department"),
    )
    op.create_table(
        "verifier_staff",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("department_slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_verifier_staff"),
        sa.ForeignKeyConstraint(["department_slug"], ["verifier_department.slug"],
                                name="fk_verifier_staff_department_slug"),
        sa.UniqueConstraint("key_hash", name="uq_verifier_staff_key_hash"),
    )
    op.create_index("ix_verifier_staff_department_slug", "verifier_staff", ["department_slug"])
    op.create_table(
        "verifier_key",
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
        sa.PrimaryKeyConstraint("kid", name="pk_verifier_key"),
        sa.CheckConstraint("state IN ('active', 'retired', 'revoked')", name="ck_verifier_key_state"),
    )
    op.create_index("ix_verifier_key_owner", "verifier_key", ["owner"])
    op.create_table(
        "verifier_kek_check",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verifier_kek_check"),
    )
    op.create_table(
        "verifier_transaction",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("department_slug", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.String(36), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("request_object", sa.Text(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("responded_at", nullable=True),
        sa.Column("verdict", sa.String(32), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_verifier_transaction"),
        sa.ForeignKeyConstraint(["department_slug"], ["verifier_department.slug"],
                                name="fk_verifier_transaction_department_slug"),
        sa.CheckConstraint("status IN ('pending', 'responding', 'complete')", name="ck_verifier_transaction_status"),
    )
    op.create_index("ix_verifier_transaction_department_slug", "verifier_transaction", ["department_slug"])
    op.create_index("ix_verifier_transaction_expires_at", "verifier_transaction", ["expires_at"])
    op.create_table(
        "verifier_replay",
        sa.Column("key", sa.String(64), nullable=False),
        _time("expires_at"),
        sa.PrimaryKeyConstraint("key", name="pk_verifier_replay"),
    )
    op.create_index("ix_verifier_replay_expires_at", "verifier_replay", ["expires_at"])
    op.create_table(
        "verifier_verification",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("department_slug", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.String(36), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("vcts", sa.JSON(), nullable=False),
        sa.Column("receipt_id", sa.String(64), nullable=True),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name="pk_verifier_verification"),
        sa.ForeignKeyConstraint(["department_slug"], ["verifier_department.slug"],
                                name="fk_verifier_verification_department_slug"),
    )
    op.create_index("ix_verifier_verification_department_slug", "verifier_verification", ["department_slug"])
    op.create_index("ix_verifier_verification_at", "verifier_verification", ["at"])
    op.create_table(
        "verifier_audit",
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        _time("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", "seq", name="pk_verifier_audit"),
    )
    op.create_table(
        "verifier_audit_head",
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_verifier_audit_head"),
    )


def downgrade() -> None:
    for table in ("verifier_audit_head", "verifier_audit", "verifier_verification", "verifier_replay", "verifier_transaction",
                  "verifier_kek_check", "verifier_key", "verifier_staff", "verifier_department", "verifier_registrar"):
        op.drop_table(table)
