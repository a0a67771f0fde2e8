"""The routing benchmark: its CLI prints the figures it promises, and the real router makes exactly the
choices of the naive full scan on the same workload (a correctness check of the router's indexing).
No timing is asserted: speed is what the benchmark prints."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from acd.config import load_center
from acd.events import ContactWidened
from acd.model import ContactSpec, SkillRequirement
from acd.router import Router
from engine.bench.routing import (
    Arrival,
    Assignment,
    CountingRouterSystem,
    NaiveSystem,
    RouterSystem,
    build_center,
    drive,
    first_difference,
)
from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]

TOP_KEYS = {"decisions_per_s", "p50_us", "p99_us", "peak_rss_mb", "baseline_decisions_per_s", "scaling",
            "baseline_agrees", "phases_mean_us", "goal"}
ROW_KEYS = {"waiting", "decisions_per_s", "p50_us", "p99_us", "mean_us", "baseline_decisions_per_s",
            "position_mean_us"}


class Tally:
    """Counts the assignments each kind of call makes (freed agent, arrival, widening)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = inner.name
        self.made: Counter[str] = Counter()

    def _count(self, kind: str, made: list[Assignment]) -> list[Assignment]:
        self.made[kind] += len(made)
        return made

    def start(self, t: float) -> list[Assignment]:
        return self._count("start", self.inner.start(t))

    def advance(self, t: float) -> list[Assignment]:
        return self._count("advance", self.inner.advance(t))

    def arrive(self, arrival: Arrival, t: float) -> list[Assignment]:
        return self._count("arrive", self.inner.arrive(arrival, t))

    def finish(self, contact: str, agent: str, code: str, t: float) -> list[Assignment]:
        return self._count("finish", self.inner.finish(contact, agent, code, t))


def test_cli_prints_json_with_every_figure() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "bench", "routing", "--agents", "30", "--skills", "8",
         "--waiting", "80", "--decisions", "300", "--baseline-decisions", "60", "--scaling", "20,80",
         "--seed", "3", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert TOP_KEYS <= result.keys()
    assert (result["agents"], result["skills"], result["waiting"], result["seed"]) == (30, 8, 80, 3)
    assert result["decisions"] == 300 and result["baseline_decisions"] == 60
    for key in ("decisions_per_s", "p50_us", "p99_us", "peak_rss_mb", "baseline_decisions_per_s"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    assert result["p50_us"] <= result["p99_us"]
    assert [row["waiting"] for row in result["scaling"]] == [20, 80]
    for row in result["scaling"]:
        assert ROW_KEYS <= row.keys()
        assert row["decisions_per_s"] > 0 and 0 < row["p50_us"] <= row["p99_us"]
        assert row["position_mean_us"] > 0  # a waiting caller's place was asked and timed
    assert result["baseline_agrees"] is True and result["baseline_compared_assignments"] > 60
    assert set(result["phases_mean_us"]) == {"tick", "complete_accept", "enqueue"}


def test_cli_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "routing", "--agents", "20", "--skills", "6", "--waiting", "30", "--decisions", "100",
                 "--baseline-decisions", "30", "--scaling", "10,30"])
    out = capsys.readouterr().out
    assert code == 0
    assert "decisions/s" in out and "same choices as the baseline: yes" in out
    assert out.count("\n") >= 10


@pytest.mark.parametrize("agents, skills, waiting, seed", [
    (40, 12, 200, 1), (40, 12, 200, 2), (60, 30, 500, 3), (200, 25, 100, 4), (30, 6, 30, 5), (60, 20, 5, 1),
])
def test_router_and_naive_scan_choose_the_same_contacts(agents: int, skills: int, waiting: int, seed: int) -> None:
    center = build_center(agents, skills, seed)
    router = CountingRouterSystem(center)
    tallied = Tally(router)
    naive = Tally(NaiveSystem(center))
    ran = drive(tallied, center, waiting=waiting, decisions=400, seed=seed)
    scanned = drive(naive, center, waiting=waiting, decisions=400, seed=seed)

    assert first_difference(ran.assignments, scanned.assignments) is None
    assert ran.assignments == scanned.assignments
    assert len(ran.assignments) >= 400 and sum(tallied.made.values()) == len(ran.assignments)
    assert tallied.made == naive.made
    # the workload exercised what it claims: freed agents choosing, arrivals to idle agents, bullseye steps
    assert tallied.made["finish"] > 100 and tallied.made["arrive"] >= min(agents, 30)
    assert router.events["ContactWidened"] > 0 and router.events["WrapUpCompleted"] >= 400
    # the line is kept at `waiting`, and the router agrees
    assert ran.waiting_end == waiting
    assert sum(len(router.router.waiting(q)) for q in center.queues) == waiting


def test_a_widened_contact_goes_to_an_idle_agent_in_both() -> None:
    # with few waiting, agents go idle and a contact's bullseye step is what lets one take it
    center = build_center(60, 20, 1)
    ran = Tally(RouterSystem(center))
    scanned = Tally(NaiveSystem(center))
    a = drive(ran, center, waiting=5, decisions=800, seed=1)
    b = drive(scanned, center, waiting=5, decisions=800, seed=1)
    assert a.assignments == b.assignments
    assert ran.made["advance"] > 0 and ran.made == scanned.made


def test_naive_scan_follows_the_rule_on_a_worked_case() -> None:
    """The yardstick itself: highest ageing priority, then oldest, among what the agent can take."""
    center = load_center({
        "skills": ["roads", "water", "french"],
        "agents": {"ann": {"skills": {"roads": 5, "water": 5}}},
        "queues": {
            "q_roads": {"skills": {"roads": 1}, "priority_boost_per_s": 0.1},
            "q_water": {"skills": {"water": 1}},
        },
    })
    naive = NaiveSystem(center)
    naive.start(0.0)
    naive.agents["ann"].idle = False  # busy with something else while these arrive

    def arrive(cid: str, queue: str, t: float, priority: int = 0, needs: tuple[SkillRequirement, ...] = ()) -> None:
        assert naive.arrive(Arrival(ContactSpec(cid, queue, requirements=needs, priority=priority), 60.0, "x"),
                            t) == []

    arrive("old_water", "q_water", 0.0, priority=2)
    arrive("french_roads", "q_roads", 1.0, needs=(SkillRequirement("french", 3),))  # ann has no French
    arrive("roads", "q_roads", 5.0)  # ageing: 0 + 0.1 * (t - 5)
    arrive("hot_water", "q_water", 10.0, priority=3)
    # at t=20: roads has 1.5, old_water 2, hot_water 3 -> hot_water
    assert naive.finish("x", "ann", "x", 20.0) == [("hot_water", "ann", 20.0)]
    # at t=40: roads 3.5, old_water 2 -> roads; french_roads is never hers
    assert naive.finish("x", "ann", "x", 40.0) == [("roads", "ann", 40.0)]
    assert naive.finish("x", "ann", "x", 41.0) == [("old_water", "ann", 41.0)]
    assert naive.finish("x", "ann", "x", 42.0) == []
    assert list(naive.waiting) == ["french_roads"]


def test_router_widens_at_the_step_even_when_the_age_rounds_below_it() -> None:
    """Found by the baseline: at t = enqueued_at + after_s, t - enqueued_at can round below after_s
    (941.5812847916483 + 180 - 941.5812847916483 = 179.9999999999999), and the step was lost for good."""
    center = load_center({
        "skills": ["roads"],
        "agents": {"ann": {"skills": {"roads": 2}}},
        "queues": {"q": {"skills": {"roads": 1}, "steps": [{"after_s": 60}, {"after_s": 180}]}},
    })
    enqueued = 941.5812847916483
    assert (enqueued + 180.0) - enqueued < 180.0  # the rounding this test is about
    router = Router(center)
    router.enqueue(ContactSpec("c1", "q", requirements=(SkillRequirement("roads", 3),)), enqueued)
    rings = []
    while (due := router.next_due()) is not None:
        rings += [e.ring for e in router.tick(due) if isinstance(e, ContactWidened)]
    assert rings == [1, 2]
    assert router.contacts["c1"].ring == 2


def test_bench_simulate_is_wired_to_its_module(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import engine.bench.simulate  # noqa: F401
    except ModuleNotFoundError:
        assert main(["bench", "simulate", "--json"]) == 2
        assert "not installed" in capsys.readouterr().err
        return
    with pytest.raises(SystemExit) as stop:
        main(["bench", "simulate", "--help"])
    assert stop.value.code == 0
    usage = capsys.readouterr().out
    assert "switchboard bench simulate" in usage and "--json" in usage
