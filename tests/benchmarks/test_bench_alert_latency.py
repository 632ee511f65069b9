"""Smoke test of the alert-latency benchmark's code on a tiny load (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench_alert_latency import one_run


async def test_bench_alert_latency_tiny_load_delivers_every_incident(
    mqtt_url: str, database_url: str, tmp_path: Path
) -> None:
    """50 devices, one SpO2 collapse and one SOS press: both delivered, the report complete."""
    result = await one_run(
        mqtt_url=mqtt_url,
        database_url=database_url,
        data_dir=tmp_path,
        devices=50,
        spo2=1,
        sos=1,
        crew=2,
        supervisors=2,
        warmup_s=3.0,
        gap_s=1.0,
        tail_s=20.0,
    )
    for key in ("p50_ms", "p99_ms", "mqtt_rtt_p99_ms", "injected", "delivered", "paths"):
        assert key in result
    assert result["injected"] == 2
    assert result["delivered"] == 2
    assert result["paths"]["command"]["n"] == 6  # 2 permits × (2 crew + watcher)
    assert result["paths"]["push"]["n"] == 4  # 2 incidents × 2 supervisors
    assert result["mqtt_rtt_samples"] > 0
