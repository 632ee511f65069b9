"""Render the configuration table of the README from `Settings` (``python -m api.settings_doc``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from api.settings import Settings

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"


def rows(model: type[BaseModel], var: str = "PP_", keys: str = "") -> list[tuple[str, str, str]]:
    """One row per leaf field. Top-level sections are ``PP_SECTION_FIELD``; anything nested
    deeper is set as JSON on the section's sub-field (``PP_INGEST_PLAUSIBILITY='{"hr_max": 250}'``),
    shown as ``PP_INGEST_PLAUSIBILITY → hr_max``."""
    out: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        ann: Any = field.annotation
        nested = isinstance(ann, type) and issubclass(ann, BaseModel)
        if nested and var == "PP_":
            out += rows(ann, f"PP_{name.upper()}_")
        elif nested and not keys:
            out += rows(ann, f"{var}{name.upper()}", " → ")
        elif nested:
            out += rows(ann, var, f"{keys}{name}.")
        else:
            default = field.default
            shown = "(unset)" if default is None else f"`{default}`"
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            label = f"`{var}{name.upper()}`" if not keys else f"`{var}`{keys}`{name}`"
            out.append((label, shown, desc))
    return out


def table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| {v} | {d} | {m} |" for v, d, m in rows(Settings)]
    return "\n".join(lines)


def render(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    print(table())
