"""Configuration checks: an impossible center is refused at load, every issue naming its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from acd.config import load_center
from acd.errors import ConfigError
from acd.model import RONA_REASON, Channel, Strategy

GOOD: dict[str, Any] = {
    "skills": ["general", "bylaw", "french"],
    "queues": {
        "general": {"skills": {"general": 1}, "wrap_up_codes": ["resolved"], "wrap_up_code_required": True},
        "bylaw": {"skills": {"bylaw": 5}, "groups": ["enforcement"], "strategy": "best_skill",
                  "steps": [{"after_s": 30, "level_drop": 2}, {"after_s": 60, "add_groups": ["front"]},
                            {"after_s": 120, "overflow_queues": ["general"]}]},
    },
    "agents": {
        "ann": {"skills": {"general": 3, "bylaw": 6}, "groups": ["enforcement"],
                "capacity": {"voice": 1, "chat": 3, "email": 2}},
        "bob": {"skills": {"general": 2}, "groups": ["front"]},
    },
}


def _issues(mutate) -> dict[str, str]:
    data = copy.deepcopy(GOOD)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        load_center(data)
    return {i.path: i.message for i in info.value.issues}


def test_a_good_center_loads_with_typed_values_and_defaults() -> None:
    center = load_center(copy.deepcopy(GOOD))
    bylaw = center.queues["bylaw"]
    assert bylaw.strategy is Strategy.BEST_SKILL
    assert [s.after_s for s in bylaw.steps] == [30.0, 60.0, 120.0]
    assert bylaw.steps[2].overflow_queues == ("general",)
    assert center.agents["ann"].capacity == {Channel.VOICE: 1, Channel.CHAT: 3, Channel.EMAIL: 2}
    assert center.agents["bob"].capacity == {Channel.VOICE: 1}  # the default
    assert RONA_REASON in center.not_ready_reasons and center.rona_misses == 2


@pytest.mark.parametrize("mutate, path, words", [
    # a queue needs a skill nobody knows of
    (lambda d: d["queues"]["general"]["skills"].update(klingon=1), "queues.general.skills.klingon", "unknown skill"),
    # a skill level no agent has, even at the widest step
    (lambda d: d["queues"]["general"]["skills"].update(french=4), "queues.general.skills", "no configured agent"),
    (lambda d: d["queues"]["general"].update(steps=[{"after_s": -5, "level_drop": 1}]),
     "queues.general.steps[0].after_s", "at least 0"),
    (lambda d: d["queues"]["general"].update(offer_timeout_s=-1), "queues.general.offer_timeout_s", "greater than 0"),
    (lambda d: d["queues"]["general"].update(wrap_up_s=-3), "queues.general.wrap_up_s", "at least 0"),
    (lambda d: d["queues"]["general"].update(sl_threshold_s=0), "queues.general.sl_threshold_s", "greater than 0"),
    (lambda d: d["agents"]["bob"].update(capacity={"voice": 0}), "agents.bob.capacity.voice", "at least 1"),
    (lambda d: d["agents"]["bob"].update(capacity={}), "agents.bob.capacity", "at least one channel"),
    (lambda d: d["agents"]["bob"].update(capacity={"fax": 1}), "agents.bob.capacity.fax", "unknown channel"),
    (lambda d: d["queues"]["bylaw"]["steps"].__setitem__(1, {"after_s": 10}),
     "queues.bylaw.steps[1].after_s", "increasing"),
    (lambda d: d["queues"]["bylaw"]["steps"].__setitem__(1, {"after_s": 30}),
     "queues.bylaw.steps[1].after_s", "increasing"),
    (lambda d: d["queues"]["bylaw"]["steps"].append({"level_drop": 1}), "queues.bylaw.steps[3].after_s", "required"),
    (lambda d: d["queues"]["general"].update(wrap_up_codes=[]), "queues.general.wrap_up_code_required",
     "wrap_up_codes"),
    (lambda d: d["queues"]["general"].update(strategy="loudest_first"), "queues.general.strategy",
     "unknown strategy"),
    (lambda d: d["queues"]["general"].update(colour="red"), "queues.general.colour", "unknown field"),
    (lambda d: d["queues"]["bylaw"]["steps"][0].update(after=30), "queues.bylaw.steps[0].after", "unknown field"),
    (lambda d: d["agents"]["ann"].update(shift="early"), "agents.ann.shift", "unknown field"),
    (lambda d: d.update(colour="red"), "colour", "unknown field"),
    (lambda d: d["agents"]["ann"]["skills"].update(bylaw=11), "agents.ann.skills.bylaw", "1-10"),
    (lambda d: d["agents"]["ann"]["skills"].update(cooking=3), "agents.ann.skills.cooking", "unknown skill"),
    (lambda d: d["queues"]["bylaw"]["steps"][2].update(overflow_queues=["nope"]),
     "queues.bylaw.steps[2].overflow_queues", "unknown queue 'nope'"),
    (lambda d: d["queues"]["bylaw"].update(groups=["ghosts"]), "queues.bylaw.groups", "no agent is in group"),
    (lambda d: d["queues"]["bylaw"]["steps"][1].update(add_groups=["ghosts"]),
     "queues.bylaw.steps[1].add_groups", "no agent is in group"),
    (lambda d: d["queues"]["general"].update(linear_order=["zed"]), "queues.general.linear_order", "unknown agent"),
    (lambda d: d.update(rona_misses=0), "rona_misses", "at least 1"),
    (lambda d: d.update(decline_retry_s=0), "decline_retry_s", "greater than 0"),
    (lambda d: d.update(queues={}), "queues", "at least one queue"),
])
def test_impossible_configuration_is_refused_naming_the_field(mutate, path: str, words: str) -> None:
    issues = _issues(mutate)
    assert path in issues, issues
    assert words in issues[path]


def test_a_queue_only_servable_after_widening_is_accepted() -> None:
    """Nobody has bylaw 5 in the base ring, but the level drop and overflow make it servable."""
    data = copy.deepcopy(GOOD)
    data["agents"]["ann"]["skills"]["bylaw"] = 3
    center = load_center(data)
    assert center.queues["bylaw"].skills[0].min_level == 5


def test_a_queue_nobody_can_ever_serve_is_refused_even_with_steps() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["queues"]["bylaw"]["steps"] = [{"after_s": 30, "level_drop": 1}]  # 5 -> 4, and ann is gone
        del d["agents"]["ann"]

    issues = _issues(mutate)
    assert "queues.bylaw.skills" in issues or "queues.bylaw.groups" in issues


def test_every_issue_is_reported_at_once_and_root_prefixes_paths() -> None:
    data = copy.deepcopy(GOOD)
    data["queues"]["general"]["strategy"] = "nope"
    data["queues"]["bylaw"]["steps"][0]["after_s"] = -1
    data["agents"]["bob"]["capacity"] = {"voice": 0}
    with pytest.raises(ConfigError) as info:
        load_center(data, root="acd")
    paths = {i.path for i in info.value.issues}
    assert {"acd.queues.general.strategy", "acd.queues.bylaw.steps[0].after_s",
            "acd.agents.bob.capacity.voice"} <= paths
    assert "acd.queues.general.strategy" in str(info.value)


def test_wrong_types_are_reported_not_crashed_on() -> None:
    for mutate, path in [
        (lambda d: d["queues"]["general"].update(skills=["general"]), "queues.general.skills"),
        (lambda d: d["queues"]["bylaw"].update(steps={"after_s": 3}), "queues.bylaw.steps"),
        (lambda d: d["queues"]["general"].update(offer_timeout_s="soon"), "queues.general.offer_timeout_s"),
        (lambda d: d["agents"].update(cy="lazy"), "agents.cy"),
        (lambda d: d["agents"]["ann"].update(groups="enforcement"), "agents.ann.groups"),
    ]:
        assert path in _issues(mutate)
