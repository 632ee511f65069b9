"""The eight GB 30871-2022 templates: loaded from versioned data, plus company measures.

A template gives a type's fields (with their checks), its mandatory risk list, safety
measures, emergency measures, evidence steps, closure checks and required trades.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from permits.errors import RuleViolation, finding
from permits.i18n import Lang
from permits.models import EvidencePhase, Finding, PermitType

DATA_FILE = "gb30871-2022.yaml"


@dataclass(frozen=True, slots=True)
class Item:
    """A listed item (risk, measure, emergency measure, closure check) in both languages."""

    id: str
    zh: str
    en: str
    clause: str = ""

    def text(self, lang: Lang) -> str:
        return self.zh if lang is Lang.ZH else self.en


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A type-specific field and its check."""

    name: str
    zh: str
    en: str
    type: str  # number | integer | bool | string | enum | enum_list
    required: bool = False
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    exclusive_min: float | None = None
    default: Any = None


@dataclass(frozen=True, slots=True)
class EvidenceStep:
    """A step that needs files: documents before submission, photos before start or closure.

    ``levels`` limits the step to some levels; ``when`` names a predicate on the fields.
    """

    id: str
    phase: EvidencePhase
    kind: str  # photo | document
    zh: str
    en: str
    levels: tuple[str, ...] = ()
    when: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    type: PermitType
    version: str
    clause: str
    levels: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    risks: tuple[Item, ...]
    measures: tuple[Item, ...]
    emergency: tuple[Item, ...]
    evidence_steps: tuple[EvidenceStep, ...]
    closure_checks: tuple[Item, ...]
    required_trades: tuple[str, ...]
    gas: Mapping[str, Any]

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def steps_for(self, level: str | None, fields: Mapping[str, Any]) -> tuple[EvidenceStep, ...]:
        """The evidence steps that apply to a permit of this level with these fields."""
        return tuple(
            s
            for s in self.evidence_steps
            if (not s.levels or level in s.levels) and (s.when is None or _when(s.when, fields))
        )


@dataclass(frozen=True, slots=True)
class Catalog:
    """All templates of one data version, plus the trade and activity vocabularies."""

    version: str
    templates: Mapping[PermitType, Template]
    trades: Mapping[str, Item]
    activities: Mapping[str, Item]

    def __getitem__(self, code: PermitType | str) -> Template:
        return self.templates[PermitType(code)]


def _when(predicate: str, fields: Mapping[str, Any]) -> bool:
    if predicate == "lift_under_10t":
        return float(fields.get("mass_t") or 0) < 10.0
    if predicate == "hazardous_area":
        return bool(fields.get("hazardous_area"))
    if predicate == "deep_near_lines":
        return float(fields.get("depth_m") or 0) > 1.2 and bool(
            fields.get("near_flammable_toxic_lines")
        )
    raise ValueError(f"unknown template predicate {predicate!r}")


def gas_required(template: Template, fields: Mapping[str, Any]) -> bool:
    """Whether a permit of this template needs a gas analysis before start (5.3, 6.3, 10, 11.10)."""
    if template.gas.get("required"):
        return True
    cond = template.gas.get("required_if")
    return bool(cond) and _when(str(cond), fields)


def _item(raw: Mapping[str, Any]) -> Item:
    return Item(
        id=str(raw["id"]), zh=str(raw["zh"]), en=str(raw["en"]), clause=raw.get("clause", "")
    )


def _field(raw: Mapping[str, Any]) -> FieldSpec:
    return FieldSpec(
        name=raw["name"],
        zh=raw["zh"],
        en=raw["en"],
        type=raw["type"],
        required=bool(raw.get("required", False)),
        choices=tuple(raw.get("choices", ())),
        min=raw.get("min"),
        max=raw.get("max"),
        exclusive_min=raw.get("exclusive_min"),
        default=raw.get("default"),
    )


def _step(raw: Mapping[str, Any]) -> EvidenceStep:
    return EvidenceStep(
        id=raw["id"],
        phase=EvidencePhase(raw["phase"]),
        kind=raw["kind"],
        zh=raw["zh"],
        en=raw["en"],
        levels=tuple(str(x) for x in raw.get("levels", ())),
        when=raw.get("when"),
    )


def parse(data: Mapping[str, Any], company: Mapping[str, Sequence[Mapping[str, Any]]]) -> Catalog:
    """A `Catalog` from the template data and a company's extra measures per type code."""
    version = str(data["version"])
    templates: dict[PermitType, Template] = {}
    for code, raw in data["types"].items():
        ptype = PermitType(code)
        measures = [_item(m) for m in raw["measures"]]
        extra = [_item({**m, "id": f"company.{m['id']}"}) for m in company.get(code, ())]
        templates[ptype] = Template(
            type=ptype,
            version=version + ("+company" if extra else ""),
            clause=str(raw["clause"]),
            levels=tuple(str(x) for x in raw["levels"]),
            fields=tuple(_field(f) for f in raw["fields"]),
            risks=tuple(_item(r) for r in raw["risks"]),
            measures=tuple(measures + extra),
            emergency=tuple(_item(e) for e in raw["emergency"]),
            evidence_steps=tuple(_step(s) for s in raw["evidence_steps"]),
            closure_checks=tuple(_item(c) for c in raw["closure_checks"]),
            required_trades=tuple(raw.get("required_trades", ())),
            gas=dict(raw.get("gas", {})),
        )
    if set(templates) != set(PermitType):
        raise ValueError(f"template data lacks {sorted(set(PermitType) - set(templates))}")
    return Catalog(
        version=version,
        templates=templates,
        trades={k: Item(id=k, zh=v["zh"], en=v["en"]) for k, v in data["trades"].items()},
        activities={k: Item(id=k, zh=v["zh"], en=v["en"]) for k, v in data["activities"].items()},
    )


@functools.cache
def _builtin_data() -> Mapping[str, Any]:
    text = resources.files("permits").joinpath("templates", DATA_FILE).read_text("utf-8")
    data: Mapping[str, Any] = yaml.safe_load(text)
    return data


def load(company_measures_file: Path | None = None) -> Catalog:
    """The built-in GB 30871 catalog, with a company's measures file added if given."""
    company: Mapping[str, Any] = {}
    if company_measures_file is not None:
        company = yaml.safe_load(company_measures_file.read_text("utf-8")) or {}
    return parse(_builtin_data(), company)


def validate_fields(template: Template, given: Mapping[str, Any]) -> dict[str, Any]:
    """The fields with defaults filled in; every problem is a finding of one `RuleViolation`."""
    problems: list[Finding] = []
    out: dict[str, Any] = {}
    for name in given:
        if template.field(name) is None:
            problems.append(finding("template.unknown_field", field=name))
    for spec in template.fields:
        value = given.get(spec.name)
        if value is None:
            if spec.required:
                problems.append(
                    finding("template.field_missing", field=spec.name, clause=template.clause)
                )
            elif spec.default is not None:
                out[spec.name] = (
                    list(spec.default) if isinstance(spec.default, list) else spec.default
                )
            continue
        reason = _check(spec, value)
        if reason:
            problems.append(
                finding(
                    "template.field_invalid", field=spec.name, reason=reason, clause=template.clause
                )
            )
        else:
            out[spec.name] = value
    if problems:
        raise RuleViolation(*problems)
    return out


def _check(spec: FieldSpec, value: Any) -> str | None:
    match spec.type:
        case "bool":
            return None if isinstance(value, bool) else "expected true or false"
        case "string":
            return None if isinstance(value, str) and value.strip() else "expected a non-empty text"
        case "enum":
            return None if value in spec.choices else f"expected one of {', '.join(spec.choices)}"
        case "enum_list":
            if not isinstance(value, list) or any(v not in spec.choices for v in value):
                return f"expected a list of {', '.join(spec.choices)}"
            return None
        case "integer" | "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return "expected a number"
            if spec.type == "integer" and not float(value).is_integer():
                return "expected a whole number"
            if not math.isfinite(float(value)):
                return "expected a finite number"
            if spec.min is not None and value < spec.min:
                return f"below {spec.min}"
            if spec.max is not None and value > spec.max:
                return f"above {spec.max}"
            if spec.exclusive_min is not None and value <= spec.exclusive_min:
                return f"must exceed {spec.exclusive_min}"
            return None
    raise ValueError(f"unknown field type {spec.type!r}")
