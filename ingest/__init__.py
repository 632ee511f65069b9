"""Ingest: the wire format (shared with `firmware_sim`), the MQTT consumer, plausibility,
micro-batching, dead letters and the telemetry writer.

Contract: `decode` turns any payload into a `SampleBatch` or raises `DecodeError` with a
reason; `Ingest` stores every plausible sample exactly once (per device, time and sequence)
and every other payload as a dead letter, and never stops for bad input.
"""

from ingest.config import IngestSettings, MqttSettings, PlausibilityLimits
from ingest.consumer import BatchHook, Ingest, IngestStats
from ingest.errors import DecodeError, PermitPulseError
from ingest.wire import Sample, SampleBatch, concat, decode, encode_binary, encode_json
from ingest.writer import DeadLetter, TelemetryWriter, WriteResult

__all__ = [
    "BatchHook",
    "DeadLetter",
    "DecodeError",
    "Ingest",
    "IngestSettings",
    "IngestStats",
    "MqttSettings",
    "PermitPulseError",
    "PlausibilityLimits",
    "Sample",
    "SampleBatch",
    "TelemetryWriter",
    "WriteResult",
    "concat",
    "decode",
    "encode_binary",
    "encode_json",
]
