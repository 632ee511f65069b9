"""Micro-batches: the fast per-message path agrees with the reference decoder, and every
message ends up as samples, a dead letter with a reason, or both."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import aiomqtt
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.batcher import BatchBuilder, Job, Link, Registry
from ingest.config import IngestSettings
from ingest.errors import DecodeError
from ingest.topics import device_topic, gateway_topic
from ingest.wire import HEADER, MAGIC, RECORD_DTYPE, Sample, decode, encode_binary, encode_json
from tests.factories import now_ms
from tests.factories import samples as _samples

ROOT = "pp/v1"
NOW = now_ms()  # the batches' clock: fixed, so a long test session never ages the samples


def samples(device: str, n: int, **kw: Any) -> list[Sample]:
    """``n`` plausible 1 Hz samples of ``device`` ending at ``NOW``."""
    kw.setdefault("start_ms", NOW - n * 1000)
    return _samples(device, n, **kw)


LINK = Link(cast(aiomqtt.Client, None), 1)


def msg(topic: str, payload: bytes, mid: int = 1, qos: int = 1) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos, False, mid, None)


def dev_topic(device: str, site: str = "s1") -> str:
    return device_topic(ROOT, site, device, "telemetry")


def build(
    messages: list[aiomqtt.Message],
    s: IngestSettings | None = None,
    link: Link = LINK,
) -> Job:
    s = s or IngestSettings()
    builder = BatchBuilder(root=ROOT, settings=s, registry=Registry(s))
    for m in messages:
        assert builder.add(link, m)
    return builder.build(now_ms=NOW, now_s=0.0)


def key(s: Sample) -> tuple[str, int, int]:
    return (s.device_id, s.ts_ms, s.seq)


# --------------------------------------------------------------------------- agreement

opt = st.one_of(st.none(), st.floats(30, 200, width=32))
device_ids = st.sampled_from(["d1", "dev-2", "a.much.longer.device-id_3", "x"])


@st.composite
def frames(draw: st.DrawFn) -> list[tuple[str, bytes, list[Sample]]]:
    """Device and gateway frames (binary and JSON) of plausible samples, some repeated."""
    out = []
    for _ in range(draw(st.integers(1, 12))):
        gateway = draw(st.booleans())
        devices = draw(st.lists(device_ids, min_size=1, max_size=3, unique=True))
        if not gateway:
            devices = devices[:1]
        rows = [
            Sample(
                device_id=draw(st.sampled_from(devices)),
                seq=draw(st.integers(0, 50)),
                ts_ms=NOW - draw(st.integers(0, 600_000)),
                hr=draw(opt),
                spo2=draw(st.one_of(st.none(), st.floats(80, 100, width=32))),
                lat=None,
                lon=None,
                motion=draw(st.one_of(st.none(), st.floats(0, 2, width=32))),
                flags=draw(st.integers(0, 7)),
            )
            for _ in range(draw(st.integers(1, 6)))
        ]
        devices = sorted({r.device_id for r in rows})
        if not gateway:
            rows = [dataclasses.replace(r, device_id=devices[0]) for r in rows]
        encode = encode_binary if draw(st.integers(0, 3)) else encode_json
        topic = gateway_topic(ROOT, "s1", "gw1") if gateway else dev_topic(devices[0])
        out.append((topic, encode(rows, gateway=gateway), rows))
        if draw(st.booleans()):
            out.append(out[-1])  # the same frame again
    return out


@given(frames())
@settings(max_examples=150, deadline=None)
def test_build_any_valid_frames_stores_each_distinct_sample_once_in_time_order(
    given_frames: list[tuple[str, bytes, list[Sample]]],
) -> None:
    """Whatever mix arrives, the batch holds every distinct sample once, ordered by time."""
    job = build([msg(t, p, mid=i + 1) for i, (t, p, _) in enumerate(given_frames)])
    expected: dict[tuple[str, int, int], Sample] = {}
    for _, _, rows in given_frames:
        for r in rows:
            expected.setdefault(key(r), r)
    got = job.batch.samples()
    assert sorted(got, key=key) == sorted(expected.values(), key=key)
    assert job.dead == []
    assert np.all(np.diff(job.batch.ts_ms) >= 0)
    assert job.duplicates == sum(len(r) for _, _, r in given_frames) - len(expected)
    assert [s for link, mids in job.acks for s in mids] == list(range(1, len(given_frames) + 1))


def test_build_gateway_table_changing_between_frames_decodes_each_frame() -> None:
    """The per-topic table cache is only a shortcut: a new table is validated and learnt."""
    topic = gateway_topic(ROOT, "s1", "gw1")
    a, b, c = samples("a", 2), samples("b", 2), samples("c", 2)
    payloads = [a + b, b + c, a + b, c]
    job = build([msg(topic, encode_binary(p, gateway=True)) for p in payloads])
    assert sorted(job.batch.samples(), key=key) == sorted(a + b + c, key=key)
    assert job.duplicates == 8


def test_build_sites_follow_each_devices_topic() -> None:
    """A device frame's site is its topic's; a gateway's devices take the gateway's site."""
    job = build(
        [
            msg(dev_topic("d1", "north"), encode_binary(samples("d1", 1))),
            msg(gateway_topic(ROOT, "south", "gw"), encode_binary(samples("w", 1), gateway=True)),
        ]
    )
    assert dict(zip(job.batch.devices, job.sites, strict=True)) == {"d1": "north", "w": "south"}


# --------------------------------------------------------------------------- hostile input


def _bin(rows: list[Sample], **kw: Any) -> bytes:
    return encode_binary(rows, **kw)


def _with_record(field: str, value: int, device: str = "d1") -> bytes:
    frame = bytearray(_bin(samples(device, 2)))
    rec = np.frombuffer(frame, dtype=RECORD_DTYPE, offset=HEADER.size + 1 + len(device)).copy()
    rec[field][1] = value
    return bytes(frame[: HEADER.size + 1 + len(device)]) + rec.tobytes()


HOSTILE: dict[str, tuple[str, bytes]] = {
    "truncated": (dev_topic("d1"), _bin(samples("d1", 3))[:-7]),
    "trailing": (dev_topic("d1"), _bin(samples("d1", 3)) + b"\x00"),
    "wrong version": (dev_topic("d1"), MAGIC + b"\x07" + _bin(samples("d1", 1))[3:]),
    "random bytes": (dev_topic("d1"), bytes(range(200, 256)) * 3),
    "empty": (dev_topic("d1"), b""),
    "json wrong shape": (dev_topic("d1"), orjson.dumps({"temperature": [1, 2, 3]})),
    "json list": (dev_topic("d1"), b"[1, 2, 3]"),
    "json NaN": (
        dev_topic("d1"),
        b'{"v":1,"device_id":"d1","samples":[{"seq":1,"ts_ms":1,"hr":NaN}]}',
    ),
    "json infinity": (
        dev_topic("d1"),
        b'{"v":1,"device_id":"d1","samples":[{"seq":1,"ts_ms":1,"hr":1e999}]}',
    ),
    "other device": (dev_topic("d1"), _bin(samples("d2", 1))),
    "gateway frame on device topic": (dev_topic("d1"), _bin(samples("d1", 1), gateway=True)),
    "device frame on gateway topic": (gateway_topic(ROOT, "s1", "g"), _bin(samples("d1", 1))),
    "device index outside table": (dev_topic("d1"), _with_record("dev", 5)),
    "reserved flag": (dev_topic("d1"), _with_record("flags", 0x40)),
    "device id with newline": (
        dev_topic("d1"),
        HEADER.pack(MAGIC, 1, 1, 1, 1) + b"\x03d1\n" + bytes(RECORD_DTYPE.itemsize),
    ),
}


@pytest.mark.parametrize(("name", "hostile"), list(HOSTILE.items()), ids=list(HOSTILE))
def test_build_hostile_frame_is_dead_lettered_with_the_reference_reason(
    name: str, hostile: tuple[str, bytes]
) -> None:
    """Every hostile frame becomes one dead letter saying what the reference decoder says; a
    valid frame of the same device before and after it is stored in full."""
    topic, payload = hostile
    good = samples("d1", 4)
    job = build(
        [
            msg(dev_topic("d1"), _bin(good[:2])),
            msg(topic, payload),
            msg(dev_topic("d1"), _bin(good[2:])),
        ]
    )
    assert sorted(job.batch.samples(), key=key) == good
    assert len(job.dead) == 1
    letter = job.dead[0]
    with pytest.raises(DecodeError) as exc:
        decode(payload, topic_device=None if "gateway" in topic else "d1")
    assert letter.reason == exc.value.reason
    assert letter.kind == exc.value.kind
    assert (letter.topic, letter.payload) == (topic, payload)


def test_build_oversize_payload_is_refused_and_kept_truncated() -> None:
    """A payload over the limit is not decoded; its first KiB is kept with the reason."""
    s = IngestSettings(max_payload_bytes=1000)
    payload = _bin(samples("d1", 40))
    job = build([msg(dev_topic("d1"), payload)], s)
    assert len(job.batch) == 0
    (letter,) = job.dead
    assert (letter.kind, letter.payload) == ("oversize", payload[:1024])
    assert f"{len(payload)} bytes" in letter.reason


@pytest.mark.parametrize(
    "topic",
    [f"{ROOT}/s1/d1/telemetry/extra", f"{ROOT}/s1/d1/status", f"{ROOT}/bad site/d1/telemetry"],
)
def test_build_message_on_a_foreign_topic_is_dead_lettered(topic: str) -> None:
    """Only v1 telemetry topics with valid ids are decoded."""
    (letter,) = build([msg(topic, _bin(samples("d1", 1)))]).dead
    assert letter.kind == "topic"


def test_build_implausible_samples_are_dropped_and_their_frame_dead_lettered() -> None:
    """Impossible values condemn the sample, not its frame: the rest of the frame is stored."""
    rows = samples("d1", 3)
    rows[1] = dataclasses.replace(rows[1], spo2=150.0)
    inf = dataclasses.replace(samples("d2", 1)[0], hr=float("inf"))
    future = dataclasses.replace(samples("d3", 1)[0], ts_ms=NOW + 86_400_000)
    job = build(
        [
            msg(dev_topic("d1"), _bin(rows)),
            msg(dev_topic("d2"), _bin([inf])),
            msg(dev_topic("d3"), _bin([future])),
        ]
    )
    assert sorted(job.batch.samples(), key=key) == [rows[0], rows[2]]
    reasons = {d.topic: d for d in job.dead}
    assert reasons[dev_topic("d1")].reason == "1 of 3 samples implausible: #1 SpO2 outside 0-100 %"
    assert reasons[dev_topic("d1")].sample_index == 1
    assert "hr is infinite" in reasons[dev_topic("d2")].reason
    assert "timestamp too far in the future" in reasons[dev_topic("d3")].reason
    assert {d.kind for d in job.dead} == {"implausible"}


def test_build_missing_values_are_valid_and_stay_missing() -> None:
    """NaN in a binary frame means "not measured": stored as missing, not dead-lettered."""
    rows = [dataclasses.replace(s, hr=None, lat=None, lon=None) for s in samples("d1", 2)]
    job = build([msg(dev_topic("d1"), _bin(rows))])
    assert job.batch.samples() == rows
    assert job.dead == []


# --------------------------------------------------------------------------- rate limit


def test_build_flooding_device_is_rate_limited_and_others_are_not() -> None:
    """One device over its bucket loses the excess (counted, one dead letter); others pass."""
    s = IngestSettings(rate_limit_samples_per_s=1.0, rate_limit_burst_samples=5)
    flood = samples("flood", 20)
    calm = samples("calm", 3)
    job = build(
        [msg(dev_topic("flood"), _bin(flood[i : i + 4])) for i in range(0, 20, 4)]
        + [msg(dev_topic("calm"), _bin(calm))],
        s,
    )
    stored = job.batch.samples()
    assert [r for r in stored if r.device_id == "flood"] == flood[:5]
    assert [r for r in stored if r.device_id == "calm"] == calm
    assert job.rate_limited == 15
    (letter,) = job.dead
    assert letter.kind == "rate_limited"
    assert "'flood'" in letter.reason
    assert "15 samples dropped" in letter.reason


# --------------------------------------------------------------------------- bounds and acks


async def test_add_refuses_a_message_that_would_overflow_a_non_empty_batch() -> None:
    """The batch stays within its size; an empty batch takes any single message."""
    s = IngestSettings(batch_max_samples=10)
    builder = BatchBuilder(root=ROOT, settings=s, registry=Registry(s))
    four = msg(dev_topic("d1"), _bin(samples("d1", 4)))
    assert builder.add(LINK, four)
    assert builder.add(LINK, four)
    assert not builder.add(LINK, four)
    big = BatchBuilder(root=ROOT, settings=s, registry=Registry(s))
    assert big.add(LINK, msg(dev_topic("d1"), _bin(samples("d1", 30))))
    assert (builder.messages, builder.samples, big.samples) == (2, 8, 30)


def test_add_queue_bound_limits_messages_per_batch() -> None:
    """queue_max_messages bounds what is held between receive and write."""
    s = IngestSettings(queue_max_messages=3)
    builder = BatchBuilder(root=ROOT, settings=s, registry=Registry(s))
    results = [builder.add(LINK, msg(f"{ROOT}/x", b"junk")) for _ in range(5)]
    assert results == [True, True, True, False, False]


def test_build_acks_are_grouped_per_connection_in_order_and_skip_qos0() -> None:
    """Each message is acknowledged on its own connection, in order of receipt; QoS 0 never."""
    other = Link(cast(aiomqtt.Client, None), 2)
    s = IngestSettings()
    builder = BatchBuilder(root=ROOT, settings=s, registry=Registry(s))
    frame = _bin(samples("d1", 1))
    for link, mid, qos in [(LINK, 5, 1), (LINK, 6, 1), (LINK, 0, 0), (other, 9, 1), (LINK, 7, 1)]:
        builder.add(link, msg(dev_topic("d1"), frame, mid=mid, qos=qos))
    job = builder.build(now_ms=NOW, now_s=0.0)
    assert [(link.generation, mids) for link, mids in job.acks] == [(1, [5, 6]), (2, [9]), (1, [7])]


@given(st.lists(st.tuples(st.sampled_from(["d1", "gw"]), st.binary(max_size=200)), max_size=20))
@settings(max_examples=300, deadline=None)
def test_build_arbitrary_payloads_never_raise_and_every_message_is_accounted(
    payloads: list[tuple[str, bytes]],
) -> None:
    """Garbage of any kind yields samples or dead letters, never an exception."""
    messages = [
        msg(gateway_topic(ROOT, "s1", "g") if t == "gw" else dev_topic("d1"), p)
        for t, p in payloads
    ]
    job = build(messages)
    assert set(job.message_ids()) <= set(range(len(messages)))
    assert len(job.dead) + len(set(job.origin.tolist())) >= len(messages) - job.duplicates


def test_build_failed_dead_letters_every_message_for_inspection() -> None:
    """When building itself fails, nothing is silently dropped."""
    s = IngestSettings()
    builder = BatchBuilder(root=ROOT, settings=s, registry=Registry(s))
    for i in range(3):
        builder.add(LINK, msg(dev_topic("d1"), _bin(samples("d1", 1)), mid=i + 1))
    job = builder.build_failed("internal error: boom")
    assert [(d.kind, d.reason) for d in job.dead] == [("internal", "internal error: boom")] * 3
    assert job.acks[0][1] == [1, 2, 3]


def test_job_part_splits_samples_and_dead_letters_by_message() -> None:
    """Isolating a message takes its samples and dead letters, and nothing else."""
    job = build(
        [
            msg(dev_topic("d1"), _bin(samples("d1", 2))),
            msg(dev_topic("d1"), b"junk"),
            msg(dev_topic("d2"), _bin(samples("d2", 3))),
        ]
    )
    first = np.array([True, True, False])
    a, b = job.part(first), job.part(~first)
    assert {s.device_id for s in a.batch.samples()} == {"d1"}
    assert len(a.batch) + len(b.batch) == 5
    assert (len(a.dead), len(b.dead)) == (1, 0)
    assert b.message_ids() == [2]


def test_registry_caches_valid_topics_only() -> None:
    """A flood of junk topics costs parsing, never memory."""
    s = IngestSettings()
    registry = Registry(s)
    builder = BatchBuilder(root=ROOT, settings=s, registry=registry)
    for i in range(100):
        builder.add(LINK, msg(f"{ROOT}/{'x' * 100}{i}/d/telemetry", b"junk"))
    builder.add(LINK, msg(dev_topic("d1"), _bin(samples("d1", 1))))
    assert list(registry.sources) == [dev_topic("d1")]
    assert len(builder.build(now_ms=NOW, now_s=0.0).dead) == 100


def test_build_reason_quoting_a_huge_payload_is_cut_short() -> None:
    """A reason that quotes hostile input (unknown keys) stays a reason, not a copy of it."""
    keys = {f"k{i:05d}": 1 for i in range(5000)}
    payload = orjson.dumps({"v": 1, "device_id": "d1", "samples": [GOOD_KEYS | keys]})
    (letter,) = build([msg(dev_topic("d1"), payload)]).dead
    assert letter.reason.startswith("sample 0: unknown keys")
    assert len(letter.reason) == 500
    assert letter.payload == payload


GOOD_KEYS = {"seq": 1, "ts_ms": NOW}
