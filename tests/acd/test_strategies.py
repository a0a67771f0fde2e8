"""Agent selection strategies, each on a case built so that it picks differently from longest idle."""

from __future__ import annotations

from acd.model import Channel, ContactSpec


def _center(kit, strategy: str, agents: dict | None = None, **queue):
    agents = agents or {"ann": {}, "bob": {}, "cy": {}}
    return kit.make_center({"q": {"strategy": strategy, **queue}}, agents)


def _serve(j, cid: str, t: float, *, hold_for: float = 1.0) -> str:
    """Enqueue a contact, let whoever is picked take and finish it; return who."""
    out = j("enqueue", ContactSpec(id=cid, queue="q"), t)
    (offered,) = [e for e in out if e.kind == "ContactOffered"]
    j("accept", cid, offered.agent, t)
    j("complete", cid, t + hold_for)
    return offered.agent


def _login_all(j, *agents: str, start: float = 0.0) -> None:
    for i, a in enumerate(agents):
        j("login", a, start + i, ready=True)


def test_longest_idle_picks_the_agent_free_the_longest(kit) -> None:
    j = kit.Journal(_center(kit, "longest_idle"))
    _login_all(j, "cy", "ann", "bob")  # cy idle since 0, ann 1, bob 2
    assert _serve(j, "c1", 10.0) == "cy"
    assert _serve(j, "c2", 20.0) == "ann"  # cy is idle since 11 now
    assert _serve(j, "c3", 30.0) == "bob"
    assert _serve(j, "c4", 40.0) == "cy"


def test_best_skill_picks_the_highest_level_on_what_the_contact_needs(kit) -> None:
    agents = {"ann": {"skills": {"taxes": 5, "french": 9}}, "bob": {"skills": {"taxes": 9, "french": 1}},
              "cy": {"skills": {"taxes": 7, "french": 4}}}
    center = kit.make_center({"q": {"strategy": "best_skill", "skills": {"taxes": 3}}}, agents)
    j = kit.Journal(center)
    _login_all(j, "ann", "cy", "bob")
    assert _serve(j, "c1", 10.0) == "bob"  # taxes 9
    out = j("enqueue", kit.spec("c2", needs={"french": 1}), 20.0)
    assert kit.offers(out) == [("c2", "ann")]  # taxes 5 + french 9 = 14 beats 11 and 10


def test_least_occupied_picks_the_agent_with_the_lowest_occupancy_not_the_longest_idle(kit) -> None:
    j = kit.Journal(_center(kit, "least_occupied", {"ann": {}, "bob": {}}))
    _login_all(j, "ann", "bob", start=0.0)
    assert _serve(j, "c1", 2.0, hold_for=98.0) == "ann"  # busy 2-100
    assert _serve(j, "c2", 101.0, hold_for=1.0) == "bob"  # busy 101-102
    # ann idles since 100 and bob since 102, so longest idle would pick ann; her occupancy is far higher
    assert j.router.agents["ann"].occupancy(110.0) > j.router.agents["bob"].occupancy(110.0)
    assert _serve(j, "c3", 110.0) == "bob"


def test_least_occupied_weighs_today_only_from_local_midnight(kit) -> None:
    """Yesterday's rush must not keep an agent from work today (the router may run for weeks)."""
    toronto = -5 * 3600.0  # local time = router time - 5 h: local midnight of day 1 is at 86400 + 18000
    midnight = 86400 + 18000
    j = kit.Journal(kit.make_center({"q": {"strategy": "least_occupied"}}, {"ann": {}, "bob": {}},
                                    day_offset_s=toronto))
    _login_all(j, "ann", "bob", start=0.0)
    assert _serve(j, "c1", 10.0, hold_for=midnight - 3610.0) == "ann"  # busy all yesterday, until 23:00
    ann, bob = j.router.agents["ann"], j.router.agents["bob"]
    # neither has worked today: the first call of the day goes to the longer idle, bob ...
    assert _serve(j, "c2", midnight + 3600.0, hold_for=1800.0) == "bob"  # 01:00-01:30
    # ... and now ann, with no work today, is the least occupied, though her whole-run occupancy is far higher
    days = j.router.days
    assert ann.occupancy(midnight + 7200.0, days) == 0.0
    assert bob.occupancy(midnight + 7200.0, days) == 0.25  # 30 min of 2 h
    assert ann.busy_s / ann.staffed_s > bob.busy_s / bob.staffed_s
    assert _serve(j, "c3", midnight + 7200.0) == "ann"


def test_occupancy_today_splits_a_span_at_local_midnight() -> None:
    from acd.local_days import UTC_DAYS
    from acd.model import AgentConfig
    from acd.reservations import Activity, AgentRuntime

    a = AgentRuntime(AgentConfig(id="ann"), 0)
    a.book_today(Activity.BUSY, 86400 - 600.0, 86400 + 300.0, UTC_DAYS)  # 23:50 to 00:05, busy
    assert (a.occ_day, a.busy_today_s, a.staffed_today_s) == (1, 300.0, 300.0)  # only the 5 min after midnight
    a.book_today(Activity.IDLE, 86400 + 300.0, 86400 + 900.0, UTC_DAYS)
    assert (a.busy_today_s, a.staffed_today_s) == (300.0, 900.0)
    a.book_today(Activity.IDLE, 2 * 86400 + 60.0, 2 * 86400 + 120.0, UTC_DAYS)  # the next day starts from nothing
    assert (a.occ_day, a.busy_today_s, a.staffed_today_s) == (2, 0.0, 60.0)


def test_today_begins_at_local_midnight_in_the_centres_zone_summer_and_winter(kit) -> None:
    """With a time zone, "today" follows the zone's midnight across daylight saving. In Toronto, bob
    takes two calls in the evening and ann one at 23:30: at 00:30 it is a new day for both, so
    fewest_contacts picks the longer idle, bob (were it still the same day, ann: 1 against 2). In January
    (UTC-5) and July (UTC-4) alike; a fixed offset would be an hour off for half the year."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/Toronto")
    j = kit.Journal(kit.make_center({"q": {"strategy": "fewest_contacts"}}, {"ann": {}, "bob": {}},
                                    timezone="America/Toronto"))
    r = j.router

    def at(month: int, day: int, hour: int, minute: int = 0) -> float:
        return datetime(2026, month, day, hour, minute, tzinfo=zone).timestamp()

    j("login", "bob", at(1, 1, 8), ready=True)
    j("login", "ann", at(1, 1, 8))
    for month in (1, 7):
        j("set_not_ready", "ann", at(month, 14, 19), "break")
        assert _serve(j, f"b1-{month}", at(month, 14, 20)) == "bob"
        assert _serve(j, f"b2-{month}", at(month, 14, 21)) == "bob"
        j("set_ready", "ann", at(month, 14, 21, 30))
        assert _serve(j, f"a-{month}", at(month, 14, 23, 30)) == "ann"  # none today against 2
        # half past midnight: a new local day, nobody has handled anything; bob has been idle longer
        assert _serve(j, f"n-{month}", at(month, 15, 0, 30)) == "bob"
        assert r.days.day(at(month, 15, 0, 30)) == r.days.day(at(month, 14, 23, 30)) + 1
        assert r.days.start(at(month, 15, 0, 30)) == at(month, 15, 0)
    # the zone's midnights are an hour apart in UTC between winter and summer
    assert at(1, 15, 0) % 86400 == 5 * 3600 and at(7, 15, 0) % 86400 == 4 * 3600


def test_local_days_across_the_clock_changes() -> None:
    """A day is 23 hours long when the clocks go forward and 25 when they go back; without a zone days
    are a fixed offset from UTC, as before."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from acd.local_days import LocalDays

    zone = ZoneInfo("America/Toronto")
    days = LocalDays("America/Toronto")

    def midnight(month: int, day: int) -> float:
        return datetime(2026, month, day, tzinfo=zone).timestamp()

    assert midnight(3, 9) - midnight(3, 8) == 23 * 3600  # 2026-03-08: clocks forward at 02:00
    assert midnight(11, 2) - midnight(11, 1) == 25 * 3600  # 2026-11-01: clocks back at 02:00
    for month, day in ((3, 8), (11, 1)):
        start, end = midnight(month, day), midnight(month, day + 1)
        for t in (start, start + 3 * 3600, end - 1):  # asked in and out of order: the kept bounds move
            assert days.start(t) == start and days.day(t) == days.day(start)
        assert days.day(end) == days.day(start) + 1 and days.start(end) == end
        assert days.day(start - 1) == days.day(start) - 1
    assert days.day(midnight(1, 1)) == (datetime(2026, 1, 1) - datetime(1970, 1, 1)).days
    fixed = LocalDays(offset_s=-18000.0)
    for t in (0.0, 18000.0, 86400.0 + 17999.0, 1.7e9):
        assert fixed.day(t) == int((t - 18000) // 86400) and fixed.start(t) == fixed.day(t) * 86400 + 18000
    assert LocalDays("America/Toronto") == days and hash(LocalDays("America/Toronto")) == hash(days)


def test_round_robin_remembers_who_was_last_across_contacts(kit) -> None:
    j = kit.Journal(_center(kit, "round_robin"))
    _login_all(j, "ann", "bob", "cy")
    picks = [_serve(j, f"c{i}", 10.0 + 10 * i) for i in range(7)]
    # every agent finishes at once, so idle time alone would keep picking whoever idled longest
    assert picks == ["ann", "bob", "cy", "ann", "bob", "cy", "ann"]
    # a busy agent is skipped and the turn moves on from whoever was offered last
    j("set_not_ready", "bob", 200.0, "break")
    assert [_serve(j, f"d{i}", 210.0 + 10 * i) for i in range(3)] == ["cy", "ann", "cy"]
    assert j.replayed().snapshot()["rr"] == j.router.snapshot()["rr"]


def test_round_robin_follows_the_linear_order_when_one_is_given(kit) -> None:
    j = kit.Journal(_center(kit, "round_robin", linear_order=["cy", "ann", "bob"]))
    _login_all(j, "ann", "bob", "cy")
    assert [_serve(j, f"c{i}", 10.0 + 10 * i) for i in range(4)] == ["cy", "ann", "bob", "cy"]


def test_round_robin_with_a_partial_linear_order_still_goes_round_in_order(kit) -> None:
    """Agents left out of `linear_order` follow it in configuration order; the turn wraps only after all."""
    agents = {"a": {}, "b": {}, "c": {}, "d": {}}
    j = kit.Journal(_center(kit, "round_robin", agents, linear_order=["c"]))
    _login_all(j, "a", "b", "c", "d")
    assert [_serve(j, f"x{i}", 10.0 + 10 * i) for i in range(5)] == ["c", "a", "b", "d", "c"]
    j("set_not_ready", "b", 100.0, "break")
    # after a, the next in turn is b (away), then d; c comes only after the wrap
    assert [_serve(j, f"y{i}", 110.0 + 10 * i) for i in range(3)] == ["a", "d", "c"]


def test_fewest_contacts_picks_the_agent_who_handled_fewest_today(kit) -> None:
    j = kit.Journal(_center(kit, "fewest_contacts"))
    _login_all(j, "ann", "bob")
    for i in range(3):  # ann handles two, bob one
        _serve(j, f"c{i}", 10.0 + 10 * i)
    assert (j.router.agents["ann"].handled_today, j.router.agents["bob"].handled_today) == (2, 1)
    j("login", "cy", 100.0, ready=True)  # idled least, handled none
    assert _serve(j, "c3", 101.0) == "cy"
    assert _serve(j, "c4", 110.0) == "bob"  # bob 1, cy 1, ann 2: bob has idled longer than cy


def test_fewest_contacts_starts_from_zero_each_day(kit) -> None:
    j = kit.Journal(_center(kit, "fewest_contacts", {"ann": {}, "bob": {}}))
    _login_all(j, "ann", "bob")
    for i in range(4):  # yesterday ann handled 3, bob 1 (picks alternate 1-1 then ann ahead)
        _serve(j, f"c{i}", 10.0 + 10 * i)
    j("set_not_ready", "bob", 50.0, "break")
    for i in range(2):
        _serve(j, f"x{i}", 60.0 + 10 * i)
    assert (j.router.agents["ann"].handled_today, j.router.agents["bob"].handled_today) == (4, 2)
    day2 = 86400.0 + 100
    j("set_ready", "bob", day2 - 10)
    assert _serve(j, "d1", day2) == "ann"  # both 0 today; ann idled longer
    # today: ann 1, bob 0: bob next, though yesterday's totals would say otherwise
    assert _serve(j, "d2", day2 + 10) == "bob"


def test_contacts_today_reads_zero_on_a_new_day_before_the_first_answer(kit) -> None:
    """What the desk and the supervisor show as "contacts today": yesterday's count is gone at midnight,
    not when the agent answers their first contact of the new day."""
    from engine.api.views import agent_view

    j = kit.Journal(_center(kit, "fewest_contacts", {"ann": {}}))
    _login_all(j, "ann")
    for i in range(3):
        _serve(j, f"c{i}", 10.0 + 10 * i)
    assert agent_view(j.router, "ann", None)["handled_today"] == 3
    j.router.tick(86400.0 + 5)  # the clock passes midnight; ann has answered nothing yet today
    assert j.router.agents["ann"].handled_today == 3  # the raw counter waits for the day's first answer
    assert agent_view(j.router, "ann", None)["handled_today"] == 0
    _serve(j, "d1", 86400.0 + 60)
    assert agent_view(j.router, "ann", None)["handled_today"] == 1


def test_linear_hunts_in_the_configured_order(kit) -> None:
    j = kit.Journal(_center(kit, "linear", linear_order=["cy", "ann", "bob"]))
    _login_all(j, "ann", "bob", "cy")
    assert [_serve(j, f"c{i}", 10.0 + 10 * i) for i in range(3)] == ["cy", "cy", "cy"]
    out = j("enqueue", kit.spec("d1"), 100.0)
    assert kit.offers(out) == [("d1", "cy")]
    out = j("enqueue", kit.spec("d2"), 101.0)
    assert kit.offers(out) == [("d2", "ann")]
    out = j("enqueue", kit.spec("d3"), 102.0)
    assert kit.offers(out) == [("d3", "bob")]


def test_linear_without_an_order_uses_configuration_order(kit) -> None:
    j = kit.Journal(_center(kit, "linear"))
    _login_all(j, "cy", "bob", "ann")
    assert [_serve(j, f"c{i}", 10.0 + 10 * i) for i in range(2)] == ["ann", "ann"]


def _random_picks(kit, seed: int) -> list[str]:
    agents = {f"a{i}": {} for i in range(5)}
    j = kit.Journal(_center(kit, "random", agents, random_seed=seed))
    _login_all(j, *agents)
    picks = [_serve(j, f"c{i}", 10.0 + 10 * i) for i in range(20)]
    assert j.replayed().snapshot() == j.router.snapshot()
    return picks


def test_random_is_reproducible_by_seed_and_differs_between_seeds(kit) -> None:
    first, again, other = _random_picks(kit, 7), _random_picks(kit, 7), _random_picks(kit, 8)
    assert first == again
    assert first != other
    assert len(set(first)) >= 3  # it does spread the work


def test_strategies_only_choose_among_free_qualified_agents(kit) -> None:
    agents = {"ann": {"skills": {"taxes": 9}}, "bob": {"skills": {"taxes": 2}},
              "cy": {"skills": {"taxes": 6}, "capacity": {"chat": 2}}}
    for strategy in ("longest_idle", "best_skill", "least_occupied", "round_robin", "fewest_contacts",
                     "linear", "random"):
        center = kit.make_center({"q": {"strategy": strategy, "skills": {"taxes": 5}}}, agents)
        j = kit.Journal(center)
        _login_all(j, "bob", "cy", "ann")
        out = j("enqueue", kit.spec("v"), 10.0)
        assert kit.offers(out) == [("v", "ann")], strategy  # bob lacks the level, cy takes no voice
        out = j("enqueue", kit.spec("ch", channel=Channel.CHAT), 11.0)
        assert kit.offers(out) == [("ch", "cy")], strategy
