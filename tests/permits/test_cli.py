"""The permit sub-commands of `permitpulse`."""

from __future__ import annotations

import psycopg
import pytest

from api.cli import main


def test_cli_permit_user_then_audit_verify(
    seeded_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`permit-user` stores a user with roles; `audit-verify` prints the chain check."""
    monkeypatch.setenv("PP_DATABASE_URL", seeded_url)
    assert main(["permit-user", "zhang", "--name", "张工", "--roles", "applicant, watcher"]) == 0
    with psycopg.connect(seeded_url) as conn:
        row = conn.execute("SELECT name, roles FROM permit_users WHERE user_id = 'zhang'")
        assert row.fetchone() == ("张工", ["applicant", "watcher"])
    assert main(["audit-verify"]) == 0
    assert '"ok":true' in capsys.readouterr().out
