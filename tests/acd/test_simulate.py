"""The simulator: it drives the real router, agrees with queueing theory and with ciw, and its CLI
reads the shipped scenarios and refuses bad ones with the file, line and field."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from acd.erlang import erlang_a, erlang_c
from acd.errors import ConfigError
from acd.events import (
    AgentLoggedOut,
    AgentNotReady,
    AgentReady,
    ContactAnswered,
    ContactEnded,
    ContactOffered,
    WrapUpCompleted,
)
from acd.model import RONA_REASON
from acd.router import Router
from acd.scenario import load_scenario
from acd.simulate import Simulation, simulate
from acd.stats import WaitEstimator
from engine.bench.simulate import MMC, mmc_of, run_ciw
from engine.cli import main
from engine.commands.simulate import load_scenario_file

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "config" / "scenarios"
SHIPPED = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
ERLANG = "single-skill-erlang-c"

# ciw replications for the confidence interval: independent seeds, each this long
CIW_REPS = 6
CIW_HOURS = 600.0
T_995 = {5: 4.032}  # Student t, two-sided 99%, by degrees of freedom


def mmc_data(model: MMC, hours: float, *, warmup_s: float = 3600.0, patience_s: float | None = None) -> dict[str, Any]:
    data = model.scenario(hours * 3600.0, warmup_s)
    if patience_s is not None:
        data["contact_types"]["call"]["patience"] = {"distribution": "exponential", "mean_s": patience_s}
        data["center"]["queues"]["general"]["short_abandon_s"] = 0  # as Erlang A: every abandon counts
    return data


@pytest.fixture(scope="module")
def cli_runs() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every shipped scenario through `switchboard simulate --json`, started together (2 cores)."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "simulate", "--scenario", str(SCENARIOS / f"{name}.yaml"),
             "--seed", "1", "--json"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in SHIPPED
    }
    runs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        runs[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return runs


# ----------------------------------------------------------------------------------------------
# (a) against Erlang C and ciw
def test_single_skill_service_level_matches_erlang_c_and_ciw(cli_runs: dict[str, Any]) -> None:
    scenario = load_scenario_file(SCENARIOS / f"{ERLANG}.yaml")
    model = mmc_of(scenario)
    exact = erlang_c(model.arrivals_per_hour, model.aht_s, model.agents, model.threshold_s)

    reps = [run_ciw(model, CIW_HOURS * 3600.0, seed, warmup_s=scenario.warmup_s) for seed in range(1, CIW_REPS + 1)]
    ciw_sl = [r.service_level for r in reps]
    ciw_mean = statistics.mean(ciw_sl)
    half = T_995[CIW_REPS - 1] * statistics.stdev(ciw_sl) / math.sqrt(CIW_REPS)

    run = cli_runs[ERLANG]
    assert run.returncode == 0, run.stderr
    ours = json.loads(run.stdout)
    print(f"\nM/M/{model.agents}: {model.arrivals_per_hour:g}/h, AHT {model.aht_s:g} s, T {model.threshold_s:g} s; "
          f"ours {ours['contacts']} contacts")
    print(f"service level: ours {ours['service_level']:.4f} | Erlang C {exact.service_level:.4f} | "
          f"ciw {ciw_mean:.4f} +- {half:.4f} (99% CI, {CIW_REPS} x {CIW_HOURS:g} h, "
          f"{sum(r.contacts for r in reps)} customers)")
    print(f"ASA: ours {ours['asa_s']:.2f} s | Erlang C {exact.asa_s:.2f} s | ciw "
          f"{statistics.mean(r.asa_s for r in reps):.2f} s; occupancy ours {ours['occupancy']:.4f} | "
          f"Erlang C {exact.occupancy:.4f}")

    expected = model.arrivals_per_hour * (scenario.end - scenario.start - scenario.warmup_s) / 3600.0
    assert abs(ours["contacts"] - expected) < 5 * math.sqrt(expected)
    assert ours["answered"] == ours["contacts"] and ours["abandoned"] == 0 and ours["unserved"] == 0
    assert abs(ours["service_level"] - exact.service_level) <= 0.01
    assert abs(ours["service_level"] - ciw_mean) <= half
    assert abs(ours["occupancy"] - exact.occupancy) <= 0.01
    assert abs(ours["asa_s"] - exact.asa_s) <= 0.1 * exact.asa_s


# ----------------------------------------------------------------------------------------------
# (b) determinism, and the router is only ever driven through its commands
def test_same_seed_same_result_and_the_journal_replays() -> None:
    scenario = load_scenario_file(SCENARIOS / "halton-hills-peak-hour.yaml")
    first = simulate(scenario, 7).to_dict()
    other = simulate(scenario, 8).to_dict()
    sim = Simulation(scenario, 7, journal=True)
    again = sim.run().to_dict()
    assert first == again
    assert first != other

    # every state change came back from a router command: replaying them rebuilds the same router
    assert sim.journal
    replayed = Router(scenario.center, keep_finished=sim.router.keep_finished)
    replayed.replay_more(sim.journal)
    replayed.settle(again["simulated_until_s"])
    assert replayed.snapshot() == sim.router.snapshot()


# ----------------------------------------------------------------------------------------------
# (c) abandonment
def test_abandonment_counts_against_service_level_and_matches_erlang_a() -> None:
    """Callers who hang up produce abandons, and each counts against the offered service level
    (answered within T / (answered + abandoned)), which lands on Erlang A's.

    Note the direction against the same centre where nobody hangs up: the abandons shorten the
    line, so the calls that stay are answered sooner and the service level is *higher* than Erlang
    C's (Erlang A says so too), while fewer calls are answered."""
    model = MMC(60, 180, 4, 20)  # 3 Erlangs on 4 agents
    patient = simulate(load_scenario(mmc_data(model, 100)), 3)
    hasty = simulate(load_scenario(mmc_data(model, 400, patience_s=120)), 3)
    theory = erlang_a(60, 180, 4, 20, 120)
    print(f"\nno abandonment: SL {patient.service_level:.4f} (Erlang C "
          f"{erlang_c(60, 180, 4, 20).service_level:.4f}), ASA {patient.asa_s:.1f} s")
    print(f"patience 120 s: SL {hasty.service_level:.4f} (Erlang A {theory.service_level:.4f}), of answered "
          f"{hasty.service_levels['sl_answered']:.4f} (Erlang A {theory.sl_answered:.4f}), abandon rate "
          f"{hasty.abandon_rate:.4f} (Erlang A {theory.abandon_rate:.4f}), ASA {hasty.asa_s:.1f} s "
          f"(Erlang A {theory.asa_s:.1f} s)")

    assert patient.abandoned == 0 and patient.abandon_rate == 0.0
    assert hasty.abandoned > 0 and hasty.short_abandoned == 0
    assert hasty.answered + hasty.abandoned == pytest.approx(hasty.contacts, abs=10)  # the warm-up edge
    sl = hasty.service_levels
    assert sl["sl_offered"] < sl["sl_abandoned_after_t"] < sl["sl_answered"]
    assert hasty.service_level == sl["sl_offered"]
    assert theory.abandon_rate is not None
    assert abs(hasty.abandon_rate - theory.abandon_rate) <= 0.01
    assert abs(hasty.service_level - theory.service_level) <= 0.015
    assert abs(sl["sl_answered"] - theory.sl_answered) <= 0.015
    assert hasty.asa_s < patient.asa_s


# ----------------------------------------------------------------------------------------------
# (d) the wait estimator
def test_our_wait_estimate_beats_asterisks_holdtime_on_a_busy_queue() -> None:
    model = MMC(180, 180, 10, 20)  # 9 Erlangs on 10 agents: 90% occupancy, long and changing lines
    r = simulate(load_scenario(mmc_data(model, 100)), 1)
    print(f"\nbusy queue ({r.estimator_samples} callers who queued, SL {r.service_level:.3f}, ASA {r.asa_s:.1f} s): "
          f"ours MAE {r.ewt_mae_s:.1f} s (mean error {r.ewt_mean_error_s:+.1f} s) | Asterisk holdtime MAE "
          f"{r.asterisk_mae_s:.1f} s (mean error {r.asterisk_mean_error_s:+.1f} s)")
    assert r.estimator_samples > 1000
    assert r.ewt_mae_s is not None and r.asterisk_mae_s is not None
    assert r.ewt_mae_s < r.asterisk_mae_s
    q = r.queues["general"]
    assert (q.ewt_mae_s, q.asterisk_mae_s, q.estimator_samples) == (r.ewt_mae_s, r.asterisk_mae_s,
                                                                  r.estimator_samples)


def test_the_estimator_blends_its_forecasts_by_how_close_each_came() -> None:
    est = WaitEstimator()
    assert est.expected_wait(3, 20.0) == 60.0  # nothing seen yet: position x the fallback gap
    est.departed(0.0, 2)
    est.departed(10.0, 1)  # one gap of 10 s while someone waited
    assert est.forecasts(2, 99.0) == (20.0, 20.0, 0.0)  # by gap, by place (none learnt: by gap), Asterisk
    # a caller told 20 / 20 / 0 s at place 2 waited 50 s: 25 s per place learnt, errors 30 / 30 / 50 s
    est.answered(50.0, (2, (20.0, 20.0, 0.0)))
    assert est.place_s == 25.0 and est.asterisk_s == 12.5 and est.errors == (30.0, 30.0, 50.0)
    by_gap, by_place, asterisk = est.forecasts(2, 99.0)
    assert (by_gap, by_place, asterisk) == (20.0, 50.0, 12.5)
    weights = [1 / 31 ** 2, 1 / 31 ** 2, 1 / 51 ** 2]
    assert est.expected_wait(2, 99.0) == pytest.approx(
        (weights[0] * 20.0 + weights[1] * 50.0 + weights[2] * 12.5) / sum(weights))
    for _ in range(40):  # by place keeps landing on the real wait: it takes nearly all the weight
        est.answered(50.0, (2, est.forecasts(2, 99.0)))
    assert est.expected_wait(2, 99.0) == pytest.approx(50.0, abs=1.0)
    est.answered(7.0)  # a caller answered without queueing (nobody was told a wait): Asterisk's only
    assert est.place_s == pytest.approx(25.0) and est.asterisk_s == pytest.approx((3 * 50.0 + 7.0) / 4, abs=0.1)


def test_the_blended_estimate_beats_asterisk_where_the_gap_alone_did_not() -> None:
    """In the city scenarios small queues share their agents with big ones (French, billing). The gap
    forecast samples the line only while one stands, so it overestimated those callers' waits by a
    minute; the blend learns which forecast lands closest on each queue."""
    worse_than_asterisk = []
    for name in ("city-311-multichannel", "halton-hills-peak-hour", "oshawa-day"):
        scenario = load_scenario_file(SCENARIOS / f"{name}.yaml")
        sums: dict[str, dict[str, float]] = {}
        counts: dict[str, int] = {}
        for seed in range(1, 9):
            for q, res in simulate(scenario, seed).queues.items():
                counts[q] = counts.get(q, 0) + res.estimator_samples
                row = sums.setdefault(q, {})
                for method, mae in res.estimator_mae_s.items():
                    row[method] = row.get(method, 0.0) + (mae or 0.0) * res.estimator_samples
        print(f"\n{name}, 8 seeds, mean absolute error of the wait told to callers who queued:")
        for q, row in sums.items():
            if counts[q]:
                print(f"  {q:<10} n={counts[q]:5d} " + "  ".join(f"{m} {v / counts[q]:7.1f} s" for m, v in row.items()))
                if row["blend"] > row["asterisk"]:
                    worse_than_asterisk.append(f"{name}/{q} (n={counts[q]})")
        total = {m: sum(row[m] for row in sums.values()) / sum(counts.values()) for m in ("blend", "gap", "asterisk")}
        assert total["blend"] < total["asterisk"] and total["blend"] < total["gap"], (name, total)
        if name == "city-311-multichannel":
            french = {m: v / counts["french"] for m, v in sums["french"].items()}
            assert french["blend"] < french["gap"] / 2 and french["blend"] < french["asterisk"], french
    print(f"queues where Asterisk's holdtime is still closer: {', '.join(worse_than_asterisk) or 'none'}")
    assert len(worse_than_asterisk) <= 2  # the smallest two (chat, billing): a few dozen callers each


# ----------------------------------------------------------------------------------------------
# (e) the shipped scenarios through the CLI
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_runs_through_the_cli(cli_runs: dict[str, Any], name: str) -> None:
    run = cli_runs[name]
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout)
    print(f"\n{name}: {r['contacts']} contacts, SL {r['service_level']:.3f}, ASA {r['asa_s']:.1f} s, "
          f"abandon {r['abandon_rate']:.3f}, occupancy {r['occupancy']:.3f}, unserved {r['unserved']}")
    for key in ("contacts", "service_level", "asa_s", "abandon_rate", "occupancy", "service_levels", "queues",
                "ewt_mae_s", "asterisk_mae_s"):
        assert key in r
    assert r["contacts"] > 0
    assert 0.0 < r["service_level"] <= 1.0
    assert 0.0 <= r["abandon_rate"] < 0.2
    assert 0.3 < r["occupancy"] < 0.95
    assert set(r["service_levels"]) == {"sl_answered", "sl_offered", "sl_abandoned_after_t"}
    assert sum(q["contacts"] for q in r["queues"].values()) == r["contacts"]
    if r["measured_from_s"] == 0.0 or name == "oshawa-day":
        # no warm-up: every contact is accounted for
        assert r["contacts"] == r["answered"] + r["abandoned"] + r["short_abandoned"] + r["unserved"]


def test_halton_hills_peak_hour_is_about_51_calls() -> None:
    scenario = load_scenario_file(SCENARIOS / "halton-hills-peak-hour.yaml")
    measured = sum(sum(ct.rates_per_s[2:]) * scenario.interval_s for ct in scenario.contact_types)
    assert measured == pytest.approx(51)
    counts = [simulate(scenario, seed).contacts for seed in range(1, 21)]
    print(f"\nHalton Hills peak hour, 20 seeds: {statistics.mean(counts):.1f} calls on average")
    assert 45 <= statistics.mean(counts) <= 57


def test_oshawa_day_is_near_its_70_in_30_standard(cli_runs: dict[str, Any]) -> None:
    r = json.loads(cli_runs["oshawa-day"].stdout)
    calls = r["queues"]["calls"]
    print(f"\nOshawa calls: {calls['contacts']} offered, {100 * calls['service_level']:.1f}% within "
          f"{calls['sl_threshold_s']:g} s (standard 70%), ASA {calls['asa_s']:.1f} s, abandon "
          f"{100 * calls['abandon_rate']:.1f}%, occupancy {100 * r['occupancy']:.1f}%")
    assert calls["sl_threshold_s"] == 30
    assert abs(calls["contacts"] - 657) < 5 * math.sqrt(657)
    # staffed to meet 70% with a margin (the scenario's comment: about 81% over seeds 1-10)
    assert 0.65 <= calls["service_level"] <= 0.95
    assert calls["abandon_rate"] < 0.12
    assert r["queues"]["email"]["answered"] > 100


def test_multichannel_scenario_uses_every_channel_and_rona(cli_runs: dict[str, Any]) -> None:
    r = json.loads(cli_runs["city-311-multichannel"].stdout)
    for queue in r["queues"].values():
        assert queue["answered"] > 0, queue
    assert r["ronas"] > 0  # 1% of offers ring out


# ----------------------------------------------------------------------------------------------
# behaviour of the simulated world
def _small(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "small", "start": 0, "duration_s": 3600,
        "center": {"skills": ["general"],
                   "queues": {"q": {"skills": {"general": 1}, "offer_timeout_s": 15}},
                   "agents": {"a1": {"skills": {"general": 5}}, "a2": {"skills": {"general": 5}}}},
        "contact_types": {"call": {"queue": "q", "arrivals": {"per_hour": 40},
                                   "handle_time": {"distribution": "exponential", "mean_s": 120}}},
    }
    data.update(extra)
    return data


def test_shift_end_waits_for_the_agent_to_finish() -> None:
    data = _small(shifts=[{"agents": ["a1"], "start": 0, "end": 600}])
    data["contact_types"]["call"]["handle_time"] = {"distribution": "fixed", "value_s": 400}
    data["center"]["queues"]["q"]["wrap_up_s"] = 30
    sim = Simulation(load_scenario(data), 2, journal=True)
    sim.run()
    assert sim.journal is not None
    offers = [e for e in sim.journal if isinstance(e, ContactOffered) and e.agent == "a1"]
    logout = [e for e in sim.journal if isinstance(e, AgentLoggedOut) and e.agent == "a1"]
    wraps = [e for e in sim.journal if isinstance(e, WrapUpCompleted) and e.agent == "a1"]
    assert offers and all(e.t < 600 for e in offers)
    assert len(logout) == 1
    assert logout[0].t == max(w.t for w in wraps) > 600  # finished the call and its wrap-up first
    ended = {e.contact: e.t for e in sim.journal if isinstance(e, ContactEnded)}
    assert all(w.t == ended[w.contact] + 30 for w in wraps)  # the router's own wrap-up timer


def test_ring_delay_and_no_answer_exercise_rona() -> None:
    data = _small(ring_delay={"distribution": "fixed", "value_s": 4}, no_answer_probability=0.2,
                  rona_ready_after_s=50)
    data["center"]["rona_misses"] = 1
    data["center"]["agents"] = {f"a{i}": {"skills": {"general": 5}} for i in range(1, 5)}
    # a caller every agent has missed once is never offered again (the router's rule): let them hang up
    data["contact_types"]["call"]["patience"] = {"distribution": "exponential", "mean_s": 600}
    sim = Simulation(load_scenario(data), 5, journal=True)
    r = sim.run()
    assert sim.journal is not None
    assert r.ronas > 0
    offered = {}
    for e in sim.journal:
        if isinstance(e, ContactOffered):
            offered[(e.contact, e.agent)] = e.t
        elif isinstance(e, ContactAnswered):
            assert e.t == offered[(e.contact, e.agent)] + 4
    rona = [e for e in sim.journal if isinstance(e, AgentNotReady) and e.reason == RONA_REASON]
    assert rona
    for e in rona:  # back to ready 50 s later
        assert any(isinstance(x, AgentReady) and x.agent == e.agent and x.t == e.t + 50 for x in sim.journal)
    assert r.answered + r.abandoned + r.short_abandoned + r.unserved == r.contacts
    assert r.unserved == 0 and r.asa_s is not None and r.asa_s >= 4


def test_profile_rates_follow_the_intervals() -> None:
    data = _small(duration_s=3600)
    data["contact_types"]["call"]["arrivals"] = {"per_interval": [0, 40, 0, 20]}
    data["center"]["agents"] = {f"a{i}": {"skills": {"general": 5}} for i in range(20)}
    sim = Simulation(load_scenario(data), 1, journal=True)
    r = sim.run(intervals=True)
    by_interval = {row["interval_start"]: row["offered"] for row in r.intervals}
    assert by_interval.get(0.0, 0) == 0 and by_interval.get(1800.0, 0) == 0
    assert 20 <= by_interval[900.0] <= 60 and 5 <= by_interval[2700.0] <= 40
    assert r.intervals[0]["time"] == "00:15"


def test_times_of_day_are_not_read_as_base_60(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: t\nstart: 10:30\nend: 11:30\n" + _yaml_tail())
    scenario = load_scenario_file(path)
    assert (scenario.start, scenario.end) == (37800.0, 41400.0)


# ----------------------------------------------------------------------------------------------
# (f) bad scenarios
def _yaml_tail(queue: str = "q", dist: str = "exponential", level: int = 5, per_interval: str = "[3, 3, 3, 3]",
               shift_agent: str = "a1") -> str:
    return f"""center:
  skills: [general]
  queues:
    q: {{skills: {{general: 1}}}}
  agents:
    a1: {{skills: {{general: {level}}}}}
contact_types:
  call:
    queue: {queue}
    arrivals: {{per_interval: {per_interval}}}
    handle_time: {{distribution: {dist}, mean_s: 120}}
shifts:
  - {{agents: [{shift_agent}], start: "10:30", end: "11:30"}}
"""


@pytest.mark.parametrize(("tail", "field", "line"), [
    (_yaml_tail(queue="nowhere"), "contact_types.call.queue", 12),
    (_yaml_tail(dist="gamma"), "contact_types.call.handle_time.distribution", 14),
    (_yaml_tail(level=11), "center.agents.a1.skills.general", 9),
    (_yaml_tail(per_interval="[3, 3]"), "contact_types.call.arrivals.per_interval", 13),
    (_yaml_tail(shift_agent="ghost"), "shifts[0].agents[0]", 16),
])
def test_bad_scenario_exits_2_naming_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         tail: str, field: str, line: int) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nstart: \"10:30\"\nend: \"11:30\"\n" + tail)
    assert main(["simulate", "--scenario", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: {field}: " in err, err


def test_bad_scenario_files_through_the_command_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ncenter: [unclosed\n")
    many = tmp_path / "many.yaml"
    many.write_text("name: x\nduration_s: -5\nwarmup: 3\ncontact_types: {}\n")
    for path, expected in ((broken, ["(syntax)"]),
                           (tmp_path / "missing.yaml", ["(file)", "cannot read"]),
                           (many, ["duration_s: must be greater than 0", "warmup: unknown field",
                                   "center: required", "contact_types: at least one"])):
        run = subprocess.run([sys.executable, "-m", "engine.cli", "simulate", "--scenario", str(path), "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 2, run
        assert str(path) in run.stderr and run.stdout == ""
        for text in expected:
            assert text in run.stderr, run.stderr


def test_scenario_checks_name_their_fields() -> None:
    data = _small()
    data["contact_types"]["call"]["patience"] = {"distribution": "lognormal", "mean_s": 60}
    data["contact_types"]["chat"] = {"queue": "q", "channel": "chat", "arrivals": {"per_hour": 3},
                                     "handle_time": {"distribution": "fixed", "value_s": 60}}
    data["ring_delay"] = {"distribution": "none"}
    data["no_answer_probability"] = 1.5
    with pytest.raises(ConfigError) as caught:
        load_scenario(data)
    paths = {i.path for i in caught.value.issues}
    assert {"contact_types.call.patience.cv", "contact_types.chat", "ring_delay.distribution",
            "no_answer_probability"} <= paths, paths
