"""Docs that code keeps true."""

from __future__ import annotations

import re
from pathlib import Path

from api.settings_doc import render
from ingest.wire import Sample, decode

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_matches_settings() -> None:
    """README's table is what `python -m api.settings_doc` renders (regenerate it if not)."""
    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme


def test_wire_format_doc_example_decodes_to_its_sample() -> None:
    """The hex example of docs/wire-format.md is a valid frame with the values it states."""
    doc = (ROOT / "docs" / "wire-format.md").read_text()
    block = doc.split("### Example", 1)[1].split("```")[1]
    hexes = "".join(re.findall(r"((?:[0-9a-f]{2} )+[0-9a-f]{2})", block))
    frame = bytes.fromhex(hexes.replace(" ", ""))
    assert decode(frame, topic_device="d1").samples() == [
        Sample("d1", 1, 1_700_000_000_000, hr=72.0, spo2=98.0)
    ]
