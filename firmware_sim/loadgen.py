"""Load mode: many simulated wearables published as fast as the broker takes them.

Frames are encoded once (a cycle of ``cycle_ticks`` steps of a seeded fleet), laid out as a
stream of ready MQTT PUBLISH packets; each tick only patches sequence numbers, timestamps and
packet ids in place (numpy) and writes the stream to the socket. The work is split over
processes, each with its own connection: a raw MQTT 3.1.1 socket publisher (the default) or
paho-mqtt (the baseline it is measured against).
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import queue
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from firmware_sim import _packets as pk
from firmware_sim.fleet import Fleet, FleetSpec
from firmware_sim.framing import local_batch
from ingest import topics
from ingest.mqtt import BrokerAddress
from ingest.wire import RECORD_DTYPE, SampleBatch, encode_binary, encode_json

log = logging.getLogger(__name__)

_SEQ_AT = RECORD_DTYPE.fields["seq"][1]  # type: ignore[index]
_TS_AT = RECORD_DTYPE.fields["ts_ms"][1]  # type: ignore[index]
Client = Literal["raw", "paho"]


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What to publish.

    Attributes:
        rate_hz: samples per second per device; 0 = as fast as possible.
        gateway_size: devices per gateway frame; 1 = one device frame per device and tick.
        window: most QoS 1 messages unacknowledged at once (per process); default the best
            measured here for the client: 5 000 for the raw publisher, 1 000 for paho (whose
            throughput falls to a sixth at 20 000 in flight).
    """

    mqtt_url: str
    topic_root: str
    site: str = "load-site"
    devices: int = 1000
    rate_hz: float = 1.0
    duration_s: float = 10.0
    encoding: Literal["binary", "json"] = "binary"
    processes: int = 1
    gateway_size: int = 1
    qos: int = 1
    client: Client = "raw"
    seed: int = 1
    prefix: str = "ld"
    cycle_ticks: int = 10
    window: int | None = None
    slices: int = 10


@dataclass
class PartResult:
    messages: int = 0
    samples: int = 0
    acked: int = 0
    ticks: int = 0
    late_ticks: int = 0
    elapsed_s: float = 0.0
    setup_s: float = 0.0
    started: float = 0.0
    error: str | None = None


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class TickStream:
    """One tick's packets: the bytes, packet boundaries and where each payload starts."""

    data: npt.NDArray[np.uint8]
    bounds: npt.NDArray[np.int64]
    payload_at: npt.NDArray[np.int64]


@dataclass
class FrameSet:
    """One process's frames, laid out as a stream of PUBLISH packets per cycle step.

    Binary frames keep their size, so a tick is a copy of the cycle step's stream with the
    sequence numbers, timestamps (``seq_at``/``ts_at``: byte offsets) and packet ids
    (``pid_at``) patched in. JSON frames change size with their numbers, so they are
    encoded again every tick (``records`` keeps the cycle's values for that).
    """

    streams: list[npt.NDArray[np.uint8]]
    bounds: npt.NDArray[np.int64]
    payload_at: npt.NDArray[np.int64]
    seq_at: npt.NDArray[np.int64]
    ts_at: npt.NDArray[np.int64]
    pid_at: npt.NDArray[np.int64]
    topics: list[str]
    samples: int
    spec: LoadSpec
    names: tuple[str, ...]
    records: list[np.ndarray]

    @property
    def packets(self) -> int:
        return len(self.topics)

    def tick(self, c: int, seq: int, ts_ms: int, first_pid: int) -> TickStream:
        """The packets of a tick: cycle step ``c`` stamped ``seq``/``ts_ms``, packet ids
        counting from ``first_pid`` (1..65535, wrapping)."""
        if self.spec.encoding == "json":
            rec = self.records[c].copy()
            rec["seq"], rec["ts_ms"] = seq, ts_ms
            stream, layout = _stream(
                _frames(self.spec, self.names, rec, encode_json), self.spec.qos
            )
            buf, bounds, payload_at, pid_at = stream.copy(), layout[0], layout[1], layout[2]
        else:
            buf, bounds, payload_at, pid_at = (
                self.streams[c].copy(),
                self.bounds,
                self.payload_at,
                self.pid_at,
            )
            buf[self.seq_at[:, None] + np.arange(4)] = np.frombuffer(
                np.uint32(seq).tobytes(), dtype=np.uint8
            )
            buf[self.ts_at[:, None] + np.arange(8)] = np.frombuffer(
                np.int64(ts_ms).tobytes(), dtype=np.uint8
            )
        if len(pid_at):
            pids = (first_pid - 1 + np.arange(len(pid_at))) % 65_535 + 1
            buf[pid_at] = pids >> 8
            buf[pid_at + 1] = pids & 0xFF
        return TickStream(buf, bounds, payload_at)


def device_ids(spec: LoadSpec) -> list[str]:
    width = max(6, len(str(spec.devices)))
    return [f"{spec.prefix}-{k:0{width}d}" for k in range(1, spec.devices + 1)]


def part_devices(spec: LoadSpec, part: int) -> list[str]:
    """Devices of process ``part``: a contiguous share, whole gateways each."""
    ids = device_ids(spec)
    groups = [ids[k : k + spec.gateway_size] for k in range(0, len(ids), spec.gateway_size)]
    mine = groups[part :: spec.processes]
    return [d for g in mine for d in g]


def build_frames(spec: LoadSpec, devices: list[str], *, part: int = 0) -> FrameSet:
    """Encode ``cycle_ticks`` steps of a seeded fleet for ``devices`` into packet streams."""
    fleet = Fleet(FleetSpec(devices=len(devices), seed=spec.seed * 1000 + part))
    names = tuple(devices)
    streams: list[npt.NDArray[np.uint8]] = []
    records: list[np.ndarray] = []
    layout: tuple[Any, ...] = ()
    for c in range(spec.cycle_ticks):
        rec = fleet.tick(0, 1.0).to_records()
        rec["seq"] = 0
        rec["ts_ms"] = 0
        records.append(rec)
        if spec.encoding == "json":
            if c == 0:
                _, layout = _stream(_frames(spec, names, rec, encode_json), spec.qos)
            continue
        stream, this_layout = _stream(_frames(spec, names, rec, encode_binary), spec.qos)
        if c == 0:
            layout = this_layout
        streams.append(stream)
    bounds, payload_at, pid_at, topics_, seq_at, ts_at, samples = layout
    return FrameSet(
        streams, bounds, payload_at, seq_at, ts_at, pid_at, topics_, samples, spec, names, records
    )


def _frames(
    spec: LoadSpec, names: tuple[str, ...], rec: np.ndarray, encode: Any
) -> list[tuple[str, bytes, int]]:
    """(topic, payload, samples) per frame."""
    out = []
    k = spec.gateway_size
    for g in range(0, len(names), k):
        part = rec[g : g + k]
        if k == 1:
            part = part.copy()
            part["dev"] = 0
            batch = SampleBatch.from_records((names[g],), part)
            topic = topics.device_topic(spec.topic_root, spec.site, names[g], "telemetry")
            out.append((topic, encode(batch), 1))
        else:
            gw = f"{spec.prefix}gw-{names[g]}"
            batch = local_batch(names, part)
            topic = topics.gateway_topic(spec.topic_root, spec.site, gw)
            out.append((topic, encode(batch, gateway=True), len(part)))
    return out


def _stream(frames: list[tuple[str, bytes, int]], qos: int) -> tuple[Any, tuple[Any, ...]]:
    """Concatenated PUBLISH packets and where to patch them (binary frames only)."""
    chunks, bounds, payload_at, pid_at, seq_at, ts_at, names = [], [0], [], [], [], [], []
    pos = samples = 0
    for topic, payload, n in frames:
        head, pid_offset = pk.publish_header(topic, len(payload), qos=qos)
        if qos:
            pid_at.append(pos + pid_offset)
        start = pos + len(head)
        payload_at.append(start)
        records_at = start + len(payload) - n * RECORD_DTYPE.itemsize
        rows = records_at + RECORD_DTYPE.itemsize * np.arange(n)
        seq_at.append(rows + _SEQ_AT)
        ts_at.append(rows + _TS_AT)
        chunks += [head, payload]
        pos = start + len(payload)
        bounds.append(pos)
        names.append(topic)
        samples += n
    stream = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    layout = (
        np.array(bounds, dtype=np.int64),
        np.array(payload_at, dtype=np.int64),
        np.array(pid_at, dtype=np.int64),
        names,
        np.concatenate(seq_at).astype(np.int64) if seq_at else np.zeros(0, np.int64),
        np.concatenate(ts_at).astype(np.int64) if ts_at else np.zeros(0, np.int64),
        samples,
    )
    return stream, layout


# --------------------------------------------------------------------------- publishers


class RawPublisher:
    """A bare MQTT 3.1.1 publisher on a blocking socket; a thread counts PUBACKs."""

    def __init__(self, url: str, client_id: str) -> None:
        addr = BrokerAddress.from_url(url)
        self.sock = socket.create_connection((addr.host, addr.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(
            pk.connect(
                client_id,
                keepalive_s=60,
                clean_session=True,
                username=addr.username,
                password=addr.password,
            )
        )
        reply = self.sock.recv(4)
        if len(reply) < 4 or reply[0] >> 4 != pk.CONNACK or reply[3]:
            raise ConnectionError(f"CONNACK refused or missing: {reply!r}")
        self.sock.settimeout(None)
        self.acked = 0
        self._stop = False
        self._reader = threading.Thread(target=self._count_acks, daemon=True, name="puback")
        self._reader.start()

    def _count_acks(self) -> None:
        reader = pk.PacketReader()
        while not self._stop:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            n = len(data)
            if n % 4 == 0 and data[0] == 0x40 and data[1] == 2 and not reader._buf:
                arr = np.frombuffer(data, dtype=np.uint8).reshape(-1, 4)
                if (arr[:, 0] == 0x40).all() and (arr[:, 1] == 2).all():
                    self.acked += len(arr)
                    continue
            self.acked += sum(1 for p in reader.feed(data) if p.kind == pk.PUBACK)

    def send(self, data: npt.NDArray[np.uint8]) -> None:
        self.sock.sendall(data.data)

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.sendall(pk.DISCONNECT_PACKET)
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(2)


def _run_raw(spec: LoadSpec, fs: FrameSet, client: str, start: Any) -> PartResult:
    pub = RawPublisher(spec.mqtt_url, client)
    try:
        res = _publish_loop(
            spec, fs, start, send=lambda ts, a, b: pub.send(_cut(ts, a, b)), acked=lambda: pub.acked
        )
        _finish(spec, res, lambda: pub.acked)
        return res
    finally:
        pub.close()


def _cut(ts: TickStream, first: int, last: int) -> npt.NDArray[np.uint8]:
    return ts.data[ts.bounds[first] : ts.bounds[last]]


def _run_paho(spec: LoadSpec, fs: FrameSet, client: str, start: Any) -> PartResult:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    addr = BrokerAddress.from_url(spec.mqtt_url)
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client,
        protocol=paho.MQTTv311,
        clean_session=True,
    )
    if addr.username:
        c.username_pw_set(addr.username, addr.password)
    c.max_inflight_messages_set(spec.window or 1_000)
    c.max_queued_messages_set(0)
    acked = [0]
    c.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
    c.connect(addr.host, addr.port, keepalive=60)
    c.loop_start()
    names = fs.topics

    def send(ts: TickStream, first: int, last: int) -> None:
        raw = _cut(ts, first, last).tobytes()
        base = int(ts.bounds[first])
        for k in range(first, last):
            a, b = int(ts.payload_at[k]) - base, int(ts.bounds[k + 1]) - base
            c.publish(names[k], raw[a:b], qos=spec.qos)

    try:
        res = _publish_loop(spec, fs, start, send=send, acked=lambda: acked[0])
        _finish(spec, res, lambda: acked[0])
        return res
    finally:
        c.disconnect()
        c.loop_stop()


def _finish(spec: LoadSpec, res: PartResult, acked: Any, stall_s: float = 5.0) -> None:
    """Wait until the broker has acknowledged everything sent (QoS 1; give up after
    ``stall_s`` without progress), then close the books: elapsed time and acked count."""
    if spec.qos:
        last, since = -1, time.monotonic()
        while (now := acked()) < res.messages:
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > stall_s:
                break
            time.sleep(0.001)
    period = 1.0 / spec.rate_hz if spec.rate_hz > 0 else 0.0
    # Paced: the run spans its ticks' periods even though the last slice goes out early.
    res.elapsed_s = max(time.monotonic() - res.started, res.ticks * period)
    res.acked = acked() if spec.qos else res.messages


def _publish_loop(spec: LoadSpec, fs: FrameSet, start: Any, *, send: Any, acked: Any) -> PartResult:
    """Tick loop: stamp, pace, send in slices spread over the tick; stops after
    ``duration_s``. With QoS 1 at most ``window`` messages are unacknowledged at once."""
    res = PartResult()
    window = spec.window or (5_000 if spec.client == "raw" else 1_000)
    window = min(window, 60_000)  # packet ids in flight must stay unique (1..65535)
    # Slices no larger than the window, so that a slice can always go out.
    slices = max(1, min(fs.packets, max(spec.slices, math.ceil(fs.packets / window))))
    cuts = np.linspace(0, fs.packets, slices + 1).astype(int)
    period = 1.0 / spec.rate_hz if spec.rate_hz > 0 else 0.0
    start.wait()
    t0 = time.monotonic()
    sent = tick = 0
    ticks = round(spec.duration_s * spec.rate_hz) if period else None
    while (tick < ticks) if ticks is not None else (time.monotonic() - t0 < spec.duration_s):
        ts = fs.tick(tick % spec.cycle_ticks, tick + 1, time.time_ns() // 1_000_000, sent + 1)
        for j in range(slices):
            first, last = int(cuts[j]), int(cuts[j + 1])
            if first == last:
                continue
            if period:
                delay = t0 + tick * period + j * period / slices - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            while spec.qos and sent + (last - first) - acked() > window:
                time.sleep(0.0005)
            send(ts, first, last)
            sent += last - first
        tick += 1
        if period and time.monotonic() > t0 + tick * period + period / 2:
            res.late_ticks += 1
    res.started = t0
    res.ticks = tick
    res.messages = sent
    res.samples = tick * fs.samples
    return res


def _part_main(spec: LoadSpec, part: int, barrier: Any, out: Any) -> None:
    """One process: build its frames, wait for the others, publish, report."""
    t = time.monotonic()
    try:
        fs = build_frames(spec, part_devices(spec, part), part=part)
        client = f"{spec.prefix}-load-{part}-{time.time_ns() % 1_000_000_000}"
        setup = time.monotonic() - t
        run = _run_raw if spec.client == "raw" else _run_paho
        result = run(spec, fs, client, barrier)
        result.setup_s = setup
        out.put((part, asdict(result)))
    except Exception as exc:  # report it, and free the other processes from the barrier
        out.put((part, asdict(PartResult(error=f"{type(exc).__name__}: {exc}"))))
        try:
            barrier.abort()
        except Exception:
            log.debug("barrier already broken")


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Run the load and return one summary (messages, samples, per second, acked)."""
    if spec.devices < 1 or spec.processes < 1 or spec.gateway_size < 1:
        raise ValueError("devices, processes and gateway_size must be at least 1")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(spec.processes)
    out: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_part_main, args=(spec, k, barrier, out), name=f"load-{k}")
        for k in range(spec.processes)
    ]
    for p in procs:
        p.start()
    results: dict[int, dict[str, Any]] = {}
    while len(results) < len(procs):
        try:
            part, result = out.get(timeout=1.0)
            results[part] = result
            continue
        except queue.Empty:
            pass
        for k, p in enumerate(procs):
            if k not in results and not p.is_alive():  # died without a word
                results[k] = asdict(PartResult(error=f"{p.name} exited with code {p.exitcode}"))
                barrier.abort()
    for p in procs:
        p.join(30)
    return summarise(spec, [results[k] for k in sorted(results)])


def summarise(spec: LoadSpec, parts: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [p["error"] for p in parts if p.get("error")]
    elapsed = max((p["elapsed_s"] for p in parts), default=0.0) or 1e-9
    messages = sum(p["messages"] for p in parts)
    samples = sum(p["samples"] for p in parts)
    target = spec.devices * spec.rate_hz
    report: dict[str, Any] = {
        "mode": "load",
        "client": spec.client,
        "encoding": spec.encoding,
        "qos": spec.qos,
        "devices": spec.devices,
        "gateway_size": spec.gateway_size,
        "processes": spec.processes,
        "rate_hz": spec.rate_hz,
        "duration_s": spec.duration_s,
        "elapsed_s": round(elapsed, 3),
        "messages": messages,
        "samples": samples,
        "messages_per_s": round(messages / elapsed, 1),
        "samples_per_s": round(samples / elapsed, 1),
        "target_samples_per_s": target if target else None,
        "late_ticks": sum(p["late_ticks"] for p in parts),
        "acked": sum(p["acked"] for p in parts),
        "setup_s": round(max((p["setup_s"] for p in parts), default=0.0), 2),
    }
    if errors:
        report["errors"] = errors
    return report
