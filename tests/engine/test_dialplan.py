"""The dial plan (toll-fraud guard) and its `dial_plan:` site section.

Pure: `DialPlan.route` is called directly; the section is parsed from YAML text like a real site file so
bad fields come back as `file:line: field: message`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.configfile import ConfigFileError, parse_text
from engine.telephony.dialplan import Category, DialPlan, DialRefused, classify, normalise

PLAN = DialPlan()


# ------------------------------------------------------------------------------------------------
# normalising and classifying
@pytest.mark.parametrize(("raw", "digits"), [
    ("905-555-0100", "9055550100"),
    ("(905) 555.0100", "9055550100"),
    ("+1 905 555 0100", "9055550100"),
    ("1-905-555-0100", "9055550100"),
    (" 311 ", "311"),
    ("+44 20 7946 0958", "+442079460958"),
    ("011 44 20 7946 0958", "011442079460958"),
])
def test_normalise(raw: str, digits: str) -> None:
    assert normalise(raw) == digits


@pytest.mark.parametrize(("number", "category"), [
    ("211", Category.N11), ("311", Category.N11), ("411", Category.N11), ("811", Category.N11),
    ("911", Category.EMERGENCY),
    ("9055550100", Category.LOCAL), ("2895550100", Category.LOCAL), ("3655550100", Category.LOCAL),
    ("8005550100", Category.TOLL_FREE), ("8885550100", Category.TOLL_FREE), ("8335550100", Category.TOLL_FREE),
    ("4165550100", Category.LONG_DISTANCE), ("2125550100", Category.LONG_DISTANCE),
    ("9005550100", Category.PREMIUM), ("9765550100", Category.PREMIUM),
    ("4169760100", Category.PREMIUM),  # a 976 exchange bills like a 900 number whatever the area code
    ("8765550100", Category.INTERNATIONAL),  # Jamaica: looks domestic, bills international
    ("8095550100", Category.INTERNATIONAL),  # Dominican Republic
    ("2425550100", Category.INTERNATIONAL),  # Bahamas
    ("+442079460958", Category.INTERNATIONAL), ("011442079460958", Category.INTERNATIONAL),
    ("", Category.INVALID), ("12", Category.INVALID), ("011", Category.INVALID),
    ("1055550100", Category.INVALID),  # area codes never start with 0 or 1
    ("9051550100", Category.INVALID),  # nor exchanges
    ("905555010", Category.INVALID), ("905555010012", Category.INVALID),
    ("90555501OO", Category.INVALID), ("+12", Category.INVALID), ("+44abc", Category.INVALID),
    ("111", Category.INVALID),
])
def test_classify(number: str, category: Category) -> None:
    assert classify(number) is category


def test_local_area_codes_are_the_sites() -> None:
    assert classify("4165550100", ("416", "647")) is Category.LOCAL
    assert classify("9055550100", ("416", "647")) is Category.LONG_DISTANCE


# ------------------------------------------------------------------------------------------------
# routing with the default plan: n11, local and toll free go out; the rest is refused
@pytest.mark.parametrize(("raw", "number", "category"), [
    ("311", "311", Category.N11),
    ("+1 (905) 555-0100", "9055550100", Category.LOCAL),
    ("1 800 555 0100", "8005550100", Category.TOLL_FREE),
])
def test_default_plan_allows(raw: str, number: str, category: Category) -> None:
    target = PLAN.route(raw)
    assert (target.number, target.category) == (number, category)
    assert target.uri == f"sip:{number}@127.0.0.1:5080"


@pytest.mark.parametrize(("raw", "category", "words"), [
    ("416-555-0100", Category.LONG_DISTANCE, "long distance numbers are not allowed"),
    ("1-900-555-0100", Category.PREMIUM, "premium numbers are not allowed"),
    ("876 555 0100", Category.INTERNATIONAL, "international numbers are not allowed"),
    ("+44 20 7946 0958", Category.INTERNATIONAL, "international numbers are not allowed"),
    ("011 44 20 7946 0958", Category.INTERNATIONAL, "international numbers are not allowed"),
    ("911", Category.EMERGENCY, "never originates emergency calls"),
    ("hello", Category.INVALID, "not a dialable number"),
    ("", Category.INVALID, "not a dialable number"),
    ("905-555-01", Category.INVALID, "not a dialable number"),
])
def test_default_plan_refuses(raw: str, category: Category, words: str) -> None:
    with pytest.raises(DialRefused) as info:
        PLAN.route(raw)
    assert info.value.category is category
    assert info.value.number == raw  # the number as the user typed it, for the error message
    assert words in info.value.reason
    assert repr(raw) in str(info.value)


def test_site_can_allow_more_categories() -> None:
    plan = DialPlan(allowed=frozenset({Category.LOCAL, Category.LONG_DISTANCE}))
    assert plan.route("4165550100").category is Category.LONG_DISTANCE
    with pytest.raises(DialRefused):
        plan.route("8005550100")  # toll free is no longer in the allowed set
    with pytest.raises(DialRefused) as info:
        DialPlan(allowed=frozenset(Category)).route("911")  # emergency is refused whatever is allowed
    assert info.value.category is Category.EMERGENCY


def test_allow_pattern_opens_one_number_only() -> None:
    plan = DialPlan(allow=(r"4165550199",))
    assert plan.route("416-555-0199").uri == "sip:4165550199@127.0.0.1:5080"
    with pytest.raises(DialRefused):
        plan.route("416-555-0198")
    with pytest.raises(DialRefused):
        DialPlan(allow=(r"911",)).route("911")  # never emergency
    with pytest.raises(DialRefused):
        DialPlan(allow=(r".*",)).route("abc")  # never an invalid number


def test_deny_beats_allow() -> None:
    plan = DialPlan(allow=(r"416\d{7}",), deny=(r"4165550199", r"800555\d{4}"))
    assert plan.route("4165550100").category is Category.LONG_DISTANCE
    with pytest.raises(DialRefused) as info:
        plan.route("4165550199")  # allowed by pattern and denied by pattern: denied
    assert "deny list" in info.value.reason
    with pytest.raises(DialRefused) as info:
        plan.route("18005550100")  # an allowed category, denied by pattern
    assert info.value.category is Category.TOLL_FREE and "deny list" in info.value.reason
    assert plan.route("8885550100").category is Category.TOLL_FREE


def test_trunk_template() -> None:
    plan = DialPlan(trunk="sip:{number}@trunk.example.net;transport=tcp")
    assert plan.route("311").uri == "sip:311@trunk.example.net;transport=tcp"


# ------------------------------------------------------------------------------------------------
# the site section
BASE = """\
skills: [general]
queues:
  general: {skills: {general: 1}}
agents:
  a1: {skills: {general: 5}}
"""


def site(dial_plan: str) -> str:
    return BASE + "dial_plan:\n" + textwrap.indent(textwrap.dedent(dial_plan), "  ")


def test_section_defaults() -> None:
    cfg = parse_text(BASE, "site.yaml")
    plan = cfg.engine.dial_plan.plan()
    assert plan.allowed == {Category.N11, Category.LOCAL, Category.TOLL_FREE}
    assert cfg.engine.dial_plan.caller_id == ""
    assert plan.route("9055550100").uri == "sip:9055550100@127.0.0.1:5080"


def test_section_builds_the_plan() -> None:
    cfg = parse_text(site("""\
        trunk: "sip:{number}@10.0.0.5:5060"
        caller_id: "9055550311"
        allow_categories: [local, long_distance]
        local_area_codes: ["416", "647"]
        allow: ['8005550100']
        deny: ['416555\\d{4}']
        """), "site.yaml")
    section = cfg.engine.dial_plan
    assert section.caller_id == "9055550311"
    plan = section.plan()
    assert plan.route("6475550100").category is Category.LOCAL
    assert plan.route("9055550100").category is Category.LONG_DISTANCE
    assert plan.route("8005550100").uri == "sip:8005550100@10.0.0.5:5060"  # toll free only by the allow list
    with pytest.raises(DialRefused):
        plan.route("8005550101")
    with pytest.raises(DialRefused):
        plan.route("4165550100")  # local, but denied


def test_demo_site_file_has_a_working_plan() -> None:
    from engine.configfile import load_file

    cfg = load_file(Path(__file__).resolve().parents[2] / "config" / "switchboard.yaml")
    assert cfg.engine.dial_plan.caller_id
    assert cfg.engine.dial_plan.plan().route("311").category is Category.N11


@pytest.mark.parametrize(("body", "field", "words"), [
    ('trunk: "tel:{number}"', "dial_plan.trunk", "sip: URI with {number}"),
    ('trunk: "sip:311@10.0.0.5"', "dial_plan.trunk", "sip: URI with {number}"),
    ('trunk: "sip:{number}@{host}"', "dial_plan.trunk", "{host}"),
    ("allow_categories: [local, premium_plus]", "dial_plan.allow_categories", "unknown category 'premium_plus'"),
    ("allow_categories: [emergency]", "dial_plan.allow_categories", "unknown category 'emergency'"),
    ("local_area_codes: ['905', '05']", "dial_plan.local_area_codes", "area code '05' must be three digits"),
    ("deny: ['(']", "dial_plan.deny", "pattern '(' is not a regular expression"),
    ("allow: ['[0-9']", "dial_plan.allow", "is not a regular expression"),
    ("caller_id: 'call us'", "dial_plan.caller_id", "caller_id"),
    ("trunks: 'sip:{number}@x'", "dial_plan.trunks", "Extra inputs are not permitted"),
])
def test_bad_section_fields_name_file_line_and_field(body: str, field: str, words: str) -> None:
    text = site(f"caller_id: '9055550311'\n{body}\n" if "caller_id" not in body else f"{body}\n")
    line = text.splitlines().index(f"  {body}") + 1
    with pytest.raises(ConfigFileError) as info:
        parse_text(text, "site.yaml")
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == ("site.yaml", line, field), problem
    assert words in problem.message, problem
    assert str(problem).startswith(f"site.yaml:{line}: {field}: ")


def test_bad_field_line_points_at_the_key() -> None:
    text = site("""\
        trunk: "sip:{number}@127.0.0.1:5080"
        caller_id: "9055550311"
        allow_categories: [local, premium_plus]
        """)
    with pytest.raises(ConfigFileError) as info:
        parse_text(text, "site.yaml")
    (problem,) = info.value.problems
    assert problem.line == text.splitlines().index("  allow_categories: [local, premium_plus]") + 1
