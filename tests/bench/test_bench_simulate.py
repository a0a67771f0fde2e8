"""`switchboard bench simulate`: a row per centre size, ours beside ciw, the headline the largest size's.

Speeds are figures to read, not to assert; what is checked is that both simulators ran the same model
(contacts and service levels agree with each other and with Erlang C) and that bad sizes are refused."""

from __future__ import annotations

import json

import pytest

from engine.cli import main


def test_a_row_per_size_and_the_headline_is_the_largest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "simulate", "--agents", "40,5", "--contacts", "4000", "--repeat", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["rows"]
    assert [r["agents"] for r in rows] == [5, 40]
    for r in rows:
        # the same load per agent: 90% of 5 and of 40 agents at 180 s a contact
        assert r["arrivals_per_hour"] == pytest.approx(r["agents"] * 0.9 * 20)
        assert 3000 < r["contacts"] < 5000
        assert r["contacts_per_s"] > 0 and r["ciw_contacts_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["contacts_per_s"] / r["ciw_contacts_per_s"], rel=1e-2)
        assert r["meets_goal"] is (r["ratio"] >= out["goal_ratio"])
        # a short run: loose, but a simulator of another model would miss by far more
        assert r["service_level"] == pytest.approx(r["erlang_c_service_level"], abs=0.2)
        assert r["ciw_service_level"] == pytest.approx(r["erlang_c_service_level"], abs=0.2)
        assert r["occupancy"] == pytest.approx(0.9, abs=0.08)
    head = rows[-1]
    assert {k: out[k] for k in ("agents", "contacts_per_s", "ciw_contacts_per_s", "ratio", "meets_goal")} == {
        k: head[k] for k in ("agents", "contacts_per_s", "ciw_contacts_per_s", "ratio", "meets_goal")}
    assert out["goal_ratio"] == 10.0 and out["core"]


def test_a_fixed_arrival_rate_applies_to_every_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "simulate", "--agents", "6,8", "--arrivals-per-hour", "90", "--hours", "20",
                 "--repeat", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["arrivals_per_hour"], r["hours"]) for r in rows] == [(90.0, 20.0), (90.0, 20.0)]
    assert rows[0]["erlang_c_service_level"] < rows[1]["erlang_c_service_level"]  # more agents, same calls


@pytest.mark.parametrize("option, value, message", [
    ("--agents", "0", "expected comma-separated whole numbers >= 1, got '0'"),
    ("--agents", "14,x", "expected comma-separated whole numbers >= 1, got '14,x'"),
    ("--agents", "", "expected comma-separated whole numbers >= 1, got ''"),
    ("--occupancy", "1.0", "must be a number in (0, 1), got '1.0'"),
    ("--occupancy", "0", "must be a number in (0, 1), got '0'"),
    ("--contacts", "-5", "must be a whole number >= 1, got '-5'"),
    ("--aht-s", "abc", "must be a number > 0, got 'abc'"),
    ("--arrivals-per-hour", "0", "must be a number > 0, got '0'"),
    ("--repeat", "0", "must be a whole number >= 1, got '0'"),
    ("--threshold-s", "-1", "must be a number >= 0, got '-1'"),
    ("--hours", "nan", "must be a number > 0, got 'nan'"),
])
def test_bad_options_are_refused_naming_the_option(option: str, value: str, message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "simulate", option, value, "--json"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and message in err


def test_more_calls_than_the_agents_can_take_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["bench", "simulate", "--agents", "4,14", "--arrivals-per-hour", "90", "--json"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--arrivals-per-hour 90 with --aht-s 180 is 4.5 Erlangs, too much for 4 agents" in err
