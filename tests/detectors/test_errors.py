"""The detector errors carry their facts and map to HTTP replies."""

from __future__ import annotations

from api.errors import status_for
from detectors.errors import DetectorError, ReplayInputError, SnapshotError
from ingest.errors import PermitPulseError


def test_detector_errors_have_facts_and_http_codes() -> None:
    """ReplayInputError → 422, SnapshotError → 409; both are PermitPulseErrors."""
    bad_input = ReplayInputError("t.csv", 7, "empty device_id")
    bad_snapshot = SnapshotError("version 9")
    assert (bad_input.path, bad_input.line, bad_input.reason) == ("t.csv", 7, "empty device_id")
    assert str(bad_input) == "t.csv:7: empty device_id"
    assert bad_snapshot.reason == "version 9"
    assert isinstance(bad_snapshot, DetectorError)
    assert isinstance(bad_input, PermitPulseError)
    assert status_for(bad_input) == (422, "replay_input_error")
    assert status_for(bad_snapshot) == (409, "snapshot_error")
