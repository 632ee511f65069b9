"""What the ingest counts, and its Prometheus metrics (``pp_ingest_*``).

Counters and gauges are read from `IngestStats` when scraped (the hot path only increments
plain attributes); latency and size distributions are prometheus-client histograms observed
once per batch. Every ingest registers on the registry it is given (the API serves one
registry at ``/metrics``), or on a private one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class IngestStats:
    """Counters since start and the current status of the ingest."""

    messages: int = 0
    samples_decoded: int = 0
    samples_offered: int = 0
    samples_stored: int = 0
    duplicates: int = 0
    rate_limited: int = 0
    dead_letters: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    merged_batches: int = 0
    write_errors: int = 0
    refused_messages: int = 0
    acks: int = 0
    acks_skipped: int = 0
    hook_errors: int = 0
    internal_errors: int = 0
    broker_connected: bool = False
    broker_reconnects: int = 0
    database_ok: bool = True
    last_error: str = ""
    last_commit_monotonic: float = 0.0
    last_commit_unix: float = 0.0
    newest_sample_ms: int = 0


@dataclass(frozen=True, slots=True)
class Depths:
    """Messages and batches waiting at each stage right now."""

    mqtt: int
    batch: int
    hook: int
    unacked: int


_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SIZES = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 65_535)


class IngestMetrics:
    """The ingest's Prometheus metrics on ``registry`` (a private one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.batch_samples = Histogram(
            "pp_ingest_batch_samples", "Samples per committed micro-batch.", buckets=_SIZES,
            registry=r,
        )  # fmt: skip
        self.batch_messages = Histogram(
            "pp_ingest_batch_messages", "MQTT messages per committed micro-batch.",
            buckets=_SIZES, registry=r,
        )  # fmt: skip
        self.commit_seconds = Histogram(
            "pp_ingest_commit_seconds", "Duration of one micro-batch transaction that committed.",
            buckets=_SECONDS, registry=r,
        )  # fmt: skip
        self.lag_seconds = Histogram(
            "pp_ingest_lag_seconds",
            "From receipt of a batch's first message to its commit (time inside the ingest).",
            buckets=_SECONDS, registry=r,
        )  # fmt: skip

    def watch(self, stats: IngestStats, depths: Callable[[], Depths]) -> None:
        """Export ``stats`` and the live queue depths with every scrape."""
        self.registry.register(_StatsCollector(stats, depths))


class _StatsCollector(Collector):
    def __init__(self, stats: IngestStats, depths: Callable[[], Depths]) -> None:
        self._stats = stats
        self._depths = depths

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield _counter("messages", "MQTT messages received.", s.messages)
        samples = CounterMetricFamily(
            "pp_ingest_samples",
            "Samples by outcome: decoded from frames; stored (new rows); duplicate (already "
            "stored, or twice in one batch); rate_limited (dropped by the per-device limit).",
            labels=["outcome"],
        )
        for outcome, value in (
            ("decoded", s.samples_decoded),
            ("stored", s.samples_stored),
            ("duplicate", s.duplicates),
            ("rate_limited", s.rate_limited),
        ):
            samples.add_metric([outcome], value)
        yield samples
        dead = CounterMetricFamily(
            "pp_ingest_dead_letters", "Dead letters written, by reason.", labels=["reason"]
        )
        for reason, value in sorted(s.dead_letters_by_reason.items()):
            dead.add_metric([reason], value)
        yield dead
        batches = CounterMetricFamily(
            "pp_ingest_batches",
            "Committed micro-batches by path: copy (all new) or merge (met stored rows).",
            labels=["path"],
        )
        batches.add_metric(["copy"], s.batches - s.merged_batches)
        batches.add_metric(["merge"], s.merged_batches)
        yield batches
        yield _counter("write_errors", "Transactions that failed and were retried.", s.write_errors)
        yield _counter(
            "refused_messages",
            "Messages the database refused (isolated and dead-lettered).",
            s.refused_messages,
        )
        yield _counter("acks", "QoS 1 acknowledgements sent after commit.", s.acks)
        yield _counter(
            "acks_skipped",
            "Committed messages not acknowledged because their connection had closed (the "
            "broker redelivers them; the database de-duplicates).",
            s.acks_skipped,
        )
        yield _counter("hook_errors", "Detector hook calls that raised.", s.hook_errors)
        yield _counter(
            "internal_errors", "Batches that hit an unexpected error.", s.internal_errors
        )
        yield _counter("broker_reconnects", "Broker connections lost.", s.broker_reconnects)
        yield _gauge("broker_connected", "1 while subscribed to the broker.", s.broker_connected)
        yield _gauge(
            "database_up", "0 after a failed transaction until one commits.", s.database_ok
        )
        yield _gauge(
            "last_commit_timestamp_seconds", "Unix time of the last commit.", s.last_commit_unix
        )
        age = (time.time() * 1000 - s.newest_sample_ms) / 1000 if s.newest_sample_ms else 0.0
        yield _gauge(
            "sample_age_seconds",
            "Now minus the device time of the newest sample stored (device-to-database "
            "freshness; includes device clock skew).",
            age,
        )
        depth = self._depths()
        queues = GaugeMetricFamily(
            "pp_ingest_queue_depth",
            "Waiting now: mqtt (received by the client, not yet taken), batch (messages in the "
            "micro-batch being filled), hook (stored batches waiting for the detectors).",
            labels=["queue"],
        )
        queues.add_metric(["mqtt"], depth.mqtt)
        queues.add_metric(["batch"], depth.batch)
        queues.add_metric(["hook"], depth.hook)
        yield queues
        yield _gauge(
            "unacked_messages",
            "Messages received and not yet acknowledged (bounded by the broker's in-flight "
            "window).",
            depth.unacked,
        )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"pp_ingest_{name}", doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"pp_ingest_{name}", doc, value=float(value))
