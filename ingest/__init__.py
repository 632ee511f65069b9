"""The telemetry ingest: wire format v1, the MQTT consumer and the telemetry writer.

Contract: every QoS 1 telemetry message is acknowledged to the broker only after its samples
(or its dead letter) are committed; samples are stored once per (device, time, sequence);
nothing undecodable or implausible is stored as telemetry, and everything refused is kept in
``dead_letters`` with a reason. ``Ingest(on_batch=...)`` hands the detectors each committed
batch of new samples. Other packages import from here and from `ingest.wire`.
"""

from ingest.config import IngestSettings, MqttSettings, PlausibilityLimits
from ingest.consumer import BatchHook, Ingest
from ingest.errors import DecodeError, PermitPulseError
from ingest.metrics import IngestMetrics, IngestStats
from ingest.wire import Sample, SampleBatch, decode, encode_binary, encode_json
from ingest.writer import DeadLetter, TelemetryWriter, WriteResult

__all__ = [
    "BatchHook",
    "DeadLetter",
    "DecodeError",
    "Ingest",
    "IngestMetrics",
    "IngestSettings",
    "IngestStats",
    "MqttSettings",
    "PermitPulseError",
    "PlausibilityLimits",
    "Sample",
    "SampleBatch",
    "TelemetryWriter",
    "WriteResult",
    "decode",
    "encode_binary",
    "encode_json",
]
