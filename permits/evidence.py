"""Evidence files: validated by size and real type, stored content-addressed (SHA-256) under
the data directory, with the place and time read from the image's EXIF when present."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image, UnidentifiedImageError

from permits.errors import EvidenceRejected, EvidenceTooLarge, finding
from permits.geo import valid_point
from permits.models import GeoPoint

#: What each kind of step accepts (detected from the bytes, never from the file name).
ACCEPTED = {
    "photo": frozenset({"image/jpeg", "image/png"}),
    "document": frozenset({"application/pdf", "image/jpeg", "image/png"}),
}
_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_OFFSET_TIME_ORIGINAL = 36881


@dataclass(frozen=True, slots=True)
class Inspected:
    """What the bytes of a file say about it."""

    sha256: str
    content_type: str
    size: int
    exif_point: GeoPoint | None = None
    exif_time: dt.datetime | None = None


def sniff(content: bytes) -> str:
    """The content type from magic bytes ('application/octet-stream' when unknown)."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    return "application/octet-stream"


def inspect(content: bytes, *, kind: str, step: str, max_bytes: int, tz: ZoneInfo) -> Inspected:
    """Validate ``content`` for a step of ``kind`` and read what it says about itself."""
    if len(content) > max_bytes:
        raise EvidenceTooLarge(finding("evidence.too_large", size=len(content), limit=max_bytes))
    if not content:
        raise EvidenceRejected(finding("evidence.type", step=step, detected="empty"))
    ctype = sniff(content)
    if ctype not in ACCEPTED[kind]:
        raise EvidenceRejected(finding("evidence.type", step=step, detected=ctype))
    point: GeoPoint | None = None
    taken: dt.datetime | None = None
    if ctype.startswith("image/"):
        point, taken = _image_facts(content, tz)
    return Inspected(
        sha256=hashlib.sha256(content).hexdigest(),
        content_type=ctype,
        size=len(content),
        exif_point=point,
        exif_time=taken,
    )


def _image_facts(content: bytes, tz: ZoneInfo) -> tuple[GeoPoint | None, dt.datetime | None]:
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.verify()
        with Image.open(io.BytesIO(content)) as img:
            img.load()
            exif = img.getexif()
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise EvidenceRejected(
            finding("evidence.corrupt", reason=str(exc) or type(exc).__name__)
        ) from exc
    return _gps(exif.get_ifd(_GPS_IFD)), _when(exif.get_ifd(_EXIF_IFD), tz)


def _gps(gps: dict[int, object]) -> GeoPoint | None:
    try:
        lat = _dms(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        lon = _dms(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return GeoPoint(lat, lon) if valid_point(lat, lon) else None


def _dms(value: object) -> float:
    d, m, s = (float(x) for x in value)  # type: ignore[attr-defined]
    return d + m / 60.0 + s / 3600.0


def _when(exif_ifd: dict[int, object], tz: ZoneInfo) -> dt.datetime | None:
    raw = exif_ifd.get(_DATETIME_ORIGINAL)
    if not isinstance(raw, str):
        return None
    try:
        naive = dt.datetime.strptime(raw.strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    offset = exif_ifd.get(_OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str):
        try:
            return dt.datetime.fromisoformat(naive.isoformat() + offset.strip())
        except ValueError:
            pass
    return naive.replace(tzinfo=tz)


class EvidenceStore:
    """Files under ``root/ab/cd/<sha256>``: one copy per content, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, sha256: str, content: bytes) -> Path:
        """Store ``content`` under its hash (idempotent) and return the path."""
        if hashlib.sha256(content).hexdigest() != sha256:
            raise ValueError("content does not match its hash")
        target = self.path(sha256)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read(self, sha256: str) -> bytes:
        """The stored bytes, checked against their hash (a changed file is an `OSError`)."""
        data = self.path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise OSError(f"evidence file {sha256} does not match its hash")
        return data
