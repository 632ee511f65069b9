"""Micro-batches: MQTT messages in, one checked, de-duplicated, time-ordered columnar batch out.

Per message only the header is looked at (a few microseconds: the topic and the device table
are cached per topic); decoding, plausibility, de-duplication and rate limiting run once per
batch over numpy columns. A message that fails anywhere is dead-lettered with the reason given
by the reference decoder (`ingest.wire.decode`) or the rule that caught it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import aiomqtt
import numpy as np
import numpy.typing as npt

from ingest import plausibility, topics
from ingest.config import IngestSettings
from ingest.errors import DecodeError
from ingest.ratelimit import RateLimiter
from ingest.wire import (
    HEADER,
    KIND_DEVICE,
    KIND_GATEWAY,
    MAGIC,
    RECORD_DTYPE,
    VERSION,
    SampleBatch,
    decode,
    frame_layout,
    record_faults,
)
from ingest.writer import DeadLetter

log = logging.getLogger(__name__)

_RECORD_SIZE = RECORD_DTYPE.itemsize
_KEEP_OVERSIZE = 1024  # bytes of an oversize payload kept in its dead letter
_MAX_REASON = 500  # characters of a dead letter's reason


@dataclass(eq=False, slots=True)
class Link:
    """One broker connection. A message is acknowledged only on the connection it came in on;
    after a reconnect the broker redelivers what was not, and the database de-duplicates."""

    client: aiomqtt.Client
    generation: int
    open: bool = True


@dataclass(slots=True)
class _Source:
    """What a topic says, plus the last device table seen on it (gateways repeat theirs)."""

    topic: topics.Topic
    table: bytes = b""
    kind: int = 0
    ids: list[int] = field(default_factory=list)


class Registry:
    """Small integer ids for the devices this process has seen, their sites, the parsed topics
    and the devices' rate-limit buckets. Bounded: past ``max_devices`` the owner starts a new
    one (batches being built keep the one they started with)."""

    def __init__(self, settings: IngestSettings, *, max_devices: int = 1_000_000) -> None:
        self.names: list[str] = []
        self.sites: list[str] = []
        self.index: dict[str, int] = {}
        self.sources: dict[str, _Source] = {}
        self.limiter = RateLimiter(
            rate=settings.rate_limit_samples_per_s, burst=settings.rate_limit_burst_samples
        )
        self.max_devices = max_devices

    @property
    def full(self) -> bool:
        return len(self.names) >= self.max_devices or len(self.sources) >= 2 * self.max_devices

    def device(self, name: str, site: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
            self.sites.append(site)
        else:
            self.sites[i] = site
        return i

    def source(self, root: str, topic: str) -> _Source | None:
        """The parsed telemetry topic; only valid ones are cached (their ids are short), so a
        flood of junk topics costs parsing, never memory."""
        src = self.sources.get(topic)
        if src is None:
            parsed = topics.parse(root, topic)
            if parsed is None or parsed.channel != "telemetry":
                return None
            src = self.sources[topic] = _Source(parsed)
        return src


@dataclass(eq=False)
class Job:
    """One micro-batch ready to commit: the samples, the dead letters, and the messages to
    acknowledge once both are stored.

    Attributes:
        origin: per sample, the index of the message it came from.
        dead_origin: per dead letter, the index of the message it came from.
        acks: message ids to acknowledge, per connection, in order of receipt.
        topics, payloads: per message, for dead-lettering a message the database refuses.
    """

    batch: SampleBatch
    sites: list[str]
    origin: npt.NDArray[np.int64]
    dead: list[DeadLetter]
    dead_origin: list[int]
    acks: list[tuple[Link, list[int]]]
    topics: list[str]
    payloads: list[bytes]
    received_at: float
    decoded: int = 0
    duplicates: int = 0
    rate_limited: int = 0

    @property
    def messages(self) -> int:
        return len(self.topics)

    def part(self, messages: npt.NDArray[np.bool_]) -> Job:
        """The samples and dead letters of the messages where ``messages`` holds (without
        acknowledgements: the whole job is acknowledged once every part is stored)."""
        keep = messages[self.origin]
        dead = [(i, d) for i, d in zip(self.dead_origin, self.dead, strict=True) if messages[i]]
        return Job(
            batch=self.batch.select(keep),
            sites=self.sites,
            origin=self.origin[keep],
            dead=[d for _, d in dead],
            dead_origin=[i for i, _ in dead],
            acks=[],
            topics=self.topics,
            payloads=self.payloads,
            received_at=self.received_at,
        )

    def message_ids(self) -> list[int]:
        """The messages that have samples or dead letters in this job, ascending."""
        return sorted(set(self.origin.tolist()) | set(self.dead_origin))


class BatchBuilder:
    """Collects messages until the writer takes them; `build` turns them into a `Job`.

    Args:
        root: the topic root (``pp/v1``).
        settings: the ingest settings.
        registry: device ids, topic cache and rate-limit buckets (shared across builders).
    """

    def __init__(self, *, root: str, settings: IngestSettings, registry: Registry) -> None:
        self._root = root
        self._settings = settings
        self._max_payload = settings.max_payload_bytes
        self.registry = registry
        self.messages = 0
        self.samples = 0
        self.since = 0.0
        self._topics: list[str] = []
        self._payloads: list[bytes] = []
        self._acks: list[tuple[Link, list[int]]] = []
        self._dead: list[tuple[int, DeadLetter]] = []
        # binary frames on the fast path
        self._bodies: list[memoryview] = []
        self._counts: list[int] = []
        self._origins: list[int] = []
        self._n_dev: list[int] = []
        self._base: list[int] = []
        self._flat_ids: list[int] = []
        # frames decoded by the reference decoder (JSON)
        self._decoded: list[tuple[int, SampleBatch, str]] = []

    def __len__(self) -> int:
        return self.messages

    def add(self, link: Link, message: aiomqtt.Message) -> bool:
        """Take ``message`` unless it would push a non-empty batch past its size; False means
        "write this batch first, then add the message to the next"."""
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = b"" if payload is None else str(payload).encode()
        topic = message.topic.value
        src = self.registry.source(self._root, topic)
        n = self._samples_in(src, payload)
        if self.messages and (
            self.samples + n > self._settings.batch_max_samples
            or self.messages >= self._settings.queue_max_messages
        ):
            return False
        i = self.messages
        if not i:
            self.since = time.monotonic()
        self.messages += 1
        self._topics.append(topic)
        self._payloads.append(payload)
        if message.qos:
            if self._acks and self._acks[-1][0] is link:
                self._acks[-1][1].append(message.mid)
            else:
                self._acks.append((link, [message.mid]))
        if src is None:
            self._reject(i, "topic", "not a v1 telemetry topic")
        elif len(payload) > self._max_payload:
            self._reject(
                i, "oversize", f"payload of {len(payload)} bytes is over {self._max_payload}"
            )
        else:
            self._take(i, src, payload)
        return True

    def _samples_in(self, src: _Source | None, payload: bytes) -> int:
        """How many samples the message claims (0 for what will be refused anyway)."""
        if src is None or len(payload) > self._max_payload:
            return 0
        if payload[:2] == MAGIC and len(payload) >= HEADER.size:
            return int(HEADER.unpack_from(payload)[4])
        return min(len(payload) // 16, 65_535)  # JSON: a sample takes at least ~16 bytes

    def _take(self, i: int, src: _Source, payload: bytes) -> None:
        if payload[:2] == MAGIC and len(payload) >= HEADER.size:
            _, version, kind, n_dev, n = HEADER.unpack_from(payload)
            table = src.table
            end = HEADER.size + len(table)
            if not (
                table
                and version == VERSION
                and kind == src.kind
                and n_dev == len(src.ids)
                and n
                and len(payload) == end + n * _RECORD_SIZE
                and payload.startswith(table, HEADER.size)
            ):
                try:
                    end = self._learn_table(src, payload)
                except DecodeError as exc:
                    self._reject(i, exc.kind, exc.reason)
                    return
                n = (len(payload) - end) // _RECORD_SIZE
            self._bodies.append(memoryview(payload)[end:])
            self._counts.append(n)
            self._origins.append(i)
            self._n_dev.append(len(src.ids))
            self._base.append(len(self._flat_ids))
            self._flat_ids.extend(src.ids)
            self.samples += n
            return
        try:
            batch = decode(payload, topic_device=src.topic.device)
        except DecodeError as exc:
            self._reject(i, exc.kind, exc.reason)
            return
        self._decoded.append((i, batch, src.topic.site))
        self.samples += len(batch)

    def _learn_table(self, src: _Source, payload: bytes) -> int:
        """Validate a frame whose device table is new on this topic, and cache the table."""
        layout = frame_layout(payload)
        if src.topic.device is None and not layout.gateway:
            raise DecodeError("device frame on a gateway topic", "device")
        if src.topic.device is not None:
            if layout.gateway:
                raise DecodeError("gateway frame on a device topic", "device")
            if layout.devices[0] != src.topic.device:
                raise DecodeError(
                    f"device id {layout.devices[0]!r} does not match the topic's "
                    f"{src.topic.device!r}",
                    "device",
                )
        src.table = payload[HEADER.size : layout.table_end]
        src.kind = KIND_GATEWAY if layout.gateway else KIND_DEVICE
        src.ids = [self.registry.device(d, src.topic.site) for d in layout.devices]
        return layout.table_end

    def _reject(self, i: int, kind: str, reason: str, sample_index: int | None = None) -> None:
        payload = self._payloads[i]
        if kind == "oversize":
            payload = payload[:_KEEP_OVERSIZE]
        if len(reason) > _MAX_REASON:  # reasons may quote the payload (unknown keys, ids)
            reason = reason[: _MAX_REASON - 1] + "…"
        self._dead.append(
            (i, DeadLetter(self._topics[i], payload, reason, sample_index, kind=kind))
        )

    # ------------------------------------------------------------------ build

    def build(self, *, now_ms: int, now_s: float) -> Job:
        """Decode, check, de-duplicate, rate-limit and order everything collected."""
        rec, ids, origin, pos = self._records()
        if len(rec):
            verdict = plausibility.check(
                SampleBatch.from_records((), rec), now_ms=now_ms, settings=self._settings
            )
            if not verdict.all_ok:
                self._reject_implausible(verdict, origin, pos)
                keep = verdict.ok
                rec, ids, origin = rec[keep], ids[keep], origin[keep]
        before = len(rec)
        rec, ids, origin = _dedupe_in_time_order(rec, ids, origin)
        admitted = self.registry.limiter.admit(ids, now_s)
        limited = len(admitted) - int(np.count_nonzero(admitted))
        if limited:
            self._reject_rate_limited(ids[~admitted], origin[~admitted])
            rec, ids, origin = rec[admitted], ids[admitted], origin[admitted]
        present, local = np.unique(ids, return_inverse=True)
        rec["dev"] = local
        names, sites = self.registry.names, self.registry.sites
        present_list = present.tolist()
        self._dead.sort(key=lambda d: d[0])
        return Job(
            batch=SampleBatch.from_records(tuple(names[p] for p in present_list), rec),
            sites=[sites[p] for p in present_list],
            origin=origin,
            dead=[d for _, d in self._dead],
            dead_origin=[i for i, _ in self._dead],
            acks=self._acks,
            topics=self._topics,
            payloads=self._payloads,
            received_at=self.since,
            decoded=self.samples,
            duplicates=before - len(rec),
            rate_limited=limited,
        )

    def build_failed(self, reason: str) -> Job:
        """A job that dead-letters every message (when `build` itself failed): the messages
        are kept for inspection and acknowledged, so one bad batch cannot stall the ingest."""
        empty = np.zeros(0, dtype=RECORD_DTYPE)
        return Job(
            batch=SampleBatch.from_records((), empty),
            sites=[],
            origin=np.zeros(0, dtype=np.int64),
            dead=[
                DeadLetter(
                    t,
                    p[:_KEEP_OVERSIZE] if len(p) > self._max_payload else p,
                    reason,
                    kind="internal",
                )
                for t, p in zip(self._topics, self._payloads, strict=True)
            ],
            dead_origin=list(range(self.messages)),
            acks=self._acks,
            topics=self._topics,
            payloads=self._payloads,
            received_at=self.since,
        )

    def _records(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All samples as records, with per sample: registry device id, message index and
        position within its message. Frames whose records are faulty are dead-lettered."""
        recs, ids, origins, positions = [], [], [], []
        if self._bodies:
            rec = np.frombuffer(b"".join(self._bodies), dtype=RECORD_DTYPE)
            counts = np.asarray(self._counts)
            origin = np.repeat(np.asarray(self._origins, dtype=np.int64), counts)
            starts = np.cumsum(counts) - counts
            pos = np.arange(len(rec)) - np.repeat(starts, counts)
            n_dev = np.repeat(np.asarray(self._n_dev), counts)
            dev = rec["dev"].astype(np.int64)
            faults = record_faults(rec, n_dev)
            if faults.any():
                bad = np.unique(origin[faults])
                for i in bad.tolist():
                    self._reject_by_reference(i)
                ok = ~np.isin(origin, bad)
                rec, origin, pos, dev = rec[ok], origin[ok], pos[ok], dev[ok]
                base = np.repeat(np.asarray(self._base), counts)[ok]
            else:
                base = np.repeat(np.asarray(self._base), counts)
            flat = np.asarray(self._flat_ids, dtype=np.int64)
            recs.append(rec)
            ids.append(flat[base + dev])
            origins.append(origin)
            positions.append(pos)
        for i, batch, site in self._decoded:
            table = np.array([self.registry.device(d, site) for d in batch.devices], np.int64)
            rec = batch.to_records()
            recs.append(rec)
            ids.append(table[rec["dev"]])
            origins.append(np.full(len(rec), i, dtype=np.int64))
            positions.append(np.arange(len(rec)))
        if not recs:
            empty = np.zeros(0, dtype=np.int64)
            return np.zeros(0, dtype=RECORD_DTYPE), empty, empty, empty
        if len(recs) == 1:
            return recs[0], ids[0], origins[0], positions[0]
        return (
            np.concatenate(recs),
            np.concatenate(ids),
            np.concatenate(origins),
            np.concatenate(positions),
        )

    def _reject_by_reference(self, i: int) -> None:
        src = self.registry.sources.get(self._topics[i])
        try:
            decode(self._payloads[i], topic_device=src.topic.device if src else None)
        except DecodeError as exc:
            self._reject(i, exc.kind, exc.reason)
            return
        self._reject(i, "internal", "fast and reference decoders disagree on this frame")

    def _reject_implausible(
        self, verdict: plausibility.Verdict, origin: np.ndarray, pos: np.ndarray
    ) -> None:
        by_message: dict[int, list[tuple[int, str]]] = {}
        for k, why in verdict.reasons.items():
            by_message.setdefault(int(origin[k]), []).append((int(pos[k]), why))
        for i, bad in by_message.items():
            n = int(np.count_nonzero(origin == i))
            bad.sort()
            listed = "; ".join(f"#{p} {why}" for p, why in bad[:5])
            reason = f"{len(bad)} of {n} samples implausible: {listed}"
            self._reject(i, "implausible", reason, sample_index=bad[0][0])

    def _reject_rate_limited(self, ids: np.ndarray, origin: np.ndarray) -> None:
        devs, first, counts = np.unique(ids, return_index=True, return_counts=True)
        lim = self.registry.limiter
        for dev, at, count in zip(devs.tolist(), first.tolist(), counts.tolist(), strict=True):
            name = self.registry.names[dev]
            reason = (
                f"device {name!r} over its rate limit ({lim.rate:g} samples/s, burst "
                f"{lim.burst:g}): {count} samples dropped"
            )
            self._reject(int(origin[at]), "rate_limited", reason)
            log.warning("rate limit: %s samples of %s dropped", count, name)


def _dedupe_in_time_order(
    rec: np.ndarray, ids: np.ndarray, origin: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order by (time, device, seq) and keep the first received of equal keys (a duplicate
    within one batch never reaches the database; as there, the first one wins)."""
    if not len(rec):
        return rec.copy(), ids, origin
    ts, seq = rec["ts_ms"], rec["seq"]
    order = np.lexsort((origin, seq, ids, ts))
    ts, seq, ids_o = ts[order], seq[order], ids[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (ts[1:] != ts[:-1]) | (ids_o[1:] != ids_o[:-1]) | (seq[1:] != seq[:-1])
    if not first.all():
        order = order[first]
        ids_o = ids_o[first]
    return rec[order], ids_o, origin[order]
