"""Evidence validation and storage; the hash-chained trail and its tamper detection."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from permits import audit
from permits.errors import EvidenceRejected, EvidenceTooLarge, RuleViolation
from permits.evidence import EvidenceStore, inspect
from permits.models import PermitType
from permits.service import PermitService
from tests.permits import factories as f

SH = ZoneInfo("Asia/Shanghai")


def test_evidence_jpeg_exif_place_and_time_read() -> None:
    """EXIF GPS and DateTimeOriginal of a photo become its place and time."""
    content = f.jpeg(3, gps=f.point_at(20), taken="2026:12:01 09:58:00")
    facts = inspect(content, kind="photo", step="s", max_bytes=10**6, tz=SH)
    assert facts.content_type == "image/jpeg"
    assert facts.sha256 == hashlib.sha256(content).hexdigest()
    assert facts.exif_point is not None
    assert abs(facts.exif_point.lat - f.point_at(20).lat) < 1e-5
    assert facts.exif_time == dt.datetime(2026, 12, 1, 9, 58, tzinfo=SH)


def test_evidence_pdf_refused_as_photo_accepted_as_document() -> None:
    """Types come from the bytes: a PDF is a document, never a photo."""
    with pytest.raises(EvidenceRejected, match="application/pdf"):
        inspect(f.PDF, kind="photo", step="s", max_bytes=10**6, tz=SH)
    assert inspect(f.PDF, kind="document", step="s", max_bytes=10**6, tz=SH).exif_point is None


def test_evidence_corrupt_image_refused() -> None:
    """A JPEG header on garbage is refused as corrupt."""
    with pytest.raises(EvidenceRejected) as exc:
        inspect(b"\xff\xd8\xff\xe0" + b"\x00" * 64, kind="photo", step="s", max_bytes=10**6, tz=SH)
    assert exc.value.rule == "evidence.corrupt"


def test_evidence_too_large_refused() -> None:
    """Files over the limit are refused before anything else."""
    with pytest.raises(EvidenceTooLarge):
        inspect(f.jpeg(1), kind="photo", step="s", max_bytes=100, tz=SH)


def test_evidence_store_content_addressed_and_checked(tmp_path: Path) -> None:
    """One copy per content under its hash; a changed file is detected on read."""
    store = EvidenceStore(tmp_path)
    data = f.jpeg(5)
    digest = hashlib.sha256(data).hexdigest()
    path = store.put(digest, data)
    assert store.put(digest, data) == path
    assert path == tmp_path / digest[:2] / digest[2:4] / digest
    assert store.read(digest) == data
    path.write_bytes(data + b"x")
    with pytest.raises(OSError, match="does not match"):
        store.read(digest)


async def test_evidence_upload_binds_uploader_place_and_hash_in_trail(
    svc: PermitService, seeded_url: str
) -> None:
    """An upload without a position takes the EXIF place; its hash is in the trail."""
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(PermitType.SX))
    content = f.jpeg(9, gps=f.point_at(10))
    e = await svc.add_evidence(
        actor=f.actor("wat"), permit_id=p.permit_id, step="isolation", content=content
    )
    assert (e.uploaded_by, e.place_source) == ("wat", "exif")
    assert (svc.store.root / e.sha256[:2] / e.sha256[2:4] / e.sha256).read_bytes() == content
    with psycopg.connect(seeded_url) as conn:
        row = conn.execute("SELECT body FROM audit_log WHERE action = 'evidence'").fetchone()
    assert row is not None
    assert e.sha256 in row[0]


async def test_evidence_unknown_step_refused(svc: PermitService) -> None:
    """Files go to the template's steps only."""
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(PermitType.SX))
    with pytest.raises(RuleViolation, match="selfie"):
        await svc.add_evidence(
            actor=f.actor("wat"), permit_id=p.permit_id, step="selfie", content=f.jpeg(1)
        )


async def test_audit_chain_verifies_after_a_lifecycle(svc: PermitService) -> None:
    """Every action is chained; the chain verifies."""
    p = await f.activate(svc, await f.ready(svc, f.permit_create(PermitType.DH)))
    report = await svc.verify_trail()
    entries = await svc.trail(permit_id=p.permit_id)
    assert report.ok
    assert report.entries >= len(entries) >= 10
    assert [e.action for e in entries][:2] == ["create", "evidence"]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries) if b.seq == a.seq + 1)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
        "TRUNCATE audit_log",
    ],
)
async def test_audit_log_refuses_update_delete_truncate(
    svc: PermitService, seeded_url: str, statement: str
) -> None:
    """The database keeps the trail append-only."""
    await svc.create(actor=f.actor("app"), data=f.permit_create(PermitType.SX))
    with (
        psycopg.connect(seeded_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(statement)


def _tamper(url: str, sql: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")  # a superuser going around
        conn.execute(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "UPDATE audit_log SET body = replace(body, '\"app\"', '\"eve\"') WHERE seq = 2",
            "body altered",
        ),
        ("UPDATE audit_log SET actor = 'eve' WHERE seq = 2", "columns altered"),
        ("DELETE FROM audit_log WHERE seq = 2", "sequence gap"),
    ],
)
async def test_audit_verify_detects_tampering(
    svc: PermitService, seeded_url: str, sql: str, reason: str
) -> None:
    """Edits behind the application's back are found at the first broken entry."""
    for _ in range(3):
        await svc.create(actor=f.actor("app"), data=f.permit_create(PermitType.SX))
    assert (await svc.verify_trail()).ok
    _tamper(seeded_url, sql)
    report = await svc.verify_trail()
    assert (report.ok, report.first_bad_seq) == (False, 2 if "DELETE" not in sql else 3)
    assert report.reason is not None
    assert reason in report.reason


async def test_audit_verify_detects_rewritten_chain_suffix(
    svc: PermitService, seeded_url: str
) -> None:
    """Re-hashing an altered entry breaks the link from the next one."""
    for _ in range(3):
        await svc.create(actor=f.actor("app"), data=f.permit_create(PermitType.SX))
    with psycopg.connect(seeded_url) as conn:
        seq, at, actor, action, pid, prev = conn.execute(
            "SELECT seq, at, actor, action, permit_id, prev_hash FROM audit_log WHERE seq = 2"
        ).fetchone()  # type: ignore[misc]
    body = audit.canonical(
        seq=seq, at=at, actor=actor, action=action, permit_id=pid, data={"forged": True}
    )
    _tamper(
        seeded_url,
        f"UPDATE audit_log SET body = '{body}', hash = "
        f"'{audit.chain_hash(prev, body)}' WHERE seq = 2",
    )
    report = await svc.verify_trail()
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert report.reason == "prev_hash does not match the previous entry's hash"
