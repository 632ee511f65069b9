"""Detector state snapshots: a restart resumes core-temperature estimates and baselines.

One row per pipeline (``shard``: the ingest worker or site whose devices it serves), the
latest snapshot only; ``version`` is the snapshot format, ``sha256`` guards the bytes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE detector_snapshots (
            shard       text PRIMARY KEY
                        CHECK (shard ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'),
            version     integer NOT NULL CHECK (version > 0),
            devices     integer NOT NULL CHECK (devices >= 0),
            samples     bigint NOT NULL CHECK (samples >= 0),
            snapshot    bytea NOT NULL CHECK (octet_length(snapshot) > 0),
            sha256      bytea NOT NULL CHECK (octet_length(sha256) = 32),
            saved_at    timestamptz NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS detector_snapshots")
