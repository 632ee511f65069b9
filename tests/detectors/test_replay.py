"""`permitpulse replay`: alarms and actions, determinism, batch-size independence, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from api.cli import main
from detectors.config import DetectorSettings
from detectors.errors import ReplayInputError
from detectors.replay import CSV_HEADER, read_permits, read_telemetry, read_workers, replay
from permits.enforcement.replay import permit_type
from tests.detectors.strategies import seeded

T0 = 1_717_200_000_000


def write_scenario(folder: Path, permit_type: str = "confined_space") -> tuple[Path, Path, Path]:
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
        {"permit_id": "P-7", "type": permit_type, "level": "special", "devices": ["w1", "w2"],
         "watcher_device": "wt", "lat": 30.7395, "lon": 121.3442, "radius_m": 100},
    ]))  # fmt: skip
    return tel, workers, permits


def run_cli(tel: Path, workers: Path, permits: Path | None, out: Path, *extra: str) -> int:
    argv = ["replay", "--telemetry", str(tel), "--workers", str(workers), "--out", str(out)]
    return main([*argv, *(["--permits", str(permits)] if permits else []), *extra])


def read_lines(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in out.read_bytes().splitlines()]


ALARM_KEYS = ["type", "ts_ms", "device_id", "worker_id", "kind", "severity", "state", "value"]
ACTION_KEYS = ["type", "ts_ms", "action", "permit_id", "device_ids", "reason"]


def test_replay_cli_writes_documented_alarm_and_action_records(tmp_path: Path) -> None:
    """The command writes one alarm or action object per line with the documented keys, in
    time order, each alarm followed by the actions it caused."""
    tel, workers, permits = write_scenario(tmp_path, permit_type="DH")
    out = tmp_path / "events.jsonl"
    assert run_cli(tel, workers, permits, out) == 0
    lines = read_lines(out)
    alarms = [r for r in lines if r["type"] == "alarm"]
    assert alarms, "no events"
    for r in alarms:
        assert list(r) == ALARM_KEYS
        assert r["state"] in ("raised", "escalated", "cleared")
    for r in lines:
        assert list(r) == (ALARM_KEYS if r["type"] == "alarm" else ACTION_KEYS)
    assert [r["ts_ms"] for r in lines] == sorted(r["ts_ms"] for r in lines)
    got = {(r["device_id"], r["worker_id"], r["kind"], r["state"]) for r in alarms}
    assert ("w1", "alice", "spo2_low", "raised") in got
    assert ("w1", "alice", "sos", "raised") in got
    assert ("w1", "alice", "geofence_exit", "raised") in got
    assert ("wt", None, "device_offline", "raised") in got
    sos = next(r for r in alarms if r["kind"] == "sos")
    assert sos["ts_ms"] == T0 + 200_000
    assert sos["severity"] == "critical"
    after_sos = lines[lines.index(sos) + 1]
    assert after_sos == {
        "type": "action",
        "ts_ms": sos["ts_ms"],
        "action": "notify",
        "permit_id": "P-7",
        "device_ids": [],
        "reason": "Man down: rescue [man-down-rescue]",
    }


def test_replay_confined_space_spo2_collapse_evacuates_and_suspends(tmp_path: Path) -> None:
    """SpO2 collapse on a confined-space permit: evacuate every device of the permit and
    suspend it; later alarms meet a suspended permit (the SOS pushes, nothing evacuates again)
    and, as live, the detectors stop watching its work area."""
    tel, workers, permits = write_scenario(tmp_path)
    out = tmp_path / "events.jsonl"
    assert run_cli(tel, workers, permits, out) == 0
    lines = read_lines(out)
    actions = [r for r in lines if r["type"] == "action"]
    spo2 = next(r for r in lines if r["kind" if r["type"] == "alarm" else "type"] == "spo2_low")
    assert [(a["action"], a["permit_id"], a["device_ids"]) for a in actions] == [
        ("evacuate", "P-7", ["w1", "w2", "wt"]),
        ("suspend", "P-7", []),
        ("notify", "P-7", []),
        ("notify", "P-7", []),  # the SOS, on the suspended permit: rescue push only
    ]
    assert actions[0]["ts_ms"] == spo2["ts_ms"]
    assert lines[lines.index(spo2) + 1] == actions[0]
    assert "GB 30871 4.8" in actions[1]["reason"]
    kinds = {r["kind"] for r in lines if r["type"] == "alarm"}
    assert "geofence_exit" not in kinds  # the work area of a suspended permit is not watched


def write_heat_and_watcher(folder: Path) -> tuple[Path, Path, Path]:
    """A hot-work permit: its worker over 180 − age for minutes, then its watcher walks off."""
    rows = [",".join(CSV_HEADER)]
    for i in range(900):
        t = T0 + i * 1000
        hr = 175 + i % 3 if 60 <= i < 600 else 80 + i % 3
        rows.append(f"h1,{t},{hr},34.0,97,30.7395,121.3442,5,0.5,90,0")
        lat = 30.7395 + (0.003 if 300 <= i < 420 else 0.0)
        rows.append(f"ht,{t},{75 + i % 2},,,{lat},121.3442,3,0.2,80,0")
    tel = folder / "heat.csv"
    tel.write_text("\n".join(rows) + "\n")
    workers = folder / "w.json"
    hank = {"device_id": "h1", "worker_id": "hank", "age": 30, "acclimatized": False}
    workers.write_bytes(orjson.dumps([{**hank, "resting_hr": 60}]))
    permits = folder / "p.json"
    permits.write_bytes(orjson.dumps([
        {"permit_id": "P-H", "type": "DH", "level": "1", "devices": ["h1"],
         "watcher_device": "ht", "lat": 30.7395, "lon": 121.3442, "radius_m": 50},
    ]))  # fmt: skip
    return tel, workers, permits


def test_replay_heat_strain_downgrades_and_watcher_away_suspends(tmp_path: Path) -> None:
    """Sustained HR over the limit: downgrade (rest) of that worker's device; the watcher
    leaving the work area: suspension and stop-work to every device of the permit."""
    tel, workers, permits = write_heat_and_watcher(tmp_path)
    out = tmp_path / "events.jsonl"
    assert run_cli(tel, workers, permits, out) == 0
    lines = read_lines(out)
    acts = [(r["action"], r["permit_id"], r["device_ids"]) for r in lines if r["type"] == "action"]
    assert acts == [
        ("downgrade", "P-H", ["h1"]),
        ("notify", "P-H", []),
        ("suspend", "P-H", []),
        ("command", "P-H", ["ht", "h1"]),
        ("notify", "P-H", []),
    ]
    heat = next(r for r in lines if r["type"] == "alarm" and r["kind"] == "hr_sustained_high")
    assert heat["severity"] == "critical"
    away = next(r for r in lines if r["type"] == "alarm" and r["kind"] == "watcher_away")
    suspend = next(r for r in lines if r.get("action") == "suspend")
    assert suspend["ts_ms"] == away["ts_ms"]
    assert suspend["reason"] == "watcher left the work area (GB 30871 4.10 f)"


def test_replay_without_permits_acts_only_on_permitless_rules(tmp_path: Path) -> None:
    """No permits file: critical SpO2 downgrades the worker, SOS pushes the rescue, with no
    permit; nothing is evacuated or suspended."""
    tel, workers, _ = write_scenario(tmp_path)
    out = tmp_path / "events.jsonl"
    assert run_cli(tel, workers, None, out) == 0
    actions = [r for r in read_lines(out) if r["type"] == "action"]
    assert [(a["action"], a["permit_id"], a["device_ids"]) for a in actions] == [
        ("downgrade", None, ["w1"]),
        ("notify", None, []),
        ("notify", None, []),
    ]


def test_replay_rules_option_replaces_the_default_rules(tmp_path: Path) -> None:
    """``--rules`` loads another rules file through the live loader."""
    tel, workers, permits = write_scenario(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - id: only-sos\n    description: test\n    trigger: alarm\n"
        "    when: {kind: [sos], state: [raised]}\n    then: [{command: {command: message}}]\n"
    )
    out = tmp_path / "events.jsonl"
    assert run_cli(tel, workers, permits, out, "--rules", str(rules)) == 0
    actions = [r for r in read_lines(out) if r["type"] == "action"]
    assert [(a["action"], a["device_ids"]) for a in actions] == [("command", ["w1", "w2", "wt"])]


def test_replay_invalid_rules_file_exits_2_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rules file the live loader refuses stops the replay with its line and reason."""
    tel, workers, permits = write_scenario(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nrules:\n  - id: x\n    description: d\n    trigger: never\n")
    out = tmp_path / "events.jsonl"
    assert run_cli(tel, workers, permits, out, "--rules", str(rules)) == 2
    err = capsys.readouterr().err
    assert f"{rules}:5: rules.0.trigger" in err
    assert "Traceback" not in err
    assert not out.exists()


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
    assert b'"type":"alarm"' in outs[0]
    assert b'"type":"action","ts_ms":' in outs[0]


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


PERMIT = (
    '[\n  {"permit_id": "P-1", "type": "SX", "level": "", "devices": ["a"],\n'
    '   "watcher_device": "w", "lat": 30.0, "lon": 121.0, "radius_m": 40},\n'
    '  {"permit_id": "P-2", "type": "SX", "level": 1, "devices": ["b"],\n'
    '   "watcher_device": null, "lat": 30.0, "lon": 121.0, "radius_m": 40}\n]\n'
)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ('"lat": 30.0, "lon": 121.0, "radius_m": 40}\n]',
         '"lat": "x", "lon": 121.0, "radius_m": 40}\n]',
         r":4: permits\[1\]\.lat: expected a number, got 'x'"),
        ('"radius_m": 40},', '"radius_m": 0},', r":2: permits\[0\]\.radius_m: 0 out of range"),
        ('"lat": 30.0, "lon": 121.0, "radius_m": 40},', '"lon": 121.0, "radius_m": 40},',
         r":2: permits\[0\]\.lat: missing"),
        ('"type": "SX", "level": 1', '"type": "confined", "level": 1',
         r":4: permits\[1\]\.type: unknown permit type 'confined'"),
        ('"devices": ["b"]', '"devices": "b"', r":4: permits\[1\]\.devices: expected a list"),
        ('"watcher_device": "w"', '"watcher": "w"', r":2: permits\[0\]\.watcher: unknown field"),
        ('"permit_id": "P-2"', '"permit_id": "P-1"', r":4: permits\[1\]\.permit_id: .* twice"),
        ('"level": 1,', '"level": 1,,', r":4: invalid JSON"),
        ('  {"permit_id": "P-1"', '  7,\n  {"permit_id": "P-1"',
         r":2: entry 0: expected an object"),
    ],
)  # fmt: skip
def test_replay_bad_permits_file_names_line_and_field(
    tmp_path: Path, old: str, new: str, match: str
) -> None:
    """A malformed permits file is refused with the entry's line and the field."""
    assert old in PERMIT
    p = tmp_path / "p.json"
    p.write_text(PERMIT.replace(old, new, 1))
    with pytest.raises(ReplayInputError, match=match):
        read_permits(p, permit_type=permit_type)


def test_replay_permits_file_is_read_with_codes_and_levels(tmp_path: Path) -> None:
    """A valid permits file: types as codes, levels as text, a missing watcher as None."""
    p = tmp_path / "p.json"
    p.write_text(PERMIT.replace('"SX", "level": 1', '"confined_space", "level": 1'))
    fences = read_permits(p, permit_type=permit_type)
    assert [(f.permit_id, f.type, f.level, f.watcher_device) for f in fences] == [
        ("P-1", "SX", "", "w"),
        ("P-2", "SX", "1", None),
    ]


def test_replay_cli_bad_permits_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command reports a bad permits file with its line and field and exits 2."""
    tel, workers, _ = write_scenario(tmp_path)
    p = tmp_path / "bad.json"
    p.write_text(PERMIT.replace('"radius_m": 40},', '"radius_m": -5},'))
    out = tmp_path / "o.jsonl"
    assert run_cli(tel, workers, p, out) == 2
    err = capsys.readouterr().err
    assert f"replay: {p}:2: permits[0].radius_m: -5 out of range" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_replay_bad_workers_file_names_line_and_field(tmp_path: Path) -> None:
    """A malformed workers entry is refused with its line and field."""
    w = tmp_path / "w.json"
    w.write_text(
        '[\n {"device_id": "a", "worker_id": "x", "age": 30},\n {"device_id": "b", "age": 30}\n]'
    )
    with pytest.raises(ReplayInputError, match=r":3: workers\[1\]\.worker_id: missing"):
        read_workers(w)
