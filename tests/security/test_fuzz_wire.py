"""Fuzzing the telemetry receive path: mutated binary frames, structure-aware JSON frames and
whole MQTT messages through the consumer's accept step. Whatever arrives, the ingest either
stores plausible samples or dead-letters the message; it never raises."""

from __future__ import annotations

from typing import Any

import aiomqtt
import numpy as np
import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest import plausibility
from ingest.batcher import BatchBuilder, Link, Registry
from ingest.config import IngestSettings
from ingest.errors import DecodeError
from ingest.pgcopy import SIGNATURE, TRAILER, telemetry_copy  # the writer's COPY stream
from ingest.wire import (
    DEVICE_ID_RE,
    KNOWN_FLAGS,
    MEASUREMENTS,
    RESERVED_DEVICE_IDS,
    Sample,
    SampleBatch,
    decode,
    encode_binary,
)

NOW_MS = 1_790_000_000_000
INGEST = IngestSettings()

valid_frame = st.builds(
    lambda n, gw, seq0: encode_binary(
        [
            Sample(f"d{i % 3 if gw else 0}", seq0 + i, NOW_MS - 1000 * i, hr=70.0 + i, spo2=97.0)
            for i in range(n)
        ],
        gateway=gw,
    ),
    st.integers(1, 6),
    st.booleans(),
    st.integers(0, 2**31),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid binary frame with a few bytes flipped, removed or inserted."""
    frame = bytearray(draw(valid_frame))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate"]))
        pos = draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif op == "cut" and frame:
            del frame[pos]
        elif op == "insert":
            frame.insert(pos, draw(st.integers(0, 255)))
        else:
            del frame[pos:]
    return bytes(frame)


def check_invariants(batch: SampleBatch) -> None:
    """What any successfully decoded batch guarantees to the rest of the system."""
    n = len(batch)
    assert n >= 1
    assert all(DEVICE_ID_RE.fullmatch(d) and d not in RESERVED_DEVICE_IDS for d in batch.devices)
    assert len(set(batch.devices)) == len(batch.devices)
    assert int(batch.dev.max()) < len(batch.devices)
    assert int(np.bitwise_or.reduce(batch.flags)) & ~KNOWN_FLAGS == 0
    for col in ("seq", "ts_ms", "flags", *MEASUREMENTS):
        assert getattr(batch, col).shape == (n,)
    verdict = plausibility.check(batch, now_ms=NOW_MS, settings=INGEST)
    kept = batch.select(verdict.ok)
    # Whatever passes plausibility can be turned into the COPY stream without error, and the
    # stream holds one tuple per kept sample.
    stream = telemetry_copy(kept)
    assert stream.startswith(SIGNATURE)
    assert stream.endswith(TRAILER)
    assert len(kept) == int(verdict.ok.sum())


@given(mutated(), st.sampled_from(["d0", None]))
@settings(max_examples=1500)
def test_mutated_binary_frame_decodes_consistently_or_is_refused(
    frame: bytes, topic_device: str | None
) -> None:
    """Bit flips, cuts and insertions: DecodeError, or a batch that keeps every invariant."""
    try:
        batch = decode(frame, topic_device=topic_device)
    except DecodeError:
        return
    check_invariants(batch)
    # Re-encoding what was decoded gives the same bytes back (no hidden state).
    assert encode_binary(batch, gateway=topic_device is None) == frame


json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
sample_key = st.sampled_from(["seq", "ts_ms", "flags", "device_id", *MEASUREMENTS, "extra"])
good_value = {
    "seq": st.integers(0, 2**32 - 1),
    "ts_ms": st.integers(NOW_MS - 10**9, NOW_MS + 10**6),
    "flags": st.integers(0, 7),
    "device_id": st.sampled_from(["d0", "d1", "gateway", "bad id", "", "d0\n"]),
}


@st.composite
def json_frames(draw: st.DrawFn) -> bytes:
    """Frames that look like v1 JSON, with any field possibly wrong in type or range."""

    def value(key: str) -> Any:
        if key in good_value and draw(st.booleans()):
            return draw(good_value[key])
        if key in MEASUREMENTS and draw(st.booleans()):
            return draw(st.none() | st.floats(allow_nan=False, width=64))
        return draw(json_value)

    rows = [
        {k: value(k) for k in draw(st.lists(sample_key, min_size=1, max_size=6, unique=True))}
        for _ in range(draw(st.integers(0, 4)))
    ]
    frame: dict[str, Any] = {"v": draw(st.sampled_from([1, 1, 1, 2, "1", True]))}
    kind = draw(st.sampled_from(["device", "gateway", "both", "neither"]))
    if kind in ("device", "both"):
        frame["device_id"] = draw(good_value["device_id"] | json_value)
    if kind in ("gateway", "both"):
        frame["gateway_id"] = draw(st.sampled_from(["gw1", None, "x/y"]) | json_value)
    frame["samples"] = rows if draw(st.integers(0, 9)) else draw(json_value)
    try:
        return orjson.dumps(frame)
    except TypeError:  # an integer beyond 64 bits: send it as raw JSON text instead
        import json

        return json.dumps(frame).encode()


@given(json_frames(), st.sampled_from(["d0", None]))
@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
def test_structured_json_frame_decodes_consistently_or_is_refused(
    frame: bytes, topic_device: str | None
) -> None:
    """Wrong types, ranges and shapes in JSON: DecodeError or a consistent batch."""
    try:
        batch = decode(frame, topic_device=topic_device)
    except DecodeError:
        return
    check_invariants(batch)


def _message(topic: str, payload: bytes) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)


topics = st.one_of(
    st.builds(
        "{}/{}/{}/{}".format,
        st.just("pp/v1"),
        st.sampled_from(["s1", "bad site", "", "+", "s/1", "s" * 70, "s1\n"]),
        st.sampled_from(["d0", "d1", "gateway", "", "d 0", "d0\n"]),
        st.sampled_from(["telemetry", "cmd", "status", ""]),
    ),
    st.just("pp/v1/s1/gateway/gw1/telemetry"),
    st.text(max_size=40),
)


@given(topics, st.one_of(valid_frame, mutated(), json_frames(), st.binary(max_size=200)))
@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
def test_batch_builder_never_raises_and_accounts_for_every_message(
    topic: str, payload: bytes
) -> None:
    """Any topic with any payload: the ingest's accept-and-build step never raises; every
    message ends as stored samples or a dead letter, and every site that reaches the writer
    fits the sites table (else the insert would fail and the batch be retried forever)."""
    try:
        message = _message(topic, payload)
    except ValueError:  # empty or wildcard topics: no broker delivers them
        assume(False)
        raise
    builder = BatchBuilder(root="pp/v1", settings=INGEST, registry=Registry(INGEST))
    assert builder.add(Link(client=None, generation=0), message)  # type: ignore[arg-type]
    job = builder.build(now_ms=NOW_MS, now_s=NOW_MS / 1000)
    assert len(job.batch) > 0 or job.dead
    for site in job.sites:
        assert DEVICE_ID_RE.fullmatch(site), site
    if len(job.batch):
        check_invariants(job.batch)
