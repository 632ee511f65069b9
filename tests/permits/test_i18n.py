"""Every rule speaks Chinese and English and names a clause; language negotiation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from permits import i18n
from permits.i18n import Lang, negotiate

SOURCES = sorted(Path(__file__).parents[2].joinpath("permits").glob("*.py"))


def test_i18n_every_rule_used_in_code_has_both_texts() -> None:
    """Each rule id the code raises is in the table, with zh and en texts and a clause."""
    used = set()
    for src in SOURCES:
        used |= set(re.findall(r'finding\(\s*"([a-z_.0-9]+)"', src.read_text("utf-8")))
    used |= {
        r
        for r in re.findall(
            r'"((?:conflict|evidence)\.[a-z_]+)"', "".join(s.read_text("utf-8") for s in SOURCES)
        )
    }
    missing = sorted(u for u in used if u not in i18n.RULES)
    assert missing == []
    for rule, text in i18n.RULES.items():
        assert all((text.zh, text.en, text.clause)), rule


@pytest.mark.parametrize(
    ("header", "query", "lang"),
    [
        (None, None, Lang.ZH),
        ("en-US,en;q=0.9", None, Lang.EN),
        ("zh-CN", "en", Lang.EN),
        ("fr;q=1, en;q=0.5, zh;q=0.8", None, Lang.ZH),
        ("fr", None, Lang.ZH),
        ("en;q=0", None, Lang.ZH),
    ],
)
def test_i18n_negotiate_query_then_header_then_chinese(
    header: str | None, query: str | None, lang: Lang
) -> None:
    """?lang= wins, then Accept-Language by q, else Chinese."""
    assert negotiate(header, query) is lang


def test_i18n_labels_use_the_standards_terms() -> None:
    """Level labels are the standard's Chinese terms."""
    assert i18n.level_label("DH", "special", Lang.ZH) == "特级动火"
    assert i18n.type_name("SX", Lang.ZH) == "受限空间作业"
    assert i18n.state_label("suspended", Lang.EN) == "suspended"
