"""Same scenario and seed, same bytes; frames built by the simulator decode with the wire
format they claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_sim import Fleet, FleetSpec, Simulation, export, load_scenario
from firmware_sim.framing import Framer, device_frame_binary
from firmware_sim.loadgen import LoadSpec, build_frames, part_devices
from ingest.wire import RECORD_DTYPE, SampleBatch, decode, encode_binary
from tests.firmware_sim.factories import run, scenario


def _bytes(sim: Simulation, ticks: int) -> bytes:
    return b"".join(b.to_records().tobytes() for b in run(sim, ticks))


def test_simulation_same_seed_same_bytes() -> None:
    """Two runs of one scenario produce byte-identical samples; another seed does not."""
    scn = scenario(
        incidents=[
            {"kind": "heat_strain", "worker": "w1", "at": 10},
            {"kind": "gps_wander", "worker": "w2", "at": 20, "duration": 30},
        ],
        background={"devices": 5},
    )
    assert _bytes(Simulation(scn), 200) == _bytes(Simulation(scn), 200)
    assert _bytes(Simulation(scn), 200) != _bytes(Simulation(scn, seed=99), 200)


def test_export_same_seed_same_files(tmp_path: Path) -> None:
    """Exporting the incident scenario twice writes identical telemetry and truth files."""
    scn = load_scenario("incidents.yaml")
    for run_dir in ("a", "b"):
        export(
            scn,
            telemetry=tmp_path / run_dir / "t.csv",
            truth=tmp_path / run_dir / "truth.json",
            duration_s=900,
        )
    for name in ("t.csv", "truth.json", "workers.json", "permits.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_fleet_tick_keeps_its_interface() -> None:
    """Fleet.tick(ts_ms, dt_s) returns one sample per device stamped ts_ms, seeded."""
    fleet = Fleet(FleetSpec(devices=25, seed=4))
    batch = fleet.tick(1_700_000_000_000, 1.0)
    assert len(batch) == 25
    assert batch.devices[0] == "dev-0001"
    assert set(batch.ts_ms.tolist()) == {1_700_000_000_000}
    again = Fleet(FleetSpec(devices=25, seed=4)).tick(1_700_000_000_000, 1.0)
    assert batch.to_records().tobytes() == again.to_records().tobytes()


def test_device_frame_binary_equals_wire_encoder() -> None:
    """The fast device-frame encoder writes exactly what ingest.wire.encode_binary writes."""
    batch = Fleet(FleetSpec(devices=3)).tick(5, 1.0)
    rec = batch.to_records()[1:2]
    single = rec.copy()
    single["dev"] = 0
    expected = encode_binary(SampleBatch.from_records((batch.devices[1],), single))
    assert device_frame_binary(batch.devices[1], rec) == expected


@pytest.mark.parametrize("encoding", ["binary", "json"])
def test_framer_gateway_frames_decode_to_the_same_samples(encoding: str) -> None:
    """Gateway frames carry every sample of every device behind the gateway, decodable."""
    scn = scenario(
        gateways=[{"id": "gw1", "devices": ["u-w1", "u-w2", "u-w3"], "max_frame_samples": 2}]
    )
    sim = Simulation(scn)
    tick = sim.step()
    link = next(link for link in sim.links if link.id == "gw1")
    rec = tick.samples.to_records()
    mine = rec[np.isin(rec["dev"], link.devices)]
    framer = Framer(
        link, sim.devices, topic_root="r", site="s", encoding=encoding, replay_frame_samples=5
    )
    frames = framer.frames(mine)
    assert [f.topic for f in frames] == ["r/s/gateway/gw1/telemetry"] * 2
    decoded = [s for f in frames for s in decode(f.payload).samples()]
    assert [(s.device_id, s.seq) for s in decoded] == [("u-w1", 1), ("u-w2", 1), ("u-w3", 1)]


@pytest.mark.parametrize(
    ("encoding", "gateway"), [("binary", 1), ("binary", 4), ("json", 1), ("json", 4)]
)
def test_load_frames_patch_seq_ts_and_packet_ids(encoding: str, gateway: int) -> None:
    """Pre-encoded load frames, once stamped, decode with the tick's sequence number and
    timestamp and carry consecutive packet ids."""
    spec = LoadSpec(
        mqtt_url="mqtt://x",
        topic_root="r",
        devices=8,
        encoding=encoding,
        gateway_size=gateway,
        cycle_ticks=3,
    )  # type: ignore[arg-type]
    fs = build_frames(spec, part_devices(spec, 0))
    ts = fs.tick(2, seq=7, ts_ms=1_700_000_000_123, first_pid=65_534)
    from firmware_sim._packets import PacketReader, parse_publish

    packets = PacketReader().feed(ts.data.tobytes())
    assert len(packets) == fs.packets == 8 // gateway
    pids, samples = [], []
    for p in packets:
        topic, payload, _qos, pid = parse_publish(p)
        pids.append(pid)
        batch = decode(payload, topic_device=None if gateway > 1 else topic.split("/")[-2])
        samples += batch.samples()
    assert pids == [(65_533 + k) % 65_535 + 1 for k in range(len(packets))]
    assert len(samples) == 8
    assert {s.seq for s in samples} == {7}
    assert {s.ts_ms for s in samples} == {1_700_000_000_123}
    assert all(s.hr is not None and 40 < s.hr < 200 for s in samples)
    assert RECORD_DTYPE.itemsize == 56


def test_framer_shared_link_fast_path_matches_wire_encoder() -> None:
    """The background fleet's per-device frames are exactly ``encode_binary`` of each sample,
    on each device's own topic."""
    sim = Simulation(scenario(background={"devices": 12}))
    tick = sim.step()
    link = next(link for link in sim.links if link.kind == "shared")
    rec = tick.samples.to_records()
    mine = rec[np.isin(rec["dev"], link.devices)]
    framer = Framer(
        link, sim.devices, topic_root="r", site="s", encoding="binary", replay_frame_samples=5
    )
    frames = framer.frames(mine)
    assert len(frames) == 12
    for f in frames:
        device = sim.devices[int(f.rec["dev"][0])]
        assert f.topic == f"r/s/{device}/telemetry"
        single = f.rec.copy()
        single["dev"] = 0
        assert f.payload == encode_binary(SampleBatch.from_records((device,), single))
