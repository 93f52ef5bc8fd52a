"""The transparency log: entries, the compact range, signed checkpoints; existing events
become the first entries, in serial order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from moorage.log.compact import CompactRange
from moorage.log.entry import encode_entry
from moorage.log.merkle import leaf_hash
from moorage.store.tables import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_entries",
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_log_entries")),
        sa.UniqueConstraint("serial", name=op.f("uq_log_entries_serial")),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("nodes", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_state")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_checkpoints")),
    )
    conn = op.get_bind()
    events = sa.table("events", sa.column("serial"), sa.column("created_at", UTCDateTime),
                      sa.column("actor"), sa.column("action"), sa.column("subject"), sa.column("project"),
                      sa.column("payload", sa.JSON))
    entries = sa.table("log_entries", sa.column("idx"), sa.column("serial"), sa.column("entry"),
                       sa.column("leaf_hash"))
    compact = CompactRange()
    batch = []
    for row in conn.execute(sa.select(events).order_by(events.c.serial)):
        entry = encode_entry(compact.size, row.serial, row.created_at, row.actor, row.action, row.subject,
                             row.project, row.payload)
        lh = leaf_hash(entry)
        batch.append({"idx": compact.size, "serial": row.serial, "entry": entry, "leaf_hash": lh})
        compact.append(lh)
    if batch:
        conn.execute(entries.insert(), batch)
    state = sa.table("log_state", sa.column("id"), sa.column("size"), sa.column("nodes", sa.JSON))
    conn.execute(state.insert().values(id=1, size=compact.size, nodes=compact.to_json()["nodes"]))


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("log_state")
    op.drop_table("log_entries")
