"""Special-operation certificates (特种作业操作证, GB 30871-2022 4.9) and their verification.

A worker's certificate on file (a `CertificateClaim`) is checked against an authority: a
`RegistryVerifier` (a registry imported from CSV) or an `HttpVerifier` (an external
authority service). Either returns a `VerificationReport`; anything but ``valid`` blocks the
worker. A verifier never raises for the authority's failures: a timeout, a 5xx or a
malformed reply is an ``unverifiable`` report with the reason.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from permits.config import CertificateSettings
from permits.models import CertOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CertificateClaim:
    """A certificate as the plant has it on file for a worker."""

    worker_id: str
    trade: str
    number: str
    issuer: str
    valid_until: dt.date
    review_due: dt.date | None = None


@dataclass(frozen=True, slots=True)
class AuthorityRecord:
    """A certificate as the issuing authority knows it."""

    number: str
    trade: str
    holder_id: str
    holder_name: str
    issuer: str
    valid_until: dt.date
    review_due: dt.date | None
    status: str = "valid"


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The outcome of checking one claim, kept with the approval or activation it served."""

    worker_id: str
    trade: str
    number: str
    outcome: CertOutcome
    reason: str
    source: str
    checked_at: dt.datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is CertOutcome.VALID


class CertificateVerifier(Protocol):
    """Checks a claim against an authority at a time; never raises for authority failures."""

    source: str

    async def verify(self, claim: CertificateClaim, *, at: dt.datetime) -> VerificationReport: ...


def compare(
    claim: CertificateClaim, record: AuthorityRecord | None, *, at: dt.datetime, source: str
) -> VerificationReport:
    """Judge ``claim`` by the authority's ``record`` (None: the authority does not know it)."""

    def report(outcome: CertOutcome, reason: str, **details: Any) -> VerificationReport:
        return VerificationReport(
            worker_id=claim.worker_id,
            trade=claim.trade,
            number=claim.number,
            outcome=outcome,
            reason=reason,
            source=source,
            checked_at=at,
            details=details,
        )

    today = at.date()
    if claim.valid_until < today:
        return report(CertOutcome.INVALID, "expired", valid_until=claim.valid_until.isoformat())
    if record is None:
        return report(CertOutcome.INVALID, "not_found")
    checks = [
        ("revoked", record.status.lower() not in ("valid", "active", "有效")),
        ("holder_mismatch", record.holder_id != claim.worker_id),
        ("trade_mismatch", record.trade != claim.trade),
        ("issuer_mismatch", _norm(record.issuer) != _norm(claim.issuer)),
        ("validity_mismatch", record.valid_until != claim.valid_until),
        ("expired", record.valid_until < today),
        ("review_overdue", record.review_due is not None and record.review_due < today),
    ]
    for reason, failed in checks:
        if failed:
            return report(
                CertOutcome.INVALID,
                reason,
                authority={
                    "holder_id": record.holder_id,
                    "trade": record.trade,
                    "issuer": record.issuer,
                    "valid_until": record.valid_until.isoformat(),
                    "review_due": record.review_due.isoformat() if record.review_due else None,
                    "status": record.status,
                },
            )
    return report(
        CertOutcome.VALID,
        "ok",
        valid_until=record.valid_until.isoformat(),
        review_due=record.review_due.isoformat() if record.review_due else None,
        holder_name=record.holder_name,
    )


def _norm(s: str) -> str:
    return "".join(s.split()).casefold()


def parse_record(raw: Mapping[str, Any]) -> AuthorityRecord:
    """An `AuthorityRecord` from a CSV row or a JSON object; `ValueError` when malformed."""
    try:
        review = raw.get("review_due")
        return AuthorityRecord(
            number=_text(raw["number"]),
            trade=_text(raw["trade"]),
            holder_id=_text(raw["holder_id"]),
            holder_name=str(raw.get("holder_name") or ""),
            issuer=_text(raw["issuer"]),
            valid_until=dt.date.fromisoformat(_text(raw["valid_until"])),
            review_due=dt.date.fromisoformat(str(review)) if review else None,
            status=str(raw.get("status") or "valid"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed certificate record: {exc}") from exc


def _text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("expected a non-empty text")
    return v.strip()


class RegistryVerifier:
    """A local copy of the authority registry (imported from CSV)."""

    source = "registry"

    def __init__(self, records: Mapping[str, AuthorityRecord]) -> None:
        self._records = dict(records)

    @classmethod
    def from_csv(cls, path: Path) -> RegistryVerifier:
        """Columns: number,trade,holder_id,holder_name,issuer,valid_until,review_due,status.

        A malformed row fails the import with its line number (a registry that silently
        dropped rows would block valid workers without saying why).
        """
        records: dict[str, AuthorityRecord] = {}
        with path.open(newline="", encoding="utf-8-sig") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                try:
                    rec = parse_record(row)
                except ValueError as exc:
                    raise ValueError(f"{path}:{line}: {exc}") from exc
                records[rec.number] = rec
        log.info("certificate registry loaded", extra={"path": str(path), "count": len(records)})
        return cls(records)

    async def verify(self, claim: CertificateClaim, *, at: dt.datetime) -> VerificationReport:
        return compare(claim, self._records.get(claim.number), at=at, source=self.source)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class HttpVerifier:
    """An external authority service: ``GET {base_url}/certificates/{number}`` → 200 with a
    JSON record, or 404 when unknown. Timeouts, 5xx and broken connections are retried with
    jittered exponential backoff; when retries run out the report is ``unverifiable``."""

    source = "http"

    def __init__(self, settings: CertificateSettings, *, client: httpx.AsyncClient | None = None):
        if not settings.http_url:
            raise ValueError("HttpVerifier needs certificates.http_url")
        self._settings = settings
        self._base = settings.http_url.rstrip("/")
        self._client = client
        self._owns_client = client is None

    async def __aenter__(self) -> Self:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._settings.http_timeout_s)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def verify(self, claim: CertificateClaim, *, at: dt.datetime) -> VerificationReport:
        assert self._client is not None, "HttpVerifier used outside `async with`"
        s = self._settings
        url = f"{self._base}/certificates/{claim.number}"
        reason = "unreachable"
        for attempt in range(s.http_retries + 1):
            if attempt:
                delay = s.http_backoff_s * 2 ** (attempt - 1)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
            try:
                reply = await self._client.get(url, timeout=s.http_timeout_s)
            except httpx.TimeoutException:
                reason = "timeout"
                continue
            except httpx.TransportError as exc:
                reason = f"unreachable: {type(exc).__name__}"
                continue
            if reply.status_code >= 500:
                reason = f"http_{reply.status_code}"
                continue
            return self._judge(claim, reply, at=at, attempts=attempt + 1)
        log.warning(
            "certificate authority gave no answer", extra={"number": claim.number, "reason": reason}
        )
        return self._unverifiable(claim, reason, at=at, attempts=s.http_retries + 1)

    def _judge(
        self, claim: CertificateClaim, reply: httpx.Response, *, at: dt.datetime, attempts: int
    ) -> VerificationReport:
        if reply.status_code == 404:
            return compare(claim, None, at=at, source=self.source)
        if reply.status_code != 200:
            return self._unverifiable(claim, f"http_{reply.status_code}", at=at, attempts=attempts)
        try:
            body = reply.json()
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            record = parse_record(body)
        except ValueError as exc:
            return self._unverifiable(
                claim, "malformed_reply", at=at, attempts=attempts, error=str(exc)
            )
        if record.number != claim.number:
            return self._unverifiable(
                claim, "malformed_reply", at=at, attempts=attempts, error="wrong number"
            )
        return compare(claim, record, at=at, source=self.source)

    def _unverifiable(
        self, claim: CertificateClaim, reason: str, *, at: dt.datetime, **details: Any
    ) -> VerificationReport:
        return VerificationReport(
            worker_id=claim.worker_id,
            trade=claim.trade,
            number=claim.number,
            outcome=CertOutcome.UNVERIFIABLE,
            reason=reason,
            source=self.source,
            checked_at=at,
            details=details,
        )


def from_settings(settings: CertificateSettings) -> RegistryVerifier | HttpVerifier:
    """The configured verifier (enter it with ``async with``)."""
    if settings.verifier == "http":
        return HttpVerifier(settings)
    if settings.registry_csv is None:
        return RegistryVerifier({})
    return RegistryVerifier.from_csv(settings.registry_csv)
