"""Per-device broker credentials for Mosquitto: password file (PBKDF2-SHA512, the ``$7$``
format of Mosquitto 2) and an ACL that confines every device to its own topics.

A device may publish only ``{root}/{site}/{device}/telemetry|ack|status`` and receive only
``{root}/{site}/{device}/cmd``; a gateway may publish only its gateway topic; the service
account of PermitPulse itself reads and writes under ``{root}/#``. Everything else is denied
(Mosquitto denies by default once an ACL file is configured).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from api.errors import ProvisioningError
from ingest.wire import DEVICE_ID_RE, RESERVED_DEVICE_IDS

Kind = Literal["device", "gateway", "service"]
SALT_BYTES: Final = 12
#: Mosquitto 2.0's own default; device passwords are random (144 bits), so iterations add
#: little, and a broker checking thousands of reconnects should not pay much per login.
ITERATIONS: Final = 101
DEVICE_CHANNELS_UP: Final = ("telemetry", "ack", "status")


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    """One broker login. ``site`` is None only for the service account."""

    username: str
    kind: Kind
    site: str | None = None

    def __post_init__(self) -> None:
        if not DEVICE_ID_RE.fullmatch(self.username) or ":" in self.username:
            raise ProvisioningError(f"invalid account name {self.username!r}")
        if self.kind != "service" and (self.site is None or not DEVICE_ID_RE.fullmatch(self.site)):
            raise ProvisioningError(f"invalid site {self.site!r} for {self.username!r}")
        if self.kind == "device" and self.username in RESERVED_DEVICE_IDS:
            raise ProvisioningError(f"{self.username!r} is reserved")


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS
) -> str:
    """The ``$7$iterations$salt$hash`` line Mosquitto 2 verifies (PBKDF2-HMAC-SHA512)."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_mosquitto_hash(encoded: str, password: str) -> bool:
    """True when ``password`` matches a ``$7$`` (PBKDF2-SHA512) entry."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def hash_with_mosquitto_passwd(passwords: Mapping[str, str], binary: str) -> dict[str, str]:
    """Hash with the broker's own tool (``mosquitto_passwd -U`` on a private temp file, so no
    password ever appears on a command line)."""
    if not passwords:
        return {}
    with tempfile.TemporaryDirectory(prefix="pp-passwd-") as tmp:
        path = Path(tmp) / "passwd"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{user}:{pw}\n" for user, pw in passwords.items())
        subprocess.run([binary, "-U", str(path)], check=True, capture_output=True, timeout=120)
        hashed = read_passwd(path)
    if set(hashed) != set(passwords):
        raise ProvisioningError("mosquitto_passwd did not hash every entry")
    return hashed


def find_mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if Path("/usr/bin/mosquitto_passwd").exists() else None
    )


def read_passwd(path: Path) -> dict[str, str]:
    """``username → hash`` of a Mosquitto password file (missing file: empty)."""
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            user, sep, encoded = line.partition(":")
            if sep:
                entries[user] = encoded
    return entries


def render_passwd(entries: Mapping[str, str]) -> str:
    return "".join(f"{user}:{entries[user]}\n" for user in sorted(entries))


def render_acl(accounts: Iterable[BrokerAccount], *, topic_root: str) -> str:
    """The Mosquitto ACL file for ``accounts`` (sorted, so the output is stable)."""
    if not topic_root or any(c in topic_root for c in "+#\n") or topic_root.endswith("/"):
        raise ProvisioningError(f"invalid topic root {topic_root!r}")
    lines = [
        "# PermitPulse broker ACL, written by `permitpulse devices provision`; do not edit.",
        "# No entry grants anything to anonymous clients; Mosquitto denies what is not listed.",
        "",
    ]
    for acc in sorted(accounts, key=lambda a: (a.kind != "service", a.username)):
        lines.append(f"user {acc.username}")
        lines += [f"topic {access} {topic}" for access, topic in _grants(acc, topic_root)]
        lines.append("")
    return "\n".join(lines)


def _grants(acc: BrokerAccount, root: str) -> list[tuple[str, str]]:
    if acc.kind == "service":
        return [("readwrite", f"{root}/#")]
    if acc.kind == "gateway":
        return [("write", f"{root}/{acc.site}/gateway/{acc.username}/telemetry")]
    own = f"{root}/{acc.site}/{acc.username}"
    return [("write", f"{own}/{ch}") for ch in DEVICE_CHANNELS_UP] + [("read", f"{own}/cmd")]


def new_password() -> str:
    """A random device password (144 bits; URL- and CSV-safe)."""
    return secrets.token_urlsafe(18)


MOSQUITTO_CONF: Final = """\
# Mosquitto settings for PermitPulse device credentials (include from mosquitto.conf).
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {acl}
# Keep QoS 1 commands for devices that are offline for a while (see SPEC.md §10).
max_queued_messages 100000
# Plain MQTT only on the loopback (for PermitPulse itself); devices use TLS on 8883:
listener 1883 127.0.0.1
listener 8883
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/certs/ca.crt
tls_version tlsv1.2
"""
