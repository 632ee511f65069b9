"""Instruction count of the detector pass, repeatable on a shared machine (no timing).

Run under callgrind with collection off at start; the script switches it on around
`DetectorPipeline.process` of ``--batches`` bench batches (one thread) and off again::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.out \\
        python benchmarks/count_detectors.py --devices 2000 --batches 2

and prints nothing itself: valgrind's ``Collected`` line is the count (``callgrind_annotate
/tmp/cg.out`` splits it by function; Numba's code shows as one ``???`` block).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_detectors import LAT, LON, T0, minute_batch  # noqa: E402
from detectors.config import DetectorSettings  # noqa: E402
from detectors.models import Geofence  # noqa: E402
from detectors.pipeline import DetectorPipeline  # noqa: E402


def collect(on: bool) -> None:
    """Switch callgrind's collection for this process (no-op outside valgrind)."""
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
        capture_output=True,
        check=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    devices = tuple(f"d{i:05d}" for i in range(args.devices))
    p = DetectorPipeline(DetectorSettings(threads=1))
    p.set_permits([Geofence("P", LAT, LON, 500.0, devices[1:], devices[0])])
    p.process(minute_batch(devices, 0, 60, rng), T0 + 60_000)  # slots, state, compile
    batches = [minute_batch(devices, m, 60, rng) for m in range(1, args.batches + 1)]
    collect(True)
    for m, b in enumerate(batches, start=1):
        p.process(b, T0 + (m + 1) * 60_000)
    collect(False)


if __name__ == "__main__":
    main()
