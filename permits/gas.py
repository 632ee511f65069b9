"""Gas-analysis pass rules (GB 30871-2022 5.3, 6.3-6.5) and the toxic-substance table.

Flammables: a substance whose LEL is ≥ 4 % vol passes at ≤ 0.5 % vol, one below 4 % at
≤ 0.2 % vol. "< 10 % LEL" criteria are NOT the standard's and are not used. Oxygen in a
confined space 19.5-21 % (≤ 23.5 % where enriched); in oxygen service ≤ 23.5 %. Toxics are
compared with their GBZ 2.1-2019 occupational exposure limit: MAC where one is set, else
PC-TWA (a spot reading against the 8-hour mean: the stricter choice, company policy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from permits.errors import finding
from permits.models import Finding, GasReading, PermitType

#: Molar volume at 25 °C, 101.325 kPa (GBZ 2.1 converts ppm ↔ mg/m³ at these conditions).
MOLAR_VOLUME_L = 24.45


@dataclass(frozen=True, slots=True)
class Substance:
    """A toxic substance: molar mass (g/mol) and GBZ 2.1-2019 limits (mg/m³)."""

    zh: str
    mw: float
    mac: float | None = None
    pc_twa: float | None = None
    pc_stel: float | None = None

    @property
    def limit(self) -> float:
        value = self.mac if self.mac is not None else self.pc_twa
        assert value is not None
        return value


#: GBZ 2.1-2019 table 1 (chemical agents), the substances common in chemical plants.
TOXICS: Mapping[str, Substance] = {
    "h2s": Substance("硫化氢", 34.08, mac=10.0),
    "co": Substance("一氧化碳", 28.01, pc_twa=20.0, pc_stel=30.0),
    "nh3": Substance("氨", 17.03, pc_twa=20.0, pc_stel=30.0),
    "cl2": Substance("氯", 70.90, mac=1.0),
    "so2": Substance("二氧化硫", 64.07, pc_twa=5.0, pc_stel=10.0),
    "no2": Substance("二氧化氮", 46.01, pc_twa=5.0, pc_stel=10.0),
    "hcn": Substance("氰化氢", 27.03, mac=1.0),
    "hcl": Substance("氯化氢", 36.46, mac=7.5),
    "cocl2": Substance("光气", 98.92, mac=0.5),
    "hcho": Substance("甲醛", 30.03, mac=0.5),
    "benzene": Substance("苯", 78.11, pc_twa=6.0, pc_stel=10.0),
    "toluene": Substance("甲苯", 92.14, pc_twa=50.0, pc_stel=100.0),
    "methanol": Substance("甲醇", 32.04, pc_twa=25.0, pc_stel=50.0),
}

#: Lower explosive limits, % vol (used when a reading does not state its substance's LEL).
LEL_PCT: Mapping[str, float] = {
    "methane": 5.0,
    "ethane": 3.0,
    "propane": 2.1,
    "butane": 1.8,
    "ethylene": 2.7,
    "propylene": 2.0,
    "acetylene": 2.5,
    "hydrogen": 4.0,
    "co": 12.5,
    "h2s": 4.0,
    "nh3": 15.0,
    "benzene": 1.2,
    "toluene": 1.1,
    "methanol": 6.0,
}


@dataclass(frozen=True, slots=True)
class GasRule:
    """What a permit's gas test is judged by."""

    clause: str
    flammable_required: bool = True
    o2_range: tuple[float, float] | None = None  # required and bounded (confined space)
    o2_max: float | None = None  # bounded only when measured (oxygen service)
    toxics: bool = False


def rule_for(ptype: PermitType, fields: Mapping[str, object]) -> GasRule:
    """The gas rule of a permit type (hot work 5.3; confined space and deep excavation near
    lines 6.3-6.5, 11.10; temporary electricity in hazardous areas 'as hot work')."""
    if ptype in (PermitType.SX, PermitType.DT):
        high = 23.5 if fields.get("oxygen_enriched") else 21.0
        return GasRule(clause="6.3–6.5", o2_range=(19.5, high), toxics=True)
    if ptype is PermitType.DH:
        o2_max = 23.5 if fields.get("oxygen_service") else None
        return GasRule(clause="5.3", o2_max=o2_max, toxics=False)
    return GasRule(clause="5.3; ch. 10")


def flammable_limit(lel_pct: float) -> float:
    """Most % vol allowed for a flammable with this LEL (5.3)."""
    return 0.5 if lel_pct >= 4.0 else 0.2


def evaluate(o2_pct: float | None, readings: Sequence[GasReading], rule: GasRule) -> list[Finding]:
    """Everything that fails ``rule``; an empty list is a pass."""
    out: list[Finding] = []
    if rule.o2_range is not None:
        low, high = rule.o2_range
        if o2_pct is None:
            out.append(finding("gas.o2_missing"))
        elif not low <= o2_pct <= high:
            out.append(finding("gas.o2_range", value=o2_pct, low=low, high=high))
    if rule.o2_max is not None and o2_pct is not None and o2_pct > rule.o2_max:
        out.append(finding("gas.o2_enriched", value=o2_pct))
    flammables = [r for r in readings if r.unit in ("%vol", "%LEL")]
    if rule.flammable_required and not flammables:
        out.append(finding("gas.flammable_missing"))
    for r in flammables:
        out.extend(_flammable(r, rule.clause))
    for r in readings:
        if r.unit in ("mg/m3", "ppm"):
            out.extend(_toxic(r) if rule.toxics or r.substance.lower() in TOXICS else [])
    return out


def _flammable(r: GasReading, clause: str) -> list[Finding]:
    lel = r.lel_pct if r.lel_pct is not None else LEL_PCT.get(r.substance.lower())
    if lel is None or lel <= 0:
        # An unknown LEL is judged by the stricter limit.
        lel = 0.0
    vol = r.value if r.unit == "%vol" else r.value / 100.0 * lel
    limit = flammable_limit(lel)
    if vol > limit:
        return [
            finding(
                "gas.flammable",
                substance=r.substance,
                value=round(vol, 4),
                limit=limit,
                lel=lel,
                clause=clause,
            )
        ]
    return []


def _toxic(r: GasReading) -> list[Finding]:
    sub = TOXICS.get(r.substance.lower())
    if sub is None:
        return [finding("gas.toxic_unknown", substance=r.substance)]
    mg = r.value if r.unit == "mg/m3" else r.value * sub.mw / MOLAR_VOLUME_L
    if mg > sub.limit:
        return [finding("gas.toxic", substance=r.substance, value=round(mg, 3), limit=sub.limit)]
    return []
