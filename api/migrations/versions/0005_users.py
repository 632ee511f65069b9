"""Users of the API: argon2id password hashes, roles, sites, token revocation.

A user has one or more roles (from the fixed set of `api.auth.Role`) and either every site
(``all_sites``) or the sites listed in ``user_sites``. ``token_version`` is carried by refresh
tokens: bumping it (logout, password change, disabling) revokes them all.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        r"""
        CREATE TABLE users (
            username      text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
            display_name  text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
            password_hash text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
            roles         text[] NOT NULL CHECK (
                              cardinality(roles) >= 1
                              AND roles <@ ARRAY['worker', 'watcher', 'supervisor', 'approver',
                                                 'safety', 'control_room', 'admin']::text[]),
            all_sites     boolean NOT NULL DEFAULT false,
            worker_id     text REFERENCES workers ON DELETE SET NULL,
            disabled      boolean NOT NULL DEFAULT false,
            token_version integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            password_changed_at timestamptz NOT NULL DEFAULT now(),
            last_login_at timestamptz
        );
        CREATE UNIQUE INDEX users_worker_idx ON users (worker_id) WHERE worker_id IS NOT NULL;
        CREATE TABLE user_sites (
            username text NOT NULL REFERENCES users ON DELETE CASCADE,
            site_id  text NOT NULL REFERENCES sites,
            PRIMARY KEY (username, site_id)
        );
        CREATE INDEX user_sites_site_idx ON user_sites (site_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS user_sites, users CASCADE")
