"""Per-device broker credentials: the files `permitpulse devices provision` writes, and a real
Mosquitto enforcing them (a device uses only its own topics)."""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from api.broker_acl import (
    BrokerAccount,
    find_mosquitto_passwd,
    hash_with_mosquitto_passwd,
    mosquitto_hash,
    read_passwd,
    render_acl,
    verify_mosquitto_hash,
)
from api.devices_cli import provision
from api.errors import ProvisioningError
from ingest.mqtt import client
from tests import services

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")


def test_python_hash_is_mosquitto_pbkdf2_sha512_format() -> None:
    """$7$101$<12-byte salt b64>$<64-byte digest b64>, verifiable by the same rule."""
    h = mosquitto_hash("pw", salt=b"\x00" * 12)
    kind, iterations, salt, digest = h.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "AAAAAAAAAAAAAAAA")
    assert len(digest) == 88
    assert verify_mosquitto_hash(h, "pw")
    assert not verify_mosquitto_hash(h, "pw2")
    assert not verify_mosquitto_hash("$6$x$y", "pw")


@pytest.mark.skipif(find_mosquitto_passwd() is None, reason="mosquitto_passwd is not installed")
def test_mosquitto_passwd_hashes_verify_with_the_python_rule() -> None:
    """Both hashers speak the same format: what mosquitto_passwd writes, Python verifies."""
    binary = find_mosquitto_passwd()
    assert binary
    hashed = hash_with_mosquitto_passwd({"d1": "pw-one", "d2": "pw-two"}, binary)
    assert verify_mosquitto_hash(hashed["d1"], "pw-one")
    assert verify_mosquitto_hash(hashed["d2"], "pw-two")
    assert not verify_mosquitto_hash(hashed["d1"], "pw-two")


def test_acl_grants_each_device_only_its_own_topics() -> None:
    """Write telemetry/ack/status and read cmd of its own; gateways their gateway topic."""
    acl = render_acl(
        [
            BrokerAccount("d1", "device", "s1"),
            BrokerAccount("gw1", "gateway", "s1"),
            BrokerAccount("permitpulse", "service"),
        ],
        topic_root="pp/v1",
    )
    blocks = [b.strip() for b in acl.split("\n\n")[1:] if b.strip()]
    assert blocks == [
        "user permitpulse\ntopic readwrite pp/v1/#",
        "user d1\ntopic write pp/v1/s1/d1/telemetry\ntopic write pp/v1/s1/d1/ack\n"
        "topic write pp/v1/s1/d1/status\ntopic read pp/v1/s1/d1/cmd",
        "user gw1\ntopic write pp/v1/s1/gateway/gw1/telemetry",
    ]


@pytest.mark.parametrize(
    ("username", "kind", "site"),
    [
        ("a/b", "device", "s1"),
        ("+", "device", "s1"),
        ("#", "device", "s1"),
        ("a:b", "device", "s1"),
        ("gateway", "device", "s1"),
        ("d1", "device", "s/1"),
        ("d1", "device", None),
        ("d1", "gateway", "+"),
    ],
)
def test_account_with_topic_breaking_name_is_refused(
    username: str, kind: str, site: str | None
) -> None:
    """Names that could widen an ACL (wildcards, separators) never reach the files."""
    with pytest.raises(ProvisioningError):
        BrokerAccount(username, kind, site)  # type: ignore[arg-type]


def test_provision_keeps_existing_rotates_named_and_refuses_clashes(tmp_path: Path) -> None:
    """Re-running adds new accounts, keeps old passwords, rotates on request, never moves one."""
    first = provision(
        tmp_path,
        [BrokerAccount("d1", "device", "s1"), BrokerAccount("permitpulse", "service")],
        topic_root="pp/v1",
        hasher="python",
    )
    before = read_passwd(tmp_path / "passwd")
    second = provision(
        tmp_path, [BrokerAccount("d2", "device", "s1")], topic_root="pp/v1", hasher="python"
    )
    after = read_passwd(tmp_path / "passwd")
    rotated = provision(
        tmp_path,
        [BrokerAccount("d1", "device", "s1")],
        topic_root="pp/v1",
        rotate=True,
        hasher="python",
    )
    final = read_passwd(tmp_path / "passwd")
    assert sorted(first.created) == ["d1", "permitpulse"]
    assert second.created == ["d2"]
    assert second.kept == 2
    assert after["d1"] == before["d1"]
    assert rotated.rotated == ["d1"]
    assert final["d1"] != before["d1"]
    assert final["d2"] == after["d2"]
    with pytest.raises(ProvisioningError, match="exists as device of site 's1'"):
        provision(tmp_path, [BrokerAccount("d1", "device", "s2")], topic_root="pp/v1")
    assert "user d2" in (tmp_path / "acl").read_text()
    assert first.credentials is not None
    assert stat.S_IMODE(first.credentials.stat().st_mode) == 0o600
    rows = list(csv.DictReader(first.credentials.open()))
    passwords = {r["username"]: r["password"] for r in rows}
    assert verify_mosquitto_hash(before["d1"], passwords["d1"])
    assert passwords["d1"] not in (tmp_path / "passwd").read_text()


# --------------------------------------------------------------------- real broker


@dataclass
class Broker:
    url: str
    root: str
    passwords: dict[str, str]

    def login(self, username: str, password: str | None = None) -> str:
        host = self.url.removeprefix("mqtt://")
        return f"mqtt://{username}:{password or self.passwords[username]}@{host}"


@pytest.fixture(params=["python", "mosquitto_passwd"])
def acl_broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """A private Mosquitto with provisioned accounts d1, d2, gw1 (site s1) and the service."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    if request.param == "mosquitto_passwd" and find_mosquitto_passwd() is None:
        pytest.skip("mosquitto_passwd is not installed")
    root = f"t{uuid.uuid4().hex[:8]}/pp/v1"
    # Not under pytest's private tmp dir: the broker (its own user when started as root) must
    # reach these files, as on a real host (/etc/mosquitto/permitpulse, group mosquitto).
    files = Path(tempfile.mkdtemp(prefix="pp-acl-"))
    result = provision(
        files,
        [
            BrokerAccount("d1", "device", "s1"),
            BrokerAccount("d2", "device", "s1"),
            BrokerAccount("gw1", "gateway", "s1"),
            BrokerAccount("permitpulse", "service"),
        ],
        topic_root=root,
        hasher=request.param,
    )
    assert result.credentials is not None
    passwords = {r["username"]: r["password"] for r in csv.DictReader(result.credentials.open())}
    if os.geteuid() == 0:  # Mosquitto drops to its own user; let it read its files
        for f in (files, files / "passwd", files / "acl"):
            shutil.chown(f, group="mosquitto")
        files.chmod(0o750)
    broker = services.Mosquitto(
        MOSQUITTO,
        anonymous=False,
        extra_conf=f"password_file {files / 'passwd'}\nacl_file {files / 'acl'}\n",
    )
    broker.start()
    yield Broker(broker.url, root, passwords)
    broker.close()
    shutil.rmtree(files, ignore_errors=True)


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[aiomqtt.Client]:
    async with client(url, identifier=f"t-{uuid.uuid4().hex[:8]}") as c:
        yield c


async def _collect_until(c: aiomqtt.Client, marker: str, timeout_s: float = 15) -> list[str]:
    """Topics of messages received up to and including the one on ``marker``."""
    seen: list[str] = []
    async with asyncio.timeout(timeout_s):
        async for m in c.messages:
            seen.append(str(m.topic))
            if str(m.topic) == marker:
                return seen
    return seen


@needs_mosquitto
async def test_broker_refuses_anonymous_and_wrong_password(acl_broker: Broker) -> None:
    """Without the device's own password there is no connection at all."""
    host = acl_broker.url
    for url in (host, acl_broker.login("d1", "wrong-password"), acl_broker.login("nobody", "x")):
        with pytest.raises(aiomqtt.MqttError):
            async with connected(url):
                pass
    async with connected(acl_broker.login("d1")):
        pass


@needs_mosquitto
async def test_device_publishes_only_to_its_own_up_topics(acl_broker: Broker) -> None:
    """d1's own telemetry/ack/status get through; d2's topics, its own cmd and a gateway
    topic are dropped by the broker."""
    r = acl_broker.root
    allowed = [f"{r}/s1/d1/telemetry", f"{r}/s1/d1/ack", f"{r}/s1/d1/status"]
    denied = [
        f"{r}/s1/d2/telemetry",
        f"{r}/s1/d2/ack",
        f"{r}/s1/d1/cmd",
        f"{r}/s1/d2/cmd",
        f"{r}/s2/d1/telemetry",
        f"{r}/s1/gateway/gw1/telemetry",
        f"{r}/s1/d1/telemetry/extra",
    ]
    async with connected(acl_broker.login("permitpulse")) as service:
        await service.subscribe(f"{r}/#", qos=1)
        async with connected(acl_broker.login("d1")) as d1:
            for topic in denied + allowed:
                await d1.publish(topic, b"x", qos=1)
        seen = await _collect_until(service, allowed[-1])
    assert seen == allowed


@needs_mosquitto
async def test_device_reads_only_its_own_cmd(acl_broker: Broker) -> None:
    """Subscribing wider (d2's cmd, wildcards) yields nothing but d1's own commands."""
    r = acl_broker.root
    async with connected(acl_broker.login("d1")) as d1:
        for flt in (f"{r}/s1/d2/cmd", f"{r}/#", f"{r}/s1/+/cmd", "#", f"{r}/s1/d1/cmd"):
            await d1.subscribe(flt, qos=1)
        async with connected(acl_broker.login("permitpulse")) as service:
            for topic in (f"{r}/s1/d2/cmd", f"{r}/s1/d2/telemetry", f"{r}/s1/d1/telemetry"):
                await service.publish(topic, b"not for d1", qos=1)
            await service.publish(f"{r}/s1/d1/cmd", b"rest", qos=1)
        seen = await _collect_until(d1, f"{r}/s1/d1/cmd")
    assert set(seen) == {f"{r}/s1/d1/cmd"}


@needs_mosquitto
async def test_gateway_publishes_only_its_gateway_topic(acl_broker: Broker) -> None:
    """A gateway relays through its own gateway topic and cannot pose as a device."""
    r = acl_broker.root
    mine = f"{r}/s1/gateway/gw1/telemetry"
    async with connected(acl_broker.login("permitpulse")) as service:
        await service.subscribe(f"{r}/#", qos=1)
        async with connected(acl_broker.login("gw1")) as gw:
            for topic in (f"{r}/s1/d1/telemetry", f"{r}/s1/gateway/gw2/telemetry", mine):
                await gw.publish(topic, b"x", qos=1)
        seen = await _collect_until(service, mine)
    assert seen == [mine]


def test_devices_provision_command_writes_files_and_reports(tmp_path: Path) -> None:
    """`permitpulse devices provision` from the shell: JSON summary, files, exit codes."""
    import subprocess
    import sys

    import orjson

    env = {"PATH": "/usr/bin:/bin", "PP_MQTT_TOPIC_ROOT": "plant/pp/v1"}
    base = [sys.executable, "-m", "api", "devices", "provision", "--out", str(tmp_path)]
    r = subprocess.run(
        [*base, "--site", "s1", "--count", "3", "--gateway", "gw1", "--hasher", "python"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    summary = orjson.loads(r.stdout)
    assert (summary["created"], summary["kept"], summary["hasher"]) == (5, 0, "python")
    acl = (tmp_path / "acl").read_text()
    assert "user dev-0003\ntopic write plant/pp/v1/s1/dev-0003/telemetry" in acl
    assert "user permitpulse\ntopic readwrite plant/pp/v1/#" in acl
    assert sorted(read_passwd(tmp_path / "passwd")) == [
        "dev-0001",
        "dev-0002",
        "dev-0003",
        "gw1",
        "permitpulse",
    ]
    no_site = subprocess.run(
        [*base, "--device", "d9"], env=env, capture_output=True, text=True, timeout=60
    )
    assert no_site.returncode == 2
    assert "--site is required" in no_site.stderr
