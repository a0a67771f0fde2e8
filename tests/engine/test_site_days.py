"""Local days in the engine: "today" (an agent's contacts today, today's occupancy) starts at midnight in
the site's time zone, daylight saving included; a site file cannot set another day start beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from live_server import REPO

from engine.configfile import ConfigFileError, parse_text

DEMO = (REPO / "config" / "switchboard.yaml").read_text()


def test_the_centre_counts_days_in_the_sites_zone(tmp_path: Path) -> None:
    site = parse_text(DEMO, str(tmp_path / "site.yaml"))
    assert site.center.timezone == site.engine.site.timezone == "America/Toronto"
    assert "timezone:" in DEMO  # the demo says it, as a city would
    paris = parse_text(DEMO.replace("timezone: America/Toronto", "timezone: Europe/Paris"), "site.yaml")
    assert paris.center.timezone == "Europe/Paris"


def test_the_engines_journal_form_of_the_centre_keeps_its_zone() -> None:
    from engine.core import _center_from, _raw_of

    site = parse_text(DEMO, "site.yaml")
    assert _center_from(_raw_of(site.center)) == site.center


@pytest.mark.parametrize("line", ["day_offset_s: -18000", "timezone: America/Vancouver"])
def test_a_day_start_beside_the_sites_zone_is_refused(line: str) -> None:
    text = DEMO + f"\n{line}\n"
    with pytest.raises(ConfigFileError) as refused:
        parse_text(text, "site.yaml")
    [problem] = refused.value.problems
    key = line.split(":")[0]
    assert problem.field == key and "site.timezone" in problem.message
    assert text.splitlines()[problem.line - 1] == line


@pytest.mark.parametrize(("zone", "message"), [
    ("America/Totonto", "unknown time zone 'America/Totonto' (an IANA name such as America/Toronto)"),
    ("''", "time zone must be an IANA name such as America/Toronto, got ''"),
])
def test_a_site_zone_that_is_no_zone_is_refused_naming_the_field(zone: str, message: str) -> None:
    text = DEMO.replace("timezone: America/Toronto", f"timezone: {zone}")
    with pytest.raises(ConfigFileError) as refused:
        parse_text(text, "site.yaml")
    [problem] = refused.value.problems
    assert problem.field == "site.timezone" and message in problem.message
    assert text.splitlines()[problem.line - 1].strip() == f"timezone: {zone}"


def test_a_centre_zone_is_checked_the_same_way() -> None:
    from acd.config import load_center
    from acd.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_center({"skills": ["s"], "timezone": "America/Totonto", "agents": {"a": {"skills": {"s": 5}}},
                     "queues": {"q": {"skills": {"s": 1}}}})
    assert [str(i) for i in refused.value.issues] == [
        "timezone: unknown time zone 'America/Totonto' (an IANA name such as America/Toronto)"]
