"""Enforcement: the rule language and the pure rule engine (facts in, decisions out).

Contract: `load` refuses an invalid rules file with its line and reason; `evaluate_alarm` and
`evaluate_permit` are deterministic functions of the rules and the facts, shared by the live
service and the offline replay.
"""

from permits.enforcement.engine import (
    AlarmFacts,
    Context,
    Decision,
    PermitFacts,
    evaluate_alarm,
    evaluate_permit,
    targets,
)
from permits.enforcement.rules import DEFAULT_RULES, RuleSet, RulesFileError, Trigger, load, parse

__all__ = [
    "DEFAULT_RULES",
    "AlarmFacts",
    "Context",
    "Decision",
    "PermitFacts",
    "RuleSet",
    "RulesFileError",
    "Trigger",
    "evaluate_alarm",
    "evaluate_permit",
    "load",
    "parse",
    "targets",
]
