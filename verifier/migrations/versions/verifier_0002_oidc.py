"""verifier: portals and logins ("log in with e-licence", OpenID Connect)

``verifier_portal`` (registered OpenID Connect clients of a department) and ``verifier_login`` (one
authorization request, its OpenID4VP transaction, code and access token, hashed). Written by hand from
the models in verifier/store.py; tests/verifier/service/test_verifier_oidc_store.py checks that the
migrated schema equals the models on SQLite and PostgreSQL.

Revision ID: verifier_0002
Revises: verifier_0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "verifier_0002"
down_revision: str | Sequence[str] | None = "verifier_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "verifier_portal",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("department_slug", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("allow_staff", sa.Boolean(), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("pairwise_salt", sa.String(64), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("client_id", name="pk_verifier_portal"),
        sa.ForeignKeyConstraint(["department_slug"], ["verifier_department.slug"],
                                name="fk_verifier_portal_department_slug"),
    )
    op.create_index("ix_verifier_portal_department_slug", "verifier_portal", ["department_slug"])
    op.create_table(
        "verifier_login",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("state", sa.String(512), nullable=True),
        sa.Column("nonce", sa.String(512), nullable=False),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("auth_time", nullable=True),
        sa.Column("identity", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("error_description", sa.String(300), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        _time("code_expires_at", nullable=True),
        _time("redeemed_at", nullable=True),
        sa.Column("access_hash", sa.String(64), nullable=True),
        _time("access_expires_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_verifier_login"),
        sa.ForeignKeyConstraint(["client_id"], ["verifier_portal.client_id"], name="fk_verifier_login_client_id"),
        sa.UniqueConstraint("transaction_id", name="uq_verifier_login_transaction_id"),
        sa.UniqueConstraint("code_hash", name="uq_verifier_login_code_hash"),
        sa.UniqueConstraint("access_hash", name="uq_verifier_login_access_hash"),
        sa.CheckConstraint("status IN ('pending', 'code', 'failed', 'redeemed', 'revoked')",
                           name="ck_verifier_login_status"),
    )
    op.create_index("ix_verifier_login_client_id", "verifier_login", ["client_id"])


def downgrade() -> None:
    op.drop_table("verifier_login")
    op.drop_table("verifier_portal")
