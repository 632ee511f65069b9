"""What the soak verifies in the database: every sample stored exactly once, and every
injected incident acted on by the rule engine (read from ``decisions``, ``device_commands``,
``push_groups`` and ``permits``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg

from benchmarks._soak_scenario import AWAY_AT, FALL_AT, HEAT_AT, O2_AT, SOS_AT, Wave


@dataclass(frozen=True, slots=True)
class Expected:
    """What must follow an incident: the rule (on which alarm kinds), the device command it
    sends (to everyone on the permit, or to the worker), the permit state it leaves behind,
    and whether it pushes to people."""

    rule: str
    alarms: tuple[str, ...]
    command: str | None = None
    permit_state: str | None = None
    push: bool = True


EXPECTED: dict[str, Expected] = {
    "o2_deficient": Expected(
        "confined-space-critical-evacuate", ("spo2_low",), "evacuate", "suspended"
    ),
    "sos": Expected("man-down-rescue", ("sos",)),
    "fall": Expected("man-down-rescue", ("fall", "no_motion")),
    "watcher_away": Expected("watcher-away-suspend", ("watcher_away",), "stop_work", "suspended"),
    "heat_strain": Expected(
        "heat-strain-downgrade", ("hr_sustained_high", "core_temp_high", "strain_high"), "rest"
    ),
}


# --------------------------------------------------------------------------- samples


def sample_counts(conn: psycopg.Connection[Any], expected: dict[str, int]) -> dict[str, Any]:
    """Stored telemetry against the number of samples each device measured.

    A device numbers its samples 1..n, so it is complete when it has n rows with n distinct
    sequence numbers from 1 to n.
    """
    rows = conn.execute(
        "SELECT device_id, count(*), count(DISTINCT seq), min(seq), max(seq)"
        " FROM telemetry GROUP BY device_id"
    ).fetchall()
    stored = {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}
    missing = duplicates = 0
    gaps: list[str] = []
    for device, n in expected.items():
        count, distinct, lo, hi = stored.get(device, (0, 0, 1, 0))
        duplicates += count - distinct
        missing += max(0, n - distinct)
        if n and (lo != 1 or hi != distinct or distinct != n):
            gaps.append(device)
    unexpected = sum(c for d, (c, *_) in stored.items() if d not in expected)
    dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    return {
        "stored": sum(c for c, *_ in stored.values()),
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
    devices: tuple[str, ...]  # whom the rule's command must reach
    permit: str  # the permit's number in the scenario (SX-03)
    onset_ms: int


def injected(waves: list[Wave], start_ms: int) -> list[Injected]:
    out = []
    for w in waves:
        at = start_ms + round(w.at_s * 1000)
        sx = tuple(w.device(r) for r in ("e1", "e2", "sxw"))
        dh = tuple(w.device(r) for r in ("sos", "fall", "hot", "dhw"))
        out += [
            Injected(w.index, "o2_deficient", w.device("e1"), sx, w.sx, at + O2_AT * 1000),
            Injected(w.index, "sos", w.device("sos"), (), w.dh, at + SOS_AT * 1000),
            Injected(w.index, "fall", w.device("fall"), (), w.dh, at + FALL_AT * 1000),
            Injected(w.index, "watcher_away", w.device("dhw"), dh, w.dh, at + AWAY_AT * 1000),
        ]
        if w.heat:
            hot = (w.device("hot"),)
            out.append(Injected(w.index, "heat_strain", hot[0], hot, w.dh, at + HEAT_AT * 1000))
    return out


@dataclass(frozen=True, slots=True)
class _Decision:
    decision_id: int
    ts_ms: int
    created_ms: int
    rule_id: str
    permit: str | None  # scenario number (title's first word)
    alarm_kind: str | None
    alarm_device: str | None


def _ms(t: dt.datetime) -> int:
    return round(t.timestamp() * 1000)


def _decisions(conn: psycopg.Connection[Any]) -> list[_Decision]:
    rows = conn.execute(
        "SELECT d.decision_id, d.ts, d.created_at, d.rule_id, split_part(p.title, ' ', 1),"
        " d.facts->'alarm'->>'kind', d.facts->'alarm'->>'device_id'"
        " FROM decisions d LEFT JOIN permits p USING (permit_id) ORDER BY d.decision_id"
    ).fetchall()
    return [_Decision(int(r[0]), _ms(r[1]), _ms(r[2]), r[3], r[4], r[5], r[6]) for r in rows]


def _matches(d: _Decision, inc: Injected) -> bool:
    want = EXPECTED[inc.kind]
    if d.rule_id != want.rule or d.alarm_kind not in want.alarms or d.ts_ms < inc.onset_ms - 1000:
        return False
    if inc.kind == "o2_deficient":  # whichever entrant desaturates first
        return d.permit == inc.permit
    return d.alarm_device == inc.device


@dataclass(frozen=True, slots=True)
class _Effects:
    """What the decisions did: commands by (decision, action), pushes, permit states."""

    commands: dict[tuple[int, str], dict[str, str]]
    pushed: set[int]
    permits: dict[str, str]


def _effects(conn: psycopg.Connection[Any]) -> _Effects:
    commands: dict[tuple[int, str], dict[str, str]] = {}
    for decision_id, action, device, state in conn.execute(
        "SELECT decision_id, action, device_id, state FROM device_commands"
        " WHERE decision_id IS NOT NULL"
    ).fetchall():
        commands.setdefault((int(decision_id), action), {})[device] = state
    pushed = {
        int(r[0])
        for r in conn.execute(
            "SELECT DISTINCT decision_id FROM push_groups WHERE decision_id IS NOT NULL"
        ).fetchall()
    }
    permits = dict(conn.execute("SELECT split_part(title, ' ', 1), state FROM permits").fetchall())
    return _Effects(commands, pushed, permits)


def incident_actions(
    conn: psycopg.Connection[Any],
    incidents: list[Injected],
    kills_ms: list[int],
    start_ms: int = 0,
) -> dict[str, Any]:
    """Every injected incident against the decisions taken and what they did.

    Decisions no incident explains are counted per rule and alarm kind, with the play times
    (whole seconds after ``start_ms``) at which they were taken."""
    decisions = _decisions(conn)
    effects = _effects(conn)
    used: set[int] = set()
    rows = []
    for inc in incidents:
        mine = [d for d in decisions if _matches(d, inc)]
        used |= {d.decision_id for d in mine}
        rows.append(_row(inc, mine, effects, kills_ms))
    spurious: dict[str, dict[str, Any]] = {}
    for d in decisions:
        if d.decision_id not in used:
            entry = spurious.setdefault(f"{d.rule_id}/{d.alarm_kind}", {"count": 0, "at_s": []})
            entry["count"] += 1
            at = round((d.created_ms - start_ms) / 1000)
            if at not in entry["at_s"] and len(entry["at_s"]) < 20:
                entry["at_s"].append(at)
    acted = [r for r in rows if r["acted"]]
    return {
        "injected": len(rows),
        "acted_on": len(acted),
        "by_kind": {
            k: f"{sum(r['acted'] for r in rows if r['kind'] == k)}/"
            f"{sum(r['kind'] == k for r in rows)}"
            for k in EXPECTED
            if any(r["kind"] == k for r in rows)
        },
        "missed": [r for r in rows if not r["acted"]],
        "incomplete": [r for r in rows if r["acted"] and r["incomplete"]],
        "decided_more_than_once": sum(r["decisions"] > 1 for r in rows),
        "straddling_a_kill": [
            {k: r[k] for k in ("wave", "kind", "acted", "decisions", "kill_within_s")}
            for r in rows
            if r["kill_within_s"] is not None
        ],
        "decision_latency_s": _latency(acted, "decided_after_s"),
        "action_latency_s": _latency(acted, "acted_after_s"),
        "decisions_total": len(decisions),
        "decisions_not_from_an_incident": dict(sorted(spurious.items())),
    }


def all_acted_on(actions: dict[str, Any]) -> bool:
    """Every incident decided, and every decision's commands, suspension and pushes done."""
    return bool(actions["acted_on"] == actions["injected"] and not actions["incomplete"])


def _row(inc: Injected, mine: list[_Decision], fx: _Effects, kills_ms: list[int]) -> dict[str, Any]:
    first = min(mine, key=lambda d: d.decision_id) if mine else None
    until = first.created_ms if first else inc.onset_ms + 360_000
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
        "incomplete": [],
    }
    want = EXPECTED[inc.kind]
    if want.command is not None:
        sent: dict[str, str] = {}
        for d in mine:
            sent.update(fx.commands.get((d.decision_id, want.command), {}))
        row["command_states"] = dict(sorted(Counter(sent.values()).items()))
        if missing := sorted(set(inc.devices) - set(sent)):
            row["incomplete"].append(f"no {want.command} command to {missing}")
    if want.permit_state is not None and fx.permits.get(inc.permit) != want.permit_state:
        row["incomplete"].append(f"permit {inc.permit} is {fx.permits.get(inc.permit)}")
    if want.push and mine and not any(d.decision_id in fx.pushed for d in mine):
        row["incomplete"].append("no push")
    return row


def _latency(rows: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    values = sorted(float(r[key]) for r in rows if r[key] is not None)
    if not values:
        return {"median": None, "max": None}
    return {"median": values[len(values) // 2], "max": values[-1]}
