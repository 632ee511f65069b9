"""Export without a broker: the CSV the replay reads, truth, workers.json and permits.json."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson

from api.cli import main
from firmware_sim import CSV_HEADER, export, load_scenario
from ingest.wire import FLAG_REPLAY


def test_export_outage_scenario_replays_every_sample_once(tmp_path: Path) -> None:
    """Samples held during an outage arrive later flagged as replayed; every device's
    timestamps appear once each, one per second; empty fields only where values are missing."""
    summary = export(
        load_scenario("outage.yaml"), telemetry=tmp_path / "t.csv", truth=tmp_path / "truth.json"
    )
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == CSV_HEADER
    assert summary.rows == len(rows) == 3 * 60
    for device in ("saf-1", "saf-2", "saf-3"):
        ts = [int(r["ts_ms"]) for r in rows if r["device_id"] == device]
        assert len(ts) == len(set(ts)) == 60
    replayed = [r for r in rows if int(r["flags"]) & FLAG_REPLAY]
    assert {r["device_id"] for r in replayed} == {"saf-1", "saf-2", "saf-3"}
    assert summary.replayed == len(replayed) == 15 + 2 * 10  # 15 s and 10 s down
    saf1 = [int(r["ts_ms"]) for r in rows if r["device_id"] == "saf-1"]
    assert saf1 == sorted(saf1)  # the held samples go out before the next live one
    at_return = rows.index(
        next(r for r in rows if r["device_id"] == "saf-1" and int(r["flags"]) & FLAG_REPLAY)
    )
    assert int(rows[at_return - 1]["ts_ms"]) > int(rows[at_return]["ts_ms"])  # they arrive late
    first = rows[0]
    assert first["hr"]
    assert first["lat"]
    assert first["battery"]
    truth = orjson.loads((tmp_path / "truth.json").read_bytes())
    outages = [r for r in truth["incidents"] if r["kind"] == "network_outage"]
    assert sorted(r["device_id"] for r in outages) == ["saf-1", "saf-2", "saf-3"]


def test_export_missing_values_are_empty_fields(tmp_path: Path) -> None:
    """A sensor dropout shows as empty HR/SpO2/skin fields, not zeros."""
    export(load_scenario("incidents.yaml"), telemetry=tmp_path / "t.csv", duration_s=1850)
    rows = [
        r for r in csv.DictReader((tmp_path / "t.csv").open()) if r["device_id"] == "ev-dropout-1"
    ]
    gap = rows[1800:1840]
    assert all(r["hr"] == "" and r["spo2"] == "" and r["skin_temp"] == "" for r in gap)
    assert all(r["motion"] != "" for r in gap)


def test_export_writes_workers_and_permits_next_to_the_csv(tmp_path: Path) -> None:
    """workers.json and permits.json have the replay's keys; polygons become circles."""
    export(load_scenario("demo.yaml"), telemetry=tmp_path / "out" / "t.csv", duration_s=10)
    workers = orjson.loads((tmp_path / "out" / "workers.json").read_bytes())
    permits = orjson.loads((tmp_path / "out" / "permits.json").read_bytes())
    assert set(workers[0]) == {"device_id", "worker_id", "age", "acclimatized", "resting_hr"}
    li = next(w for w in workers if w["worker_id"] == "w-li-qiang")
    assert li == {
        "device_id": "ww-dh-02",
        "worker_id": "w-li-qiang",
        "age": 47,
        "acclimatized": False,
        "resting_hr": 72.0,
    }
    assert len(workers) == 11 + 6  # the crew plus the background operators
    keys = {"permit_id", "type", "level", "devices", "watcher_device", "lat", "lon", "radius_m"}
    assert all(set(p) == keys for p in permits)
    gc = next(p for p in permits if p["type"] == "GC")
    assert gc["watcher_device"] == "ww-gc-w"
    assert 29 < gc["radius_m"] < 32  # the 60 m x 12 m rack's enclosing circle
    assert abs(gc["lat"] - 30.7402) < 0.0001


def test_cli_simulate_export_prints_summary(tmp_path: Path, capsys: object) -> None:
    """`permitpulse simulate --scenario X --export T --truth J` writes the files, one JSON line."""
    code = main(
        [
            "simulate",
            "--scenario",
            "outage.yaml",
            "--export",
            str(tmp_path / "t.csv"),
            "--truth",
            str(tmp_path / "j.json"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["rows"] == 180
    assert (tmp_path / "j.json").exists()


def test_cli_simulate_bad_scenario_exits_2_naming_the_field(tmp_path: Path, capsys: object) -> None:
    """A bad scenario file is refused with its field and reason, exit code 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrate_hz: 500\n")
    code = main(["simulate", "--scenario", str(bad), "--export", str(tmp_path / "t.csv")])
    assert code == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "rate_hz: Input should be less than or equal to 10" in err
