"""Revenue facts per person: each company's payments and memberships (issue 11).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "payment_facts",
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("person_key", sa.String(64), nullable=False),
        sa.Column("net", sa.String(40), nullable=True),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("paid_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("company_id", "payment_id", name="pk_payment_facts"),
    )
    op.create_index("ix_payment_facts_person", "payment_facts", ["person_key"])
    op.create_table(
        "membership_facts",
        sa.Column("company_id", sa.String(64), nullable=False),
        sa.Column("membership_id", sa.String(64), nullable=False),
        sa.Column("person_key", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("company_id", "membership_id", name="pk_membership_facts"),
    )
    op.create_index("ix_membership_facts_person", "membership_facts", ["person_key"])


def downgrade() -> None:
    op.drop_index("ix_membership_facts_person", "membership_facts")
    op.drop_table("membership_facts")
    op.drop_index("ix_payment_facts_person", "payment_facts")
    op.drop_table("payment_facts")
