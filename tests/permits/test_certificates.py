"""Certificate verification: the registry's judgements and the HTTP verifier's failure modes
against a real local HTTP server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from permits.certificates import HttpVerifier, RegistryVerifier, compare
from permits.config import CertificateSettings
from permits.models import CertOutcome
from tests.permits import factories as f

NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, "ok"),
        ({"valid_until": dt.date(2026, 11, 30)}, "expired"),
        ({"issuer": "other bureau"}, "issuer_mismatch"),
        ({"trade": "height"}, "trade_mismatch"),
        ({"worker_id": "w2"}, "holder_mismatch"),
        ({"valid_until": dt.date(2029, 7, 1)}, "validity_mismatch"),
        ({"number": "NOPE"}, "not_found"),
    ],
)
async def test_registry_verify_judgements(change: dict[str, object], reason: str) -> None:
    """Each mismatch or lapse is a named reason; only a full match is valid (4.9)."""
    report = await f.verifier().verify(f.claim("w1", **change), at=NOW)
    assert report.reason == reason
    assert report.ok is (reason == "ok")


def test_registry_review_overdue_and_revoked_block() -> None:
    """A missed review (复审) or a revoked certificate blocks the worker."""
    rec = f.registry_records()[f.cert_number("w1")]
    late = dataclasses.replace(rec, review_due=dt.date(2026, 11, 30))
    revoked = dataclasses.replace(rec, status="revoked")
    assert compare(f.claim("w1"), late, at=NOW, source="t").reason == "review_overdue"
    assert compare(f.claim("w1"), revoked, at=NOW, source="t").reason == "revoked"


def test_registry_from_csv_loads_and_refuses_malformed_rows(tmp_path: Path) -> None:
    """The CSV import reads every row, and names the line of a malformed one."""
    good = tmp_path / "reg.csv"
    good.write_text(f.registry_csv_text(), encoding="utf-8")
    reg = RegistryVerifier.from_csv(good)
    assert len(reg._records) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text(f.registry_csv_text() + "X1,height,w9,W,issuer,not-a-date,,valid\n")
    with pytest.raises(ValueError, match=r"bad\.csv:6"):
        RegistryVerifier.from_csv(bad)


class FakeAuthority:
    """A local HTTP authority whose reply per certificate number is scripted."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, bytes, float]]] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                number = self.path.rsplit("/", 1)[-1]
                outer.hits[number] = outer.hits.get(number, 0) + 1
                steps = outer.script.get(number) or [(404, b"{}", 0.0)]
                status, body, delay = steps.pop(0) if len(steps) > 1 else steps[0]
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def authority() -> Iterator[FakeAuthority]:
    a = FakeAuthority()
    yield a
    a.close()


def record_json(worker: str, **changes: object) -> bytes:
    rec = f.registry_records()[f.cert_number(worker)]
    body = {
        "number": rec.number,
        "trade": rec.trade,
        "holder_id": rec.holder_id,
        "holder_name": rec.holder_name,
        "issuer": rec.issuer,
        "valid_until": rec.valid_until.isoformat(),
        "review_due": rec.review_due.isoformat() if rec.review_due else None,
        "status": "valid",
        **changes,
    }
    return json.dumps(body).encode()


def http_settings(url: str, **kw: object) -> CertificateSettings:
    base: dict[str, object] = {
        "verifier": "http",
        "http_url": url,
        "http_timeout_s": 0.3,
        "http_retries": 2,
        "http_backoff_s": 0.01,
    }
    return CertificateSettings(**{**base, **kw})


async def test_http_verifier_valid_record(authority: FakeAuthority) -> None:
    """A matching record from the authority is valid, with the source named."""
    authority.script[f.cert_number("w1")] = [(200, record_json("w1"), 0.0)]
    async with HttpVerifier(http_settings(authority.url)) as v:
        report = await v.verify(f.claim("w1"), at=NOW)
    assert (report.outcome, report.reason, report.source) == (CertOutcome.VALID, "ok", "http")


async def test_http_verifier_404_is_invalid_not_found(authority: FakeAuthority) -> None:
    """The authority does not know the number: the certificate is invalid."""
    async with HttpVerifier(http_settings(authority.url)) as v:
        report = await v.verify(f.claim("w1", number="FORGED-1"), at=NOW)
    assert (report.outcome, report.reason) == (CertOutcome.INVALID, "not_found")


async def test_http_verifier_timeout_retries_then_unverifiable(authority: FakeAuthority) -> None:
    """An authority slower than the timeout on every try: unverifiable, reason timeout."""
    number = f.cert_number("w1")
    authority.script[number] = [(200, record_json("w1"), 1.0)]
    async with HttpVerifier(http_settings(authority.url)) as v:
        report = await v.verify(f.claim("w1"), at=NOW)
    assert (report.outcome, report.reason) == (CertOutcome.UNVERIFIABLE, "timeout")
    assert authority.hits[number] == 3


async def test_http_verifier_5xx_then_success_after_retry(authority: FakeAuthority) -> None:
    """A 503 is retried; the answer after it counts."""
    number = f.cert_number("w1")
    authority.script[number] = [(503, b"busy", 0.0), (200, record_json("w1"), 0.0)]
    async with HttpVerifier(http_settings(authority.url)) as v:
        report = await v.verify(f.claim("w1"), at=NOW)
    assert (report.outcome, authority.hits[number]) == (CertOutcome.VALID, 2)


async def test_http_verifier_5xx_persistent_unverifiable(authority: FakeAuthority) -> None:
    """A 500 on every try: unverifiable, reason http_500."""
    authority.script[f.cert_number("w1")] = [(500, b"oops", 0.0)]
    async with HttpVerifier(http_settings(authority.url)) as v:
        report = await v.verify(f.claim("w1"), at=NOW)
    assert (report.outcome, report.reason) == (CertOutcome.UNVERIFIABLE, "http_500")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"number": "TW1-0001"}).encode(),
        record_json("w1", valid_until="soon"),
        record_json("w1", number="TW9-9999"),
    ],
)
async def test_http_verifier_malformed_reply_unverifiable(
    authority: FakeAuthority, body: bytes
) -> None:
    """Garbage, missing fields, bad dates or another number: unverifiable, never valid."""
    authority.script[f.cert_number("w1")] = [(200, body, 0.0)]
    async with HttpVerifier(http_settings(authority.url)) as v:
        report = await v.verify(f.claim("w1"), at=NOW)
    assert (report.outcome, report.reason) == (CertOutcome.UNVERIFIABLE, "malformed_reply")


async def test_http_verifier_unreachable_unverifiable() -> None:
    """Nobody listening: unverifiable with the transport error named."""
    from api.embedded import free_port

    async with HttpVerifier(http_settings(f"http://127.0.0.1:{free_port()}", http_retries=1)) as v:
        report = await v.verify(f.claim("w1"), at=NOW)
    assert report.outcome is CertOutcome.UNVERIFIABLE
    assert report.reason.startswith("unreachable")


async def test_http_verifier_failure_blocks_activation_with_reason(
    pool: object, clock: f.Clock, tmp_path: Path, authority: FakeAuthority
) -> None:
    """Through the service: an authority timeout blocks approval with a clear reason."""
    from permits.errors import RuleViolation
    from permits.models import PermitType
    from permits.service import PermitService

    authority.script[f.cert_number("w2")] = [(200, record_json("w2"), 1.0)]
    async with HttpVerifier(http_settings(authority.url, http_retries=0)) as v:
        svc = PermitService(
            pool=pool,
            settings=f.settings(),
            data_dir=tmp_path,  # type: ignore[arg-type]
            verifier=v,
            clock=clock,
        )
        async with svc:
            with pytest.raises(RuleViolation) as exc:
                await f.approved(svc, f.permit_create(PermitType.GC))
    assert exc.value.rule == "certificate.unverifiable"
    assert exc.value.findings[0].params["reason"] == "timeout"
    assert "could not be verified: timeout" in str(exc.value)
