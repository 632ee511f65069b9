"""Errors of the permit domain. Each names its rule and GB 30871-2022 clause and renders
itself in Chinese or English (`localized`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ingest.errors import PermitPulseError
from permits.i18n import Lang, clause_of, message, state_label
from permits.models import Finding


class PermitError(PermitPulseError):
    """Raised when a permit operation breaks a rule; the root of this package's errors.

    Attributes:
        findings: the broken rules, each with its clause and facts (at least one).
    """

    code = "permit_error"

    def __init__(self, findings: Sequence[Finding]) -> None:
        if not findings:
            raise ValueError("an error needs at least one finding")
        self.findings = tuple(findings)
        super().__init__(self.localized(Lang.EN))

    @property
    def rule(self) -> str:
        return self.findings[0].rule

    @property
    def clause(self) -> str:
        return "; ".join(dict.fromkeys(f.clause for f in self.findings))

    def localized(self, lang: Lang | str) -> str:
        """All findings as sentences in ``lang``, joined."""
        lang = Lang(lang)
        return "; ".join(message(f.rule, f.params, lang) for f in self.findings)

    def reply_extra(self, lang: Lang | str) -> dict[str, Any]:
        """Fields added to the HTTP error reply next to ``detail`` and ``code``."""
        lang = Lang(lang)
        return {
            "rule": self.rule,
            "clause": self.clause,
            "findings": [
                {
                    "rule": f.rule,
                    "clause": f.clause,
                    "detail": message(f.rule, f.params, lang),
                    "facts": {k: _plain(v) for k, v in f.params.items()},
                }
                for f in self.findings
            ],
        }


def finding(rule: str, **params: Any) -> Finding:
    """A `Finding` of ``rule`` whose clause comes from the rule table."""
    return Finding(rule=rule, clause=clause_of(rule, params), params=params)


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_plain(x) for x in v]
    return str(v)


class RuleViolation(PermitError):
    """Raised when an action is refused because one or more GB 30871 / policy rules are not
    met (validity caps, gas tests, check-in, evidence, certificates, weather, ...)."""

    code = "rule_violation"

    def __init__(self, *findings: Finding) -> None:
        super().__init__(findings)


class ConflictDetected(RuleViolation):
    """Raised when another live permit conflicts with this one (SIMOPS distance and
    same-object rules, GB 30871 5.2.8-9, 6.7, 7.6, 7.10, 8.2.8, 4.7)."""

    code = "permit_conflict"


class InvalidTransition(PermitError):
    """Raised when a state change is not an edge of the transition table.

    Attributes:
        permit_id: the permit.
        from_state: its current state.
        to_state: the state asked for.
    """

    code = "invalid_transition"

    def __init__(self, permit_id: uuid.UUID | str, from_state: str, to_state: str) -> None:
        self.permit_id = str(permit_id)
        self.from_state = str(from_state)
        self.to_state = str(to_state)
        super().__init__([finding("workflow.transition", **self._params(Lang.EN))])

    def _params(self, lang: Lang) -> dict[str, str]:
        return {
            "permit": self.permit_id,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "from_label": state_label(self.from_state, lang),
            "to_label": state_label(self.to_state, lang),
        }

    def localized(self, lang: Lang | str) -> str:
        return message("workflow.transition", self._params(Lang(lang)), Lang(lang))


class NotAuthorized(PermitError):
    """Raised when the acting user lacks the role an action needs (GB 30871 B.1)."""

    code = "not_authorized"

    def __init__(self, user_id: str, action: str, roles: Sequence[str]) -> None:
        self.user_id = user_id
        self.action = action
        self.roles = tuple(roles)
        super().__init__(
            [finding("role.required", user_id=user_id, action=action, roles=", ".join(roles))]
        )


class SeparationOfDuties(PermitError):
    """Raised when a user would approve their own permit or sign two steps of one route."""

    code = "separation_of_duties"

    def __init__(self, *findings: Finding) -> None:
        super().__init__(findings)


class PermitNotFound(PermitError):
    """Raised when a permit (or a record of it) does not exist.

    Attributes:
        key: the identifier asked for.
    """

    code = "permit_not_found"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__([finding("permit.not_found", key=key)])


class UnknownActor(PermitError):
    """Raised when the acting user is not known (no such user, or no identity given)."""

    code = "unknown_actor"

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__([finding("actor.unknown", user_id=user_id)])


class EvidenceRejected(RuleViolation):
    """Raised when an uploaded evidence file is refused (empty, corrupt, wrong type)."""

    code = "evidence_rejected"


class EvidenceTooLarge(EvidenceRejected):
    """Raised when an uploaded evidence file is larger than the configured limit."""

    code = "evidence_too_large"


class ContentLocked(RuleViolation):
    """Raised when a submitted permit's content would be altered (GB 30871 4.18)."""

    code = "content_locked"
