"""Wire format v1: what round-trips, and what every malformed frame is told."""

from __future__ import annotations

import contextlib
import math
import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.errors import DecodeError
from ingest.wire import (
    HEADER,
    MAGIC,
    RECORD_DTYPE,
    Sample,
    SampleBatch,
    concat,
    decode,
    encode_binary,
    encode_json,
)

device_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z").filter(lambda d: d != "gateway")
f32 = st.one_of(st.none(), st.floats(width=32, allow_nan=False, allow_infinity=False))
f64 = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def sample_lists(draw: st.DrawFn, *, one_device: bool) -> list[Sample]:
    devices = (
        [draw(device_ids)]
        if one_device
        else draw(st.lists(device_ids, min_size=1, max_size=5, unique=True))
    )
    n = draw(st.integers(1, 40))
    return [
        Sample(
            device_id=draw(st.sampled_from(devices)),
            seq=draw(st.integers(0, 2**32 - 1)),
            ts_ms=draw(st.integers(0, 2**53)),
            hr=draw(f32),
            skin_temp=draw(f32),
            spo2=draw(f32),
            lat=draw(f64),
            lon=draw(f64),
            gps_acc=draw(f32),
            motion=draw(f32),
            battery=draw(f32),
            flags=draw(st.integers(0, 7)),
        )
        for _ in range(n)
    ]


@given(sample_lists(one_device=True))
@settings(max_examples=200)
def test_binary_device_frame_any_valid_round_trips(samples: list[Sample]) -> None:
    """Every valid single-device frame decodes to exactly the samples encoded."""
    assert decode(encode_binary(samples), topic_device=samples[0].device_id).samples() == samples


@given(sample_lists(one_device=True))
@settings(max_examples=200)
def test_json_device_frame_any_valid_round_trips(samples: list[Sample]) -> None:
    """JSON carries the same samples as binary."""
    assert decode(encode_json(samples), topic_device=samples[0].device_id).samples() == samples


@given(sample_lists(one_device=False), st.booleans())
@settings(max_examples=200)
def test_gateway_frame_any_valid_round_trips(samples: list[Sample], binary: bool) -> None:
    """A gateway frame carries many devices in either encoding."""
    encode = encode_binary if binary else encode_json
    assert decode(encode(samples, gateway=True)).samples() == samples


@given(sample_lists(one_device=False), sample_lists(one_device=False))
def test_concat_two_batches_keeps_every_sample_in_order(a: list[Sample], b: list[Sample]) -> None:
    """Merged device tables keep each sample's device."""
    merged = concat([SampleBatch.from_samples(a), SampleBatch.from_samples(b)])
    assert merged.samples() == a + b


@given(sample_lists(one_device=False))
def test_by_device_splits_without_losing_or_reordering(samples: list[Sample]) -> None:
    """Splitting per device keeps every device's samples in their order."""
    parts = SampleBatch.from_samples(samples).by_device()
    for part in parts:
        device = part.devices[0]
        assert part.samples() == [s for s in samples if s.device_id == device]
    assert sum(len(p) for p in parts) == len(samples)


def test_missing_values_are_nan_in_batch_and_null_in_json() -> None:
    """Missing is explicit: NaN in columns, null on the JSON wire."""
    s = [Sample("d1", 1, 1000)]
    batch = decode(encode_binary(s), topic_device="d1")
    assert math.isnan(float(batch.hr[0]))
    assert orjson.loads(encode_json(s))["samples"][0]["spo2"] is None


def _frame(n: int = 2, device: str = "d1") -> bytes:
    return encode_binary([Sample(device, i, 1000 + i, hr=70.0) for i in range(n)])


BAD_BINARY = {
    "truncated header": b"PP\x01",
    "truncated": _frame()[:-1],
    "trailing bytes": _frame() + b"\x00",
    "unsupported version": MAGIC + b"\x02" + _frame()[3:],
    "unknown frame kind": MAGIC + b"\x01\x09" + _frame()[4:],
    "no samples": HEADER.pack(MAGIC, 1, 1, 1, 0) + b"\x02d1",
    "bad device count": HEADER.pack(MAGIC, 1, 1, 2, 1) + b"\x02d1\x02d2" + bytes(56),
    "truncated device table": HEADER.pack(MAGIC, 1, 1, 1, 1) + b"\x09d1",
    "invalid device id": HEADER.pack(MAGIC, 1, 1, 1, 1) + b"\x02d/" + bytes(56),
    "not ASCII": HEADER.pack(MAGIC, 1, 1, 1, 1) + b"\x02\xff\xfe" + bytes(56),
}


@pytest.mark.parametrize(("reason", "payload"), list(BAD_BINARY.items()), ids=list(BAD_BINARY))
def test_decode_malformed_binary_raises_decode_error_with_reason(
    reason: str, payload: bytes
) -> None:
    """Each structural fault of a binary frame is named."""
    with pytest.raises(DecodeError, match=reason):
        decode(payload, topic_device="d1")


def test_decode_device_index_outside_table_is_refused() -> None:
    """A record pointing past the device table cannot be attributed."""
    rec = np.zeros(1, dtype=RECORD_DTYPE)
    rec["dev"] = 3
    payload = HEADER.pack(MAGIC, 1, 2, 1, 1) + b"\x02d1" + rec.tobytes()
    with pytest.raises(DecodeError, match="device index 3"):
        decode(payload)


def test_decode_reserved_flag_bits_are_refused() -> None:
    """Flags outside SOS/fall/replay are reserved in v1."""
    rec = np.zeros(1, dtype=RECORD_DTYPE)
    rec["flags"] = 0x80
    payload = HEADER.pack(MAGIC, 1, 1, 1, 1) + b"\x02d1" + rec.tobytes()
    with pytest.raises(DecodeError, match="reserved flag"):
        decode(payload, topic_device="d1")


def _json(obj: object) -> bytes:
    return orjson.dumps(obj)


GOOD_ROW = {"seq": 1, "ts_ms": 1000, "hr": 70}
BAD_JSON = {
    "invalid JSON": b'{"v":1,',
    "not an object": b"[1,2]",
    "unsupported version": _json({"v": 2, "device_id": "d1", "samples": [GOOD_ROW]}),
    "unknown frame keys": _json({"v": 1, "device_id": "d1", "x": 1, "samples": [GOOD_ROW]}),
    "non-empty list": _json({"v": 1, "device_id": "d1", "samples": []}),
    "'seq' must be an integer": _json({"v": 1, "device_id": "d1", "samples": [{"ts_ms": 1}]}),
    "'ts_ms' must be an integer": _json(
        {"v": 1, "device_id": "d1", "samples": [{"seq": 1, "ts_ms": "now"}]}
    ),
    "'hr' must be a number or null": _json(
        {"v": 1, "device_id": "d1", "samples": [{"seq": 1, "ts_ms": 1, "hr": "70"}]}
    ),
    "unknown keys": _json({"v": 1, "device_id": "d1", "samples": [{**GOOD_ROW, "temp": 1}]}),
    "'seq'=-1 outside": _json({"v": 1, "device_id": "d1", "samples": [{"seq": -1, "ts_ms": 1}]}),
    "NaN": b'{"v":1,"device_id":"d1","samples":[{"seq":1,"ts_ms":1,"hr":NaN}]}',
    "is not an object": _json({"v": 1, "device_id": "d1", "samples": [5]}),
    "'device_id' must be a string": _json({"v": 1, "device_id": 7, "samples": [GOOD_ROW]}),
    "reserved flag bits": _json({"v": 1, "device_id": "d1", "samples": [{**GOOD_ROW, "flags": 8}]}),
}


@pytest.mark.parametrize(("reason", "payload"), list(BAD_JSON.items()), ids=list(BAD_JSON))
def test_decode_malformed_json_raises_decode_error_with_reason(reason: str, payload: bytes) -> None:
    """Each fault of a JSON frame is named (NaN is not JSON: missing is null)."""
    with pytest.raises(DecodeError, match=reason if reason != "NaN" else "invalid JSON"):
        decode(payload, topic_device="d1")


def test_decode_device_frame_for_another_device_is_refused() -> None:
    """A device may only speak for itself on its own topic."""
    with pytest.raises(DecodeError, match="does not match the topic"):
        decode(_frame(device="d2"), topic_device="d1")


def test_decode_gateway_frame_on_device_topic_is_refused() -> None:
    """Frame kind and topic kind must agree."""
    with pytest.raises(DecodeError, match="gateway frame on a device topic"):
        decode(encode_binary([Sample("d1", 1, 1)], gateway=True), topic_device="d1")
    with pytest.raises(DecodeError, match="device frame on a gateway topic"):
        decode(_frame(), topic_device=None)


@pytest.mark.parametrize("payload", [b"", b"\x00\x01", b"hello", b"\x89PNG"])
def test_decode_unknown_encoding_is_refused(payload: bytes) -> None:
    """Neither JSON nor binary magic: refused, not guessed."""
    with pytest.raises(DecodeError):
        decode(payload, topic_device="d1")


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_decode_random_bytes_never_crashes(payload: bytes) -> None:
    """Arbitrary bytes either decode or raise DecodeError, nothing else."""
    with contextlib.suppress(DecodeError):
        decode(payload, topic_device="d1")


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_decode_binary_prefix_with_random_tail_never_crashes(tail: bytes) -> None:
    """A valid magic and version followed by junk is still only a DecodeError."""
    with contextlib.suppress(DecodeError):
        decode(MAGIC + b"\x01" + tail, topic_device="d1")


def test_binary_record_layout_is_56_bytes_little_endian() -> None:
    """The documented layout: seq at offset 4, ts_ms at 8, hr at 16 (docs/wire-format.md)."""
    frame = encode_binary([Sample("d1", 0x01020304, 0x0A0B0C0D0E, hr=72.5)])
    body = frame[HEADER.size + 3 :]
    assert len(body) == 56
    assert struct.unpack_from("<I", body, 4)[0] == 0x01020304
    assert struct.unpack_from("<q", body, 8)[0] == 0x0A0B0C0D0E
    assert struct.unpack_from("<f", body, 16)[0] == 72.5
