"""The rule language: the default set loads, and a bad file is refused with line and reason."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permits.enforcement.rules import RulesFileError, Trigger, load, parse

RULE = """\
version: 1
rules:
  - id: r1
    description: test rule
    trigger: alarm
    when:
      kind: [spo2_low]
    then:
      - evacuate: {}
"""


def test_default_rules_load_with_unique_ids_and_sources() -> None:
    """The shipped rule set is valid and every rule says why (its source)."""
    rules = load()
    assert rules.version == 1
    assert len({r.id for r in rules.rules}) == len(rules.rules)
    assert all(("§" in r.description) or ("GB 30871" in r.description) for r in rules.rules)
    assert {r.trigger for r in rules.rules} == set(Trigger)


def test_parse_shorthand_and_long_form_actions_are_equal() -> None:
    """`- evacuate: {}` and `- {action: evacuate}` mean the same."""
    long = RULE.replace("- evacuate: {}", "- {action: evacuate}")
    assert parse(RULE) == parse(long)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (RULE.replace("[spo2_low]", "[spo2_lo]"), 7, "unknown alarm kind"),
        (RULE.replace("- evacuate: {}", "- suspend: {}"), 9, "reason"),
        (
            RULE.replace("- evacuate: {}", "- explode: {}"),
            9,
            "does not match any of the expected tags",
        ),
        (RULE.replace("version: 1", "version: 2"), 1, "version 2 is not supported"),
        (
            RULE.replace("kind: [spo2_low]", "kinds: [spo2_low]"),
            7,
            "Extra inputs are not permitted",
        ),
        (RULE.replace("trigger: alarm", "trigger: sometimes"), 5, "trigger"),
        (RULE.replace("id: r1", "id: R 1"), 3, "pattern"),
        (RULE + RULE.split("rules:\n")[1], 1, "duplicate rule id"),
        ("version: 1\nrules: [", 2, "not YAML"),
        ("- just a list", 1, "a rules file is a mapping"),
    ],
)
def test_parse_invalid_rules_file_is_refused_with_line_and_reason(
    text: str, line: int, reason: str
) -> None:
    """An invalid rules file never loads half-way: the error names where and why."""
    with pytest.raises(RulesFileError, match=reason) as info:
        parse(text, source="site.yaml")
    assert info.value.line == line
    assert str(info.value).startswith(f"site.yaml:{line}:")


@given(st.text(max_size=300))
def test_parse_arbitrary_text_raises_only_rules_file_error(text: str) -> None:
    """No input crashes the loader: it loads or says why not."""
    with contextlib.suppress(RulesFileError):
        parse(text)
