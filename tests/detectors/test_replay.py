"""`permitpulse replay`: format, determinism, batch-size independence, input errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from api.cli import main
from detectors.config import DetectorSettings
from detectors.errors import ReplayInputError
from detectors.replay import CSV_HEADER, read_telemetry, read_workers, replay
from tests.detectors.strategies import seeded

T0 = 1_717_200_000_000


def write_scenario(folder: Path) -> tuple[Path, Path, Path]:
    """Two workers (one with a desaturation and an SOS) and a watcher on a permit."""
    rows = [",".join(CSV_HEADER)]
    for i in range(400):
        t = T0 + i * 1000
        spo2 = 84 if 100 <= i < 160 else 97
        flags = 1 if i == 200 else 0
        lat = 30.7395 + (0.002 if 250 <= i < 330 else 0.0)
        rows.append(f"w1,{t},{80 + i % 5},33.1,{spo2},{lat},121.3442,5,0.2,90,{flags}")
        rows.append(f"w2,{t},{70 + i % 3},,98,30.7395,121.3442,4,0.3,,0")
        if i < 150:  # the watcher goes silent after 150 s
            rows.append(f"wt,{t},75,,,30.7395,121.3442,3,0.2,80,0")
    tel = folder / "t.csv"
    tel.write_text("\n".join(rows) + "\n")
    workers = folder / "w.json"
    alice = {"device_id": "w1", "worker_id": "alice", "age": 30, "acclimatized": False}
    bob = {"device_id": "w2", "worker_id": "bob", "age": 50, "acclimatized": True}
    workers.write_bytes(orjson.dumps([{**alice, "resting_hr": 60}, {**bob, "resting_hr": None}]))
    permits = folder / "p.json"
    permits.write_bytes(orjson.dumps([
        {"permit_id": "P-7", "type": "confined_space", "level": "special", "devices": ["w1", "w2"],
         "watcher_device": "wt", "lat": 30.7395, "lon": 121.3442, "radius_m": 100},
    ]))  # fmt: skip
    return tel, workers, permits


def test_replay_cli_writes_documented_alarm_records(tmp_path: Path) -> None:
    """The command writes one alarm object per line with the documented keys and values."""
    tel, workers, permits = write_scenario(tmp_path)
    out = tmp_path / "events.jsonl"
    argv = [
        "replay",
        "--telemetry",
        str(tel),
        "--workers",
        str(workers),
        "--permits",
        str(permits),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    lines = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert lines, "no events"
    for r in lines:
        assert list(r) == [
            "type",
            "ts_ms",
            "device_id",
            "worker_id",
            "kind",
            "severity",
            "state",
            "value",
        ]
        assert r["type"] == "alarm"
        assert r["state"] in ("raised", "escalated", "cleared")
    got = {(r["device_id"], r["worker_id"], r["kind"], r["state"]) for r in lines}
    assert ("w1", "alice", "spo2_low", "raised") in got
    assert ("w1", "alice", "sos", "raised") in got
    assert ("w1", "alice", "geofence_exit", "raised") in got
    assert ("wt", None, "device_offline", "raised") in got
    sos = next(r for r in lines if r["kind"] == "sos")
    assert sos["ts_ms"] == T0 + 200_000
    assert sos["severity"] == "critical"


def test_replay_same_input_byte_identical_output(tmp_path: Path) -> None:
    """Two runs in separate processes produce byte-identical files."""
    tel, workers, permits = write_scenario(tmp_path)
    outs = []
    for k in range(2):
        out = tmp_path / f"e{k}.jsonl"
        cmd = [
            sys.executable,
            "-c",
            "import sys; from api.cli import main; sys.exit(main())",
            "replay",
            "--telemetry",
            str(tel),
            "--workers",
            str(workers),
            "--permits",
            str(permits),
            "--out",
            str(out),
        ]
        subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).parents[2])
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0]


@pytest.mark.parametrize("batch_ms", [250, 5000, 60_000])
def test_replay_batch_size_changes_no_event(tmp_path: Path, batch_ms: int) -> None:
    """The same alarms come out whatever the batch size (the clock is the data's own)."""
    tel, workers, _ = write_scenario(tmp_path)
    t = read_telemetry(tel)
    w = read_workers(workers)
    ref = sorted(
        orjson.dumps(r) for r in replay(t, workers=w, permits=[], settings=DetectorSettings())
    )
    got = sorted(
        orjson.dumps(r)
        for r in replay(t, workers=w, permits=[], settings=DetectorSettings(), batch_ms=batch_ms)
    )
    assert got == ref


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("device_id,ts_ms\n", "header"),
        (",".join(CSV_HEADER) + "\nd1,notanumber,,,,,,,,,0\n", ":2:"),
        (",".join(CSV_HEADER) + "\nd1,1,,,,,,,,,8\n", "flag"),
        (",".join(CSV_HEADER) + "\nd1,1,70\n", "cells"),
    ],
)
def test_replay_bad_csv_names_the_line(tmp_path: Path, content: str, match: str) -> None:
    """A malformed CSV is refused with its line number and reason."""
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(ReplayInputError, match=match):
        read_telemetry(p)


def test_replay_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command reports bad input on stderr and exits 2 without writing output."""
    p = tmp_path / "bad.csv"
    p.write_text("nope\n")
    w = tmp_path / "w.json"
    w.write_text("[]")
    out = tmp_path / "o.jsonl"
    assert main(["replay", "--telemetry", str(p), "--workers", str(w), "--out", str(out)]) == 2
    assert "header" in capsys.readouterr().err
    assert not out.exists()


def test_replay_unsorted_csv_is_replayed_in_time_order(tmp_path: Path) -> None:
    """Rows out of time order in the file are replayed by timestamp."""
    x = seeded(3)
    rows = [",".join(CSV_HEADER)]
    for i in reversed(range(len(x.ts))):
        rows.append(f"d,{x.ts[i]},{x.hr[i] if x.hr[i] == x.hr[i] else ''},,,,,,,,0")
    p = tmp_path / "rev.csv"
    p.write_text("\n".join(rows))
    t = read_telemetry(p)
    assert (t.rec["ts_ms"][1:] >= t.rec["ts_ms"][:-1]).all()
