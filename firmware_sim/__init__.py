"""Simulated wearables and gateways: physiology, incidents, outages, commands, load.

Contract:
- A scenario file (``load_scenario``; format in ``docs/simulator.md``) describes a site, its
  work areas, permits, workers and their wearables, a workload schedule, incidents and
  network faults. ``Simulation`` turns it into samples deterministically: the same scenario
  and seed give the same bytes.
- ``play`` puts a scenario on an MQTT broker in real time (wire format ``ingest.wire``, topics
  ``ingest.topics``): per-device sequence numbers, retained birth and last will on
  ``status``, store and forward with ``FLAG_REPLAY`` across outages, commands on ``cmd``
  acknowledged on ``ack`` (``Command`` / ``Ack``).
- ``export`` writes a scenario's telemetry CSV, ground truth, ``workers.json`` and
  ``permits.json`` without a broker; ``run_load`` publishes pre-encoded load from several
  processes; ``Fleet`` is a plain seeded fleet with the same physiology.
"""

from firmware_sim.commands import Ack, AckStatus, Action, Command
from firmware_sim.errors import LinkLostError, ScenarioError, SimulatorError
from firmware_sim.export import CSV_HEADER, ExportSummary, export
from firmware_sim.fleet import Fleet, FleetSpec
from firmware_sim.incidents import IncidentKind, TruthRecord
from firmware_sim.loadgen import LoadSpec, run_load
from firmware_sim.mqtt_link import MqttLink
from firmware_sim.player import Player, PlayStats, demo_scenario, play
from firmware_sim.scenario import Scenario, bundled_names, load_scenario, parse_scenario
from firmware_sim.simulation import Simulation, Tick
from firmware_sim.store_forward import StoreAndForward

__all__ = [
    "CSV_HEADER",
    "Ack",
    "AckStatus",
    "Action",
    "Command",
    "ExportSummary",
    "Fleet",
    "FleetSpec",
    "IncidentKind",
    "LinkLostError",
    "LoadSpec",
    "MqttLink",
    "PlayStats",
    "Player",
    "Scenario",
    "ScenarioError",
    "Simulation",
    "SimulatorError",
    "StoreAndForward",
    "Tick",
    "TruthRecord",
    "bundled_names",
    "demo_scenario",
    "export",
    "load_scenario",
    "parse_scenario",
    "play",
    "run_load",
]
