"""MQTT 3.1.1 packets, the few a device needs (OASIS MQTT 3.1.1, chapter 3).

Shared by the asyncio device link (``mqtt_link.py``) and the load generator's raw publisher.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
SUBSCRIBE: Final = 8
SUBACK: Final = 9
PINGREQ: Final = 12
PINGRESP: Final = 13
DISCONNECT: Final = 14

PINGREQ_PACKET: Final = bytes((PINGREQ << 4, 0))
DISCONNECT_PACKET: Final = bytes((DISCONNECT << 4, 0))

CONNACK_REASONS: Final = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for a client that vanishes without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def remaining_length(n: int) -> bytes:
    """The variable-length 'remaining length' field."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes(((kind << 4) | flags,)) + remaining_length(len(body)) + body


def connect(
    client_id: str,
    *,
    keepalive_s: int,
    clean_session: bool,
    will: Will | None = None,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _str(will.topic) + _str(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _str(username)
    if password is not None:
        flags |= 0x40
        payload += _str(password)
    body = _str("MQTT") + bytes((4, flags)) + struct.pack("!H", keepalive_s) + payload
    return _packet(CONNECT, 0, body)


def publish(
    topic: str, payload: bytes, *, qos: int, packet_id: int = 0, retain: bool = False
) -> bytes:
    flags = (qos << 1) | (1 if retain else 0)
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet(PUBLISH, flags, body)


def publish_header(topic: str, payload_len: int, *, qos: int) -> tuple[bytes, int]:
    """The bytes before the payload of a PUBLISH (packet id zeroed) and the offset of its
    packet id, for pre-encoded packets whose id is patched in place."""
    body_len = 2 + len(topic.encode()) + (2 if qos else 0) + payload_len
    head = bytes(((PUBLISH << 4) | (qos << 1),)) + remaining_length(body_len) + _str(topic)
    return head + (b"\0\0" if qos else b""), len(head)


def puback(packet_id: int) -> bytes:
    return _packet(PUBACK, 0, struct.pack("!H", packet_id))


def subscribe(packet_id: int, filters: list[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_str(f) + bytes((qos,)) for f in filters)
    return _packet(SUBSCRIBE, 0x02, body)


@dataclass(frozen=True, slots=True)
class Packet:
    kind: int
    flags: int
    body: bytes


class PacketReader:
    """Splits a byte stream into packets."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Packet]:
        self._buf += data
        out = []
        buf = self._buf
        pos = 0
        while True:
            if len(buf) - pos < 2:
                break
            length, mult, i = 0, 1, pos + 1
            while True:
                if i >= len(buf):
                    length = -1
                    break
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult *= 128
                i += 1
                if not byte & 0x80:
                    break
                if i - pos > 4:
                    raise ValueError("malformed remaining length")
            if length < 0 or len(buf) - i < length:
                break
            out.append(Packet(buf[pos] >> 4, buf[pos] & 0x0F, bytes(buf[i : i + length])))
            pos = i + length
        del buf[:pos]
        return out


def parse_publish(p: Packet) -> tuple[str, bytes, int, int]:
    """Topic, payload, QoS and packet id (0 for QoS 0) of a PUBLISH."""
    (n,) = struct.unpack_from("!H", p.body)
    topic = p.body[2 : 2 + n].decode("utf-8")
    qos = (p.flags >> 1) & 3
    pos = 2 + n
    packet_id = 0
    if qos:
        (packet_id,) = struct.unpack_from("!H", p.body, pos)
        pos += 2
    return topic, p.body[pos:], qos, packet_id
