"""What the soak verifies in the database: every sample stored exactly once, and every
injected incident acted on by the rule engine (read from ``decisions`` and
``device_commands``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg

from benchmarks._soak_scenario import AWAY_AT, O2_AT, SOS_AT, Wave


@dataclass(frozen=True, slots=True)
class Expected:
    """What must follow an incident: the rule (on which alarm kinds), the device command it
    sends to everyone on the permit (if any), and the permit state it leaves behind."""

    rule: str
    alarms: tuple[str, ...]
    command: str | None = None
    permit_state: str | None = None


EXPECTED: dict[str, Expected] = {
    "o2_deficient": Expected(
        "confined-space-critical-evacuate", ("spo2_low",), "evacuate", "suspended"
    ),
    "sos": Expected("man-down-rescue", ("sos",)),
    "watcher_away": Expected("watcher-away-suspend", ("watcher_away",), "stop_work", "suspended"),
}


# --------------------------------------------------------------------------- samples


def sample_counts(conn: psycopg.Connection[Any], expected: dict[str, int]) -> dict[str, Any]:
    """Stored telemetry against the per-device number of samples the simulator sent.

    A device's samples carry sequence numbers 1..n (the simulator counts from 1), so a
    device is complete when it has n rows, n distinct sequence numbers, from 1 to n.
    """
    rows = conn.execute(
        "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq)"
        " FROM telemetry GROUP BY device_id"
    ).fetchall()
    stored = {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}
    missing = duplicates = unexpected = 0
    gaps: list[str] = []
    for device, n in expected.items():
        count, distinct, lo, hi = stored.get(device, (0, 0, 1, 0))
        duplicates += count - distinct
        missing += max(0, n - distinct)
        if distinct and (lo != 1 or hi != distinct or distinct != n):
            gaps.append(device)
    unexpected = sum(c for d, (c, *_) in stored.items() if d not in expected)
    dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    total = sum(c for c, *_ in stored.values())
    return {
        "stored": total,
        "stored_distinct": sum(d for _, d, *_ in stored.values()),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected_rows": unexpected,
        "devices_incomplete": len(gaps),
        "devices_incomplete_examples": sorted(gaps)[:5],
        "dead_letters": int(dead[0]) if dead else -1,
    }


def stored_total(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------- incidents


@dataclass(frozen=True, slots=True)
class Injected:
    """One incident the simulator injected, and whom its action must reach."""

    wave: int
    kind: str
    device: str  # the device whose alarm triggers the rule
    devices: tuple[str, ...]  # whom the rule's command must reach (everyone on the permit)
    permit: str  # the permit's number in the scenario (SX-03)
    onset_ms: int


def injected(waves: list[Wave], start_ms: int) -> list[Injected]:
    out = []
    for w in waves:
        at = start_ms + round(w.at_s * 1000)
        sx = tuple(w.device(r) for r in ("e1", "e2", "sxw"))
        dh = tuple(w.device(r) for r in ("sos", "weld", "dhw"))
        out += [
            Injected(w.index, "o2_deficient", w.device("e1"), sx, w.sx, at + O2_AT * 1000),
            Injected(w.index, "sos", w.device("sos"), (), w.dh, at + SOS_AT * 1000),
            Injected(w.index, "watcher_away", w.device("dhw"), dh, w.dh, at + AWAY_AT * 1000),
        ]
    return out


@dataclass(frozen=True, slots=True)
class _Decision:
    decision_id: int
    ts_ms: int
    created_ms: int
    rule_id: str
    permit: str | None  # scenario number (title's first word)
    devices: tuple[str, ...]
    alarm_kind: str | None
    alarm_device: str | None


def _ms(t: dt.datetime) -> int:
    return round(t.timestamp() * 1000)


def _decisions(conn: psycopg.Connection[Any]) -> list[_Decision]:
    rows = conn.execute(
        "SELECT d.decision_id, d.ts, d.created_at, d.rule_id, split_part(p.title, ' ', 1),"
        " d.device_ids, d.facts->'alarm'->>'kind', d.facts->'alarm'->>'device_id'"
        " FROM decisions d LEFT JOIN permits p USING (permit_id) ORDER BY d.decision_id"
    ).fetchall()
    return [
        _Decision(int(r[0]), _ms(r[1]), _ms(r[2]), r[3], r[4], tuple(r[5]), r[6], r[7])
        for r in rows
    ]


def _matches(d: _Decision, inc: Injected) -> bool:
    want = EXPECTED[inc.kind]
    if d.rule_id != want.rule or d.alarm_kind not in want.alarms or d.ts_ms < inc.onset_ms - 1000:
        return False
    if inc.kind == "o2_deficient":  # whichever entrant desaturates first
        return d.permit == inc.permit
    return d.alarm_device == inc.device


def incident_actions(
    conn: psycopg.Connection[Any],
    incidents: list[Injected],
    kills_ms: list[int],
    start_ms: int = 0,
) -> dict[str, Any]:
    """Every injected incident against the decisions taken and the commands sent.

    Decisions no incident explains are counted per rule and alarm kind, with the play times
    (seconds after ``start_ms``, whole seconds, each once) at which they were taken."""
    decisions = _decisions(conn)
    commands: dict[tuple[int, str], dict[str, str]] = {}
    for decision_id, action, device, state in conn.execute(
        "SELECT decision_id, action, device_id, state FROM device_commands"
        " WHERE decision_id IS NOT NULL"
    ).fetchall():
        commands.setdefault((int(decision_id), action), {})[device] = state
    permits = dict(conn.execute("SELECT split_part(title, ' ', 1), state FROM permits").fetchall())
    used: set[int] = set()
    rows = []
    for inc in incidents:
        mine = [d for d in decisions if _matches(d, inc)]
        used |= {d.decision_id for d in mine}
        rows.append(_row(inc, mine, commands, permits, kills_ms))
    spurious: dict[str, dict[str, Any]] = {}
    for d in decisions:
        if d.decision_id not in used:
            entry = spurious.setdefault(f"{d.rule_id}/{d.alarm_kind}", {"count": 0, "at_s": []})
            entry["count"] += 1
            at = round((d.created_ms - start_ms) / 1000)
            if at not in entry["at_s"]:
                entry["at_s"].append(at)
    acted = [r for r in rows if r["acted"]]
    return {
        "injected": len(rows),
        "acted_on": len(acted),
        "by_kind": {
            k: f"{sum(r['acted'] for r in rows if r['kind'] == k)}/"
            f"{sum(r['kind'] == k for r in rows)}"
            for k in EXPECTED
        },
        "missed": [r for r in rows if not r["acted"]],
        "acted_twice": [r for r in rows if r["decisions"] > 1],
        "commands_missing": [r for r in rows if r.get("command_missing")],
        "permit_not_suspended": [
            r for r in rows if r.get("permit_state") not in (None, EXPECTED[r["kind"]].permit_state)
        ],
        "straddling_a_kill": [r for r in rows if r["kill_within_s"] is not None],
        "decision_latency_s": _latency(acted, "decided_after_s"),
        "action_latency_s": _latency(acted, "acted_after_s"),
        "decisions_total": len(decisions),
        "decisions_not_from_an_incident": dict(sorted(spurious.items())),
    }


def _row(
    inc: Injected,
    mine: list[_Decision],
    commands: dict[tuple[int, str], dict[str, str]],
    permits: dict[str, str],
    kills_ms: list[int],
) -> dict[str, Any]:
    first = min(mine, key=lambda d: d.decision_id) if mine else None
    until = first.created_ms if first else inc.onset_ms + 120_000
    near = [k for k in kills_ms if inc.onset_ms - 5_000 <= k <= until]
    row: dict[str, Any] = {
        "wave": inc.wave,
        "kind": inc.kind,
        "device": inc.device,
        "acted": first is not None,
        "decisions": len(mine),
        "rule": first.rule_id if first else None,
        "on_alarm": first.alarm_kind if first else None,
        # device time of the alarm after onset / wall time of the decision after onset
        "decided_after_s": round((first.ts_ms - inc.onset_ms) / 1000, 1) if first else None,
        "acted_after_s": round((first.created_ms - inc.onset_ms) / 1000, 1) if first else None,
        "kill_within_s": round((near[0] - inc.onset_ms) / 1000, 1) if near else None,
    }
    want = EXPECTED[inc.kind]
    if want.command is not None:
        sent: dict[str, str] = {}
        for d in mine:
            sent.update(commands.get((d.decision_id, want.command), {}))
        row["command"] = want.command
        row["command_states"] = dict(sorted(Counter(sent.values()).items()))
        row["command_missing"] = sorted(set(inc.devices) - set(sent))
    if want.permit_state is not None:
        row["permit_state"] = permits.get(inc.permit)
    return row


def _latency(rows: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    values = sorted(float(r[key]) for r in rows if r[key] is not None)
    if not values:
        return {"median": None, "max": None}
    return {"median": values[len(values) // 2], "max": values[-1]}
