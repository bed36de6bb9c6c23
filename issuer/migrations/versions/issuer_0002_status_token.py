"""issuer: one stored status list token per list, shared by every worker

A verifier's cache refuses a status list token signed before the one it holds; workers that each signed
their own copy of an unchanged list made verifiers answer ``cannot_verify`` at random. The signed token
is now kept in ``issuer_status_token`` and replaced only by a later signing.

Revision ID: issuer_0002
Revises: issuer_0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "issuer_0002"
down_revision: str | Sequence[str] | None = "issuer_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issuer_status_token",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(128), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("list_id", name="pk_issuer_status_token"),
        sa.ForeignKeyConstraint(["list_id"], ["issuer_status_list.id"], name="fk_issuer_status_token_list_id"),
    )


def downgrade() -> None:
    op.drop_table("issuer_status_token")
