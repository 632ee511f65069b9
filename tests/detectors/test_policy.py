"""The policy (persistence + hysteresis rules) and the alarm lifecycle."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._buffers import EventBuffer
from detectors.alarms import AlarmBook
from detectors.models import AlarmKind, AlarmState, Severity
from detectors.policy import Rule, RuleTable, step_rules
from tests.detectors import naive

RULES = (
    Rule(AlarmKind.SPO2_LOW, Severity.WARNING, "<", 3000, 2000, "x"),
    Rule(AlarmKind.SPO2_LOW, Severity.CRITICAL, "<=", 1000, 0, "x"),
    Rule(AlarmKind.STRAIN_HIGH, Severity.WARNING, ">=", 0, 1000, "y"),
    Rule(AlarmKind.STRAIN_HIGH, Severity.CRITICAL, ">", 2000, 1000, "y"),
)
ON, OFF = [94.0, 90.0, 7.0, 9.0], [95.0, 91.0, 6.5, 8.5]


def _run_kernel(ts: np.ndarray, scores: np.ndarray) -> list[tuple[int, int, int, float]]:
    table = RuleTable(RULES)
    table.set_defaults(ON, OFF)
    table.grow(1)
    ev = EventBuffer(8 * len(ts) + 8)
    for i, t in enumerate(ts.tolist()):
        step_rules(
            0,
            t,
            scores[i],
            scores[i],
            *table.args(),
            ev.slot,
            ev.kind,
            ev.level,
            ev.ts,
            ev.value,
            ev.n,
        )
    _slot, kind, level, t_, value = ev.rows()
    local = {int(c): i for i, c in enumerate(table.kind_codes)}
    return [
        (int(a), local[int(k)], int(lv), float(v))
        for a, k, lv, v in zip(t_, kind, level, value, strict=True)
    ]


@given(
    steps=st.lists(st.sampled_from([0, 500, 1000, 1000, 2500]), min_size=1, max_size=80),
    data=st.data(),
)
@settings(max_examples=150, deadline=None)
def test_step_rules_random_scores_match_reference(steps: list[int], data: st.DataObject) -> None:
    """Rule stepping equals the reference on random scores around the limits (NaN included)."""
    n = len(steps)
    pick = st.sampled_from([np.nan, 85.0, 89.9, 90.0, 90.5, 91.0, 93.0, 94.0, 96.0])
    picky = st.sampled_from([np.nan, 5.0, 6.5, 6.9, 7.0, 8.5, 9.0, 9.5])
    x = data.draw(st.lists(pick, min_size=n, max_size=n))
    y = data.draw(st.lists(picky, min_size=n, max_size=n))
    ts = 1_000_000 + np.cumsum(steps)
    scores = np.stack([x, x, y, y], 1).astype(np.float64)
    rules = [
        (0, 2, "<", 3000, 2000),
        (0, 3, "<=", 1000, 0),
        (1, 2, ">=", 0, 1000),
        (1, 3, ">", 2000, 1000),
    ]
    exp = naive.levels(ts, scores, scores, rules, ON, OFF)
    got = _run_kernel(ts, scores)
    assert [(a, b, c) for a, b, c, _ in got] == [(a, b, c) for a, b, c, _ in exp]
    np.testing.assert_allclose([v for *_, v in got], [v for *_, v in exp])


def test_rule_hold_below_limit_for_less_than_hold_does_not_fire() -> None:
    """A condition that ends before its hold time raises nothing."""
    ts = np.arange(0, 3000, 1000)  # 2 s below 94 < 3 s hold
    scores = np.tile([93.0, 93.0, 8.0, 8.0], (3, 1))
    got = _run_kernel(ts, scores)
    assert [(t, k, lv) for t, k, lv, _ in got] == [(0, 1, 2)]  # only the strain warning


def test_alarm_book_raise_escalate_deescalate_clear() -> None:
    """Raised, escalated, a silent lower level, escalated again, cleared."""
    book = AlarmBook()
    kw = {"device_id": "d", "worker_id": "w", "kind": AlarmKind.SPO2_LOW, "value": 1.0}
    states = [
        book.apply(ts_ms=t, level=lv, **kw)  # type: ignore[arg-type]
        for t, lv in [(1, 2), (2, 3), (3, 2), (4, 3), (5, 0)]
    ]
    assert [s.state if s else None for s in states] == [
        AlarmState.RAISED, AlarmState.ESCALATED, None, AlarmState.ESCALATED, AlarmState.CLEARED,
    ]  # fmt: skip
    assert states[1] is not None
    assert states[1].severity == Severity.CRITICAL
    assert book.open == {}


def test_alarm_book_two_devices_one_worker_one_alarm() -> None:
    """A worker's two devices share one open alarm; it clears when both are back to 0."""
    book = AlarmBook()
    kw = {"worker_id": "w", "kind": AlarmKind.FALL, "value": None}
    a = book.apply(ts_ms=1, device_id="helmet", level=2, **kw)  # type: ignore[arg-type]
    b = book.apply(ts_ms=2, device_id="band", level=2, **kw)  # type: ignore[arg-type]
    c = book.apply(ts_ms=3, device_id="helmet", level=0, **kw)  # type: ignore[arg-type]
    d = book.apply(ts_ms=4, device_id="band", level=0, **kw)  # type: ignore[arg-type]
    assert a is not None
    assert a.state == AlarmState.RAISED
    assert b is None
    assert c is None
    assert d is not None
    assert d.state == AlarmState.CLEARED
    assert d.device_id == "band"


def test_alarm_book_acknowledge_once_then_round_trips() -> None:
    """Acknowledging emits one event; the book survives its JSON form."""
    book = AlarmBook()
    book.apply(ts_ms=1, device_id="d", worker_id=None, kind=AlarmKind.SOS, level=3, value=1.0)
    ack = book.acknowledge(ts_ms=2, device_id="d", worker_id=None, kind=AlarmKind.SOS)
    again = book.acknowledge(ts_ms=3, device_id="d", worker_id=None, kind=AlarmKind.SOS)
    assert ack is not None
    assert ack.state == AlarmState.ACKNOWLEDGED
    assert again is None
    copy = AlarmBook.from_json(book.to_json())
    assert copy.open[("device:d", AlarmKind.SOS)].acknowledged is True
