"""Scenario files: the bundled ones load, bad ones are refused with the field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim import ScenarioError, bundled_names, load_scenario, parse_scenario
from firmware_sim.scenario import parse_duration
from tests.firmware_sim.factories import scenario_dict


def test_load_scenario_every_bundled_file_is_valid() -> None:
    """Every shipped scenario loads, and the demo is among them."""
    names = bundled_names()
    assert {"demo.yaml", "incidents.yaml", "quiet.yaml", "outage.yaml"} <= set(names)
    for name in names:
        assert load_scenario(name).name


def test_load_scenario_demo_tells_the_three_stories() -> None:
    """demo.yaml holds a hot-work crew, a confined-space entry and a work-at-height team with
    the heat strain, the O2 deficiency and the watcher walking away."""
    demo = load_scenario("demo.yaml")
    assert {p.type for p in demo.permits} == {"DH", "SX", "GC"}
    kinds = {i.kind for i in demo.incidents}
    assert {"heat_strain", "o2_deficient", "watcher_away"} <= kinds
    for area in demo.site.areas:
        centre = area.circle or area.polygon
        assert centre is not None


def test_parse_scenario_unknown_worker_names_field() -> None:
    """An incident on a worker that does not exist is refused at that incident's field."""
    data = scenario_dict(incidents=[{"kind": "fall", "worker": "nobody", "at": 10}])
    with pytest.raises(ScenarioError, match=r"incidents\.0\.worker") as err:
        parse_scenario(data)
    assert err.value.field == "incidents.0.worker"
    assert "unknown worker 'nobody'" in err.value.reason


def test_parse_scenario_wrong_type_names_field_and_reason() -> None:
    """A value of the wrong type is refused with pydantic's reason at its dotted path."""
    data = scenario_dict(rate_hz="fast")
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert err.value.field == "rate_hz"
    assert "number" in err.value.reason


def test_parse_scenario_unknown_key_is_refused() -> None:
    """A misspelt key is not silently ignored."""
    data = scenario_dict()
    data["workers"][0]["resting_hrr"] = 60
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert err.value.field == "workers.0.resting_hrr"


def test_parse_scenario_incident_parameter_out_of_range() -> None:
    """Incident parameters are checked per kind (the union is discriminated by kind)."""
    data = scenario_dict(incidents=[{"kind": "heat_strain", "worker": "w1", "at": 0, "peak_c": 45}])
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert err.value.field == "incidents.0.heat_strain.peak_c"


def test_parse_scenario_watcher_away_needs_a_watcher() -> None:
    """Only a permit's watcher can walk away as the watcher."""
    data = scenario_dict(incidents=[{"kind": "watcher_away", "worker": "w1", "at": 0}])
    with pytest.raises(ScenarioError, match="no permit's watcher"):
        parse_scenario(data)


def test_parse_scenario_area_with_two_shapes_is_refused() -> None:
    """An area is a circle or a polygon, not both."""
    data = scenario_dict()
    data["site"]["areas"][0]["polygon"] = [[30.7, 121.3], [30.7, 121.4], [30.8, 121.4]]
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert err.value.field == "site.areas.0"
    assert "exactly one of 'circle' or 'polygon'" in err.value.reason


def test_parse_scenario_outage_of_device_behind_gateway_is_refused() -> None:
    """A device behind a gateway has no uplink of its own: the outage must name the gateway."""
    data = scenario_dict(
        gateways=[{"id": "gw", "devices": ["u-w1", "u-w2"]}],
        network={"outages": [{"link": "u-w1", "at": 5, "duration": 5}]},
    )
    with pytest.raises(ScenarioError, match="behind a gateway"):
        parse_scenario(data)


def test_parse_scenario_event_after_the_end_is_refused() -> None:
    """Nothing can be scheduled at or after the scenario's end."""
    data = scenario_dict(duration=60, incidents=[{"kind": "sos", "worker": "w1", "at": "2m"}])
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert err.value.field == "incidents.0.at"


def test_parse_scenario_lists_every_problem() -> None:
    """All cross-reference problems are reported at once."""
    data = scenario_dict(
        incidents=[
            {"kind": "fall", "worker": "x1", "at": 1},
            {"kind": "o2_deficient", "area": "nowhere", "at": 1},
        ]
    )
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data)
    assert [f for f, _ in err.value.problems] == ["incidents.0.worker", "incidents.1.area"]


def test_parse_scenario_yaml_syntax_error_names_the_line() -> None:
    """Broken YAML is refused with its line."""
    with pytest.raises(ScenarioError) as err:
        parse_scenario("name: x\nworkers: [\n  - a: 1\n")
    assert err.value.field.startswith("(yaml line")


def test_load_scenario_missing_file_is_refused(tmp_path: Path) -> None:
    """A path that is neither a file nor a bundled name is refused, listing the bundled ones."""
    with pytest.raises(ScenarioError, match=r"demo\.yaml"):
        load_scenario(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("8m", 480.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("12:30", 750.0),
        ("1:02:03", 3723.0),
        ("45", 45.0),
        (12, 12),
    ],
)
def test_parse_duration_accepted_forms(text: str | int, seconds: float) -> None:
    """Durations are seconds, or strings with h/m/s units or [h:]mm:ss."""
    assert parse_duration(text) == seconds


def test_parse_duration_garbage_is_refused() -> None:
    """A string that is no duration raises with the value quoted."""
    with pytest.raises(ValueError, match="'soon'"):
        parse_duration("soon")
