"""Export a scenario without a broker: the telemetry CSV the detectors' replay reads, the
ground truth, and ``workers.json`` / ``permits.json`` next to the CSV.

Samples are written in the order they would reach the server: a link under a scheduled outage
holds its samples and delivers them, flagged as replayed, when it comes back. Duplicates are
not written (the ingest stores a sample once) and samples still held at the end are not
delivered.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import orjson

from firmware_sim.scenario import Scenario
from firmware_sim.simulation import Simulation
from firmware_sim.store_forward import StoreAndForward
from ingest.wire import FLAG_REPLAY

CSV_HEADER = "device_id,ts_ms,hr,skin_temp,spo2,lat,lon,gps_acc,motion,battery,flags"
#: Column → printf format; NaN (missing) is written as an empty field.
CSV_FORMATS = (
    ("hr", "{:.0f}"),
    ("skin_temp", "{:.2f}"),
    ("spo2", "{:.0f}"),
    ("lat", "{:.7f}"),
    ("lon", "{:.7f}"),
    ("gps_acc", "{:.1f}"),
    ("motion", "{:.3f}"),
    ("battery", "{:.0f}"),
)


@dataclass(frozen=True, slots=True)
class ExportSummary:
    rows: int
    replayed: int
    devices: int
    incidents: int
    duration_s: float
    files: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "replayed": self.replayed,
            "devices": self.devices,
            "incidents": self.incidents,
            "duration_s": self.duration_s,
            "files": list(self.files),
        }


def delivered(sim: Simulation, ticks: int) -> Iterator[np.ndarray]:
    """Per step, the records that reach the server (store and forward across outages)."""
    outboxes = [
        StoreAndForward(int(sum(int(sim.buffer_samples[i]) for i in link.devices)))
        for link in sim.links
    ]
    link_of = np.zeros(len(sim.devices), dtype=np.intp)
    for k, link in enumerate(sim.links):
        link_of[list(link.devices)] = k
    for _ in range(ticks):
        tick = sim.step()
        rec = tick.samples.to_records()
        owner = link_of[rec["dev"]]
        out = []
        for k, link in enumerate(sim.links):
            outboxes[k].push(rec[owner == k], tick.index)
            if link.id not in tick.links_down:
                out.append(outboxes[k].take(tick.index))
        yield np.concatenate(out) if out else rec[:0]


def write_rows(f: TextIO, devices: tuple[str, ...], rec: np.ndarray) -> None:
    cols = [
        [fmt.format(v) if v == v else "" for v in rec[name].tolist()] for name, fmt in CSV_FORMATS
    ]
    ids, ts, flags = rec["dev"].tolist(), rec["ts_ms"].tolist(), rec["flags"].tolist()
    for k in range(len(rec)):
        f.write(
            f"{devices[ids[k]]},{ts[k]},{cols[0][k]},{cols[1][k]},{cols[2][k]},{cols[3][k]},"
            f"{cols[4][k]},{cols[5][k]},{cols[6][k]},{cols[7][k]},{flags[k]}\n"
        )


def export(
    scenario: Scenario,
    *,
    telemetry: Path,
    truth: Path | None = None,
    duration_s: float | None = None,
    seed: int | None = None,
    extra_devices: int | None = None,
) -> ExportSummary:
    """Simulate ``scenario`` for its duration (or ``duration_s``) and write the files.

    Raises:
        ValueError: when neither the scenario nor the call gives a duration.
    """
    duration = duration_s if duration_s is not None else scenario.duration
    if duration is None:
        raise ValueError("the scenario has no duration: give one to export")
    sim = Simulation(scenario, seed=seed, extra_devices=extra_devices)
    ticks = math.ceil(duration / sim.dt - 1e-9)
    rows = replayed = 0
    telemetry.parent.mkdir(parents=True, exist_ok=True)
    with telemetry.open("w", encoding="ascii", newline="") as f:
        f.write(CSV_HEADER + "\n")
        for rec in delivered(sim, ticks):
            write_rows(f, sim.devices, rec)
            rows += len(rec)
            replayed += int(np.count_nonzero(rec["flags"] & FLAG_REPLAY))
    workers = telemetry.with_name("workers.json")
    permits = telemetry.with_name("permits.json")
    workers.write_bytes(orjson.dumps(sim.workers_json(), option=orjson.OPT_INDENT_2))
    permits.write_bytes(orjson.dumps(sim.permits_json(), option=orjson.OPT_INDENT_2))
    files = [str(telemetry), str(workers), str(permits)]
    result = sim.truth()
    if truth is not None:
        truth.parent.mkdir(parents=True, exist_ok=True)
        truth.write_bytes(orjson.dumps(result))
        files.append(str(truth))
    return ExportSummary(
        rows=rows,
        replayed=replayed,
        devices=len(sim.devices),
        incidents=len(result["incidents"]),
        duration_s=duration,
        files=tuple(files),
    )
