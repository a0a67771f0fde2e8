"""A contact's life through the router, one behaviour per test, on hand-built centers.

Each test also replays the journal into a fresh router and compares snapshots, so every path here
is covered by event sourcing too.
"""

from __future__ import annotations

import pytest

from acd import errors
from acd.model import RONA_REASON, AgentState, Channel, ContactState


def _replays(j) -> None:
    assert j.replayed().snapshot() == j.router.snapshot()


# ----------------------------------------------------------------------------------------------
# offer -> accept -> hold -> resume -> end -> wrap-up
def test_full_life_of_a_call_with_required_wrap_up_code(kit) -> None:
    center = kit.make_center(
        {"q": {"skills": {"general": 1}, "wrap_up_s": 30, "wrap_up_codes": ["resolved", "sr-created"],
               "wrap_up_code_required": True, "offer_timeout_s": 20}},
        {"ann": {"skills": {"general": 3}}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    assert r.agent_state("ann") is AgentState.AVAILABLE

    out = j("enqueue", kit.spec("c1"), 10.0)
    assert kit.kinds(out) == ["ContactQueued", "ContactOffered"]
    assert kit.offers(out) == [("c1", "ann")]
    assert out[1].deadline == 30.0
    assert r.agent_state("ann") is AgentState.RESERVED
    assert r.contacts["c1"].state is ContactState.OFFERED

    assert kit.kinds(j("accept", "c1", "ann", 14.0)) == ["ContactAnswered"]
    assert r.agent_state("ann") is AgentState.BUSY
    assert kit.kinds(j("hold", "c1", 20.0)) == ["ContactHeld"]
    assert r.contacts["c1"].state is ContactState.HELD
    with pytest.raises(errors.InvalidTransition):
        r.hold("c1", 21.0)
    assert kit.kinds(j("resume", "c1", 26.0)) == ["ContactResumed"]
    assert kit.kinds(j("end", "c1", 44.0)) == ["ContactEnded"]
    assert r.agent_state("ann") is AgentState.WRAP_UP
    # a required code: no timer closes wrap-up, and wrapping up without one is refused
    assert j("tick", 500.0) == []
    assert r.contacts["c1"].state is ContactState.WRAP_UP
    before = r.snapshot()
    with pytest.raises(errors.WrapUpCodeRequired):
        r.wrap_up("c1", 501.0)
    with pytest.raises(errors.InvalidWrapUpCode):
        r.wrap_up("c1", 501.0, "no-such-code")
    assert r.snapshot() == before
    out = j("wrap_up", "c1", 502.0, "resolved")
    assert kit.kinds(out) == ["WrapUpCompleted"] and out[0].code == "resolved"

    c = r.contacts["c1"]
    assert c.state is ContactState.COMPLETED and c.wrap_up_code == "resolved" and c.agent is None
    assert (c.talk_s, c.hold_s) == (30.0, 6.0)  # 14 -> 44 on the line, 6 of them held
    assert r.agent_state("ann") is AgentState.AVAILABLE
    assert [h["event"] for h in c.history] == ["queued", "answered", "ended", "completed"]
    with pytest.raises(errors.InvalidTransition):
        r.complete("c1", 503.0, "resolved")
    _replays(j)


def test_timed_wrap_up_ends_by_itself_and_frees_the_agent_for_the_next_contact(kit) -> None:
    center = kit.make_center({"q": {"wrap_up_s": 30}}, {"ann": {}})
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    j("accept", "c1", "ann", 1.0)
    j("enqueue", kit.spec("c2"), 2.0)
    j("end", "c1", 10.0)
    assert j("tick", 39.0) == []  # (the stale offer timer at 20 fires harmlessly)
    assert j.router.next_due() == 40.0
    out = j("tick", 40.0)
    assert kit.kinds(out) == ["WrapUpCompleted", "ContactOffered"]
    assert out[0].t == 40.0 and out[1].t == 40.0  # timers fire at their own time, not the tick's
    assert kit.offers(out) == [("c2", "ann")]
    _replays(j)


def test_next_due_skips_timers_that_can_no_longer_act(kit) -> None:
    """An answered offer's timeout and a finished wrap-up's timer are dropped, so nobody ticks for nothing;
    a missed offer back in line gets timers of its own again."""
    center = kit.make_center({"q": {"wrap_up_s": 30, "offer_timeout_s": 20}}, {"ann": {}, "bob": {}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    assert r.next_due() == 20.0  # the offer's timeout
    j("accept", "c1", "ann", 1.0)
    assert r.next_due() is None  # answered: the timeout can do nothing
    j("complete", "c1", 10.0, None)
    assert r.next_due() is None  # wrap-up finished at once: its timer (at 40) is dropped too

    j("enqueue", kit.spec("c2"), 11.0)
    assert r.next_due() == 31.0
    j("reject", "c2", "ann", 12.0)  # back in line; ann is skipped until 42 (decline_retry_s 30)
    assert r.next_due() == 42.0
    j("login", "bob", 13.0, ready=True)  # bob takes it: a new offer, a new timeout
    assert r.contacts["c2"].agent == "bob" and r.next_due() == 33.0
    assert kit.kinds(j("tick", 33.0)) == ["OfferMissed"]  # bob let it ring out; both skip it for now
    assert r.next_due() == 42.0  # ann's skip runs out first: the stale timeout at 31 was never ticked
    assert kit.offers(j("tick", 42.0)) == [("c2", "ann")]
    _replays(j)


def test_a_decline_running_out_while_the_contact_is_out_on_another_offer_still_brings_it_back(kit) -> None:
    """next_due() must not drop the skip's timer just because the contact is offered elsewhere for now."""
    center = kit.make_center({"q": {"offer_timeout_s": 20}}, {"ann": {}, "bob": {}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    j("reject", "c1", "ann", 1.0)  # ann is skipped until 31
    assert kit.offers(j("login", "bob", 15.0, ready=True)) == [("c1", "bob")]  # rings bob until 35
    assert r.next_due() == 31.0  # ann's skip, although c1 is out on bob's offer right now
    j("reject", "c1", "bob", 16.0)  # bob is skipped until 46
    assert r.next_due() == 31.0
    assert kit.offers(j("tick", 31.0)) == [("c1", "ann")]
    _replays(j)


# ----------------------------------------------------------------------------------------------
# missed offers
def test_rona_after_n_misses_and_contact_back_at_its_old_place(kit) -> None:
    center = kit.make_center({"q": {"offer_timeout_s": 10}}, {"ann": {}, "bob": {}}, rona_misses=2)
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 5.0)     # offered to ann at once
    j("enqueue", kit.spec("c2"), 6.0)     # waits behind it
    assert r.position("c2") == 1
    out = j("tick", 15.0)                 # ann lets it ring out: c1 back at the head, ann gets c2
    assert kit.kinds(out) == ["OfferMissed", "ContactOffered"]
    assert out[0].reason == "timeout"
    assert kit.offers(out) == [("c2", "ann")]
    c1 = r.contacts["c1"]
    assert c1.state is ContactState.QUEUED and c1.enqueued_at == 5.0 and r.position("c1") == 1
    assert r.agent_state("ann") is AgentState.RESERVED

    j("enqueue", kit.spec("c3"), 16.0)
    out = j("tick", 26.0)                 # second miss in a row: ann is made not ready, reason RONA
    assert kit.kinds(out) == ["OfferMissed", "AgentNotReady"]
    assert out[1].reason == RONA_REASON
    assert r.agent_state("ann") is AgentState.NOT_READY and r.agents["ann"].reason == RONA_REASON
    assert [c.id for c in r.waiting("q")] == ["c1", "c2", "c3"]

    out = j("login", "bob", 27.0, ready=True)  # the oldest goes first, age intact
    assert kit.offers(out) == [("c1", "bob")]
    assert r.contacts["c1"].enqueued_at == 5.0 and r.contacts["c2"].enqueued_at == 6.0
    assert r.stats.queues["q"].totals().ronas == 2
    _replays(j)


def test_station_busy_is_a_miss_with_reason_busy_and_the_contact_goes_to_the_next_agent(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {}, "bob": {}}, rona_misses=3)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("login", "bob", 1.0, ready=True)
    out = j("enqueue", kit.spec("c1"), 2.0)
    assert kit.offers(out) == [("c1", "ann")]  # longest idle
    out = j("reject", "c1", "ann", 3.0, reason="busy")
    assert kit.kinds(out) == ["OfferMissed", "ContactOffered"]
    assert out[0].reason == "busy" and kit.offers(out) == [("c1", "bob")]
    assert j.router.agents["ann"].presence.value == "ready"  # one miss is not a RONA
    # the agent who missed it is not offered it again, even when the other one misses too
    out = j("reject", "c1", "bob", 4.0)
    assert kit.kinds(out) == ["OfferMissed"]
    assert j.router.contacts["c1"].declined_by == {"ann": 33.0, "bob": 34.0}  # skipped for decline_retry_s
    _replays(j)


def test_a_decline_runs_out_so_the_only_qualified_agent_gets_the_contact_again(kit) -> None:
    """The only agent who can take it declines and stays ready: after `decline_retry_s` the contact is
    offered to them again rather than waiting beside them until the caller gives up."""
    center = kit.make_center({"q": {}}, {"ann": {}}, rona_misses=3, decline_retry_s=20)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    assert kit.offers(j("enqueue", kit.spec("c1"), 1.0)) == [("c1", "ann")]
    assert kit.kinds(j("reject", "c1", "ann", 2.0)) == ["OfferMissed"]
    assert j("tick", 21.9) == []  # still skipped
    out = j("tick", 22.0)
    assert kit.offers(out) == [("c1", "ann")] and out[0].t == 22.0
    assert j.router.contacts["c1"].enqueued_at == 1.0  # its age is kept
    _replays(j)


def test_declines_run_out_in_the_order_they_were_made(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {}, "bob": {}}, rona_misses=3, decline_retry_s=20)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("login", "bob", 0.5, ready=True)
    assert kit.offers(j("enqueue", kit.spec("c1"), 1.0)) == [("c1", "ann")]
    assert kit.offers(j("reject", "c1", "ann", 2.0)) == [("c1", "bob")]  # someone else first
    assert kit.offers(j("reject", "c1", "bob", 3.0)) == []
    assert kit.offers(j("tick", 30.0)) == [("c1", "ann")]  # ann's decline ran out first (at 22)
    j("accept", "c1", "ann", 31.0)
    assert j.router.contacts["c1"].declined_by == {}
    _replays(j)


def test_a_command_that_comes_late_for_a_decline_ending_does_not_pass_over_the_older_contact(kit) -> None:
    """Nobody ticked when ann's decline ran out (at 3): the next command, whatever it is, brings c1 back
    first, so the older caller is not passed over for a newer one (found by the property test)."""
    center = kit.make_center({"q": {}}, {"ann": {}}, rona_misses=3, decline_retry_s=3)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    assert kit.offers(j("reject", "c1", "ann", 0.0)) == []
    assert kit.offers(j("enqueue", kit.spec("c2"), 6.0)) == [("c1", "ann")]  # not c2: c1 is older
    _replays(j)


def test_declines_ending_together_give_the_agent_the_higher_priority_contact(kit) -> None:
    """Both declines end at 4; c1's comes first in the timer heap, but ann must get c2 (priority 1)."""
    center = kit.make_center({"q": {}}, {"ann": {}}, rona_misses=3, decline_retry_s=3)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1", priority=0), 0.0)
    j("enqueue", kit.spec("c2", priority=1), 0.0)
    assert kit.offers(j("reject", "c1", "ann", 1.0)) == [("c2", "ann")]
    assert kit.offers(j("reject", "c2", "ann", 1.0)) == []
    assert kit.offers(j("tick", 4.0)) == [("c2", "ann")]
    _replays(j)


def test_a_decline_ending_after_an_offer_times_out_in_the_same_tick_still_counts(kit) -> None:
    """At the start of tick(35) c1 is ringing bob; his offer times out at 15 and ann's decline ends at 30,
    both inside this one tick: ann must be offered c1 at 30 (found by the property test)."""
    center = kit.make_center({"q": {"offer_timeout_s": 10}}, {"ann": {}, "bob": {}}, rona_misses=3,
                             decline_retry_s=30)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    j("reject", "c1", "ann", 0.0, reason="busy")
    assert kit.offers(j("login", "bob", 5.0, ready=True)) == [("c1", "bob")]
    out = j("tick", 35.0)
    assert [(e.kind, e.t) for e in out] == [("OfferMissed", 15.0), ("ContactOffered", 30.0)]
    assert kit.offers(out) == [("c1", "ann")]
    _replays(j)


def test_any_late_command_brings_back_a_contact_whose_decline_ran_out(kit) -> None:
    center = kit.make_center({"q": {}, "other": {}}, {"ann": {}, "bob": {"capacity": {"chat": 1}}},
                             rona_misses=3, decline_retry_s=3)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("login", "bob", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    j("reject", "c1", "ann", 0.0)
    j("enqueue", kit.spec("chat1", "other", Channel.CHAT), 1.0)  # bob takes it: nothing for ann yet
    out = j("abandon", "chat1", 6.0)  # a command about something else, after ann's decline ran out
    assert kit.offers(out) == [("c1", "ann")]
    _replays(j)


def test_an_agent_back_from_rona_may_be_offered_the_contact_they_missed(kit) -> None:
    """The only qualified agent lets a call ring out, goes RONA, comes back: the caller must not wait
    for ever beside an idle agent. A miss excludes the agent only until they are ready again."""
    center = kit.make_center({"q": {"offer_timeout_s": 10}}, {"ann": {}}, rona_misses=1)
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    out = j("tick", 10.0)
    assert kit.kinds(out) == ["OfferMissed", "AgentNotReady"]
    out = j("set_ready", "ann", 30.0)
    assert kit.offers(out) == [("c1", "ann")]
    assert r.contacts["c1"].enqueued_at == 0.0 and r.contacts["c1"].offers == 2
    _replays(j)


def test_a_decline_is_remembered_while_the_agent_stays_ready(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {}, "bob": {}}, rona_misses=5)
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 1.0)
    j("enqueue", kit.spec("c2"), 2.0)
    out = j("reject", "c1", "ann", 3.0)  # ann skips c1 and is offered the next one
    assert kit.offers(out) == [("c2", "ann")]
    j("accept", "c2", "ann", 4.0)
    out = j("complete", "c2", 5.0)
    assert kit.offers(out) == []  # still ready: c1 is not pushed back at her
    out = j("set_not_ready", "ann", 6.0, "break") + j("set_ready", "ann", 7.0)
    assert kit.offers(out) == [("c1", "ann")]  # after a break she may take it
    _replays(j)


# ----------------------------------------------------------------------------------------------
# bullseye widening
def _bullseye(kit):
    return kit.make_center(
        {"q": {"skills": {"bylaw": 6}, "groups": ["core"], "offer_timeout_s": 5,
               "steps": [{"after_s": 30, "level_drop": 3},
                         {"after_s": 60, "add_groups": ["backup"]},
                         {"after_s": 90, "overflow_queues": ["general"]}]},
         "general": {"skills": {"general": 1}}},
        {"lowlevel": {"skills": {"bylaw": 3}, "groups": ["core"]},      # qualifies from ring 1
         "backup": {"skills": {"bylaw": 4}, "groups": ["backup"]},      # from ring 2
         "generalist": {"skills": {"general": 2}, "groups": ["other"]}},  # from ring 3 (overflow)
        rona_misses=5, decline_retry_s=300)  # misses stay skipped for the whole test


def test_widening_after_each_step_reaches_lower_level_then_extra_group_then_overflow_agents(kit) -> None:
    j = kit.Journal(_bullseye(kit))
    r = j.router
    for a in ("lowlevel", "backup", "generalist"):
        j("login", a, 0.0, ready=True)
    assert kit.kinds(j("enqueue", kit.spec("c1"), 0.0)) == ["ContactQueued"]  # nobody at level 6
    assert r.next_due() == 30.0
    assert j("tick", 29.9) == []

    out = j("tick", 30.0)
    assert kit.kinds(out) == ["ContactWidened", "ContactOffered"] and out[0].ring == 1
    assert kit.offers(out) == [("c1", "lowlevel")]
    j("reject", "c1", "lowlevel", 31.0)
    assert r.contacts["c1"].state is ContactState.QUEUED

    out = j("tick", 60.0)
    assert kit.kinds(out) == ["ContactWidened", "ContactOffered"] and out[0].ring == 2
    assert kit.offers(out) == [("c1", "backup")]
    j("reject", "c1", "backup", 61.0)

    out = j("tick", 92.0)
    assert kit.kinds(out) == ["ContactWidened", "ContactOffered"]
    assert out[0].ring == 3 and out[0].t == 90.0
    assert kit.offers(out) == [("c1", "generalist")]
    assert r.contacts["c1"].enqueued_at == 0.0  # widening never resets the age
    j("accept", "c1", "generalist", 93.0)
    assert r.stats.queues["q"].totals().answered == 1
    assert r.stats.queues["q"].totals().answer_wait_s == 93.0
    _replays(j)


def test_widening_fires_every_step_in_order_when_ticked_late(kit) -> None:
    j = kit.Journal(_bullseye(kit))
    j("enqueue", kit.spec("c1"), 0.0)
    out = j("tick", 200.0)  # nobody logged in: the contact widens step by step, at each due time
    assert [(e.kind, e.t, e.ring) for e in out] == [
        ("ContactWidened", 30.0, 1), ("ContactWidened", 60.0, 2), ("ContactWidened", 90.0, 3)]
    out = j("login", "generalist", 201.0, ready=True)
    assert kit.offers(out) == [("c1", "generalist")]
    _replays(j)


def test_a_contact_older_than_its_steps_on_arrival_enters_the_wide_ring(kit) -> None:
    """Age carried in from the IVR counts towards widening."""
    j = kit.Journal(_bullseye(kit))
    j("login", "backup", 0.0, ready=True)
    out = j("enqueue", kit.spec("c1", enqueued_at=35.0), 100.0)  # 65 s old on arrival: ring 2
    assert kit.offers(out) == [("c1", "backup")]
    assert j.router.contacts["c1"].ring == 2 and j.router.contacts["c1"].enqueued_at == 35.0


# ----------------------------------------------------------------------------------------------
# preferred agent and transfers
def test_preferred_agent_is_waited_for_until_the_timeout_then_anyone_qualified(kit) -> None:
    center = kit.make_center({"q": {"preferred_agent_timeout_s": 30}}, {"ann": {}, "bob": {}, "cy": {}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("login", "bob", 1.0, ready=True)
    j("login", "cy", 2.0)  # logged in, not ready
    out = j("enqueue", kit.spec("c1", preferred_agent="bob"), 10.0)
    assert kit.offers(out) == [("c1", "bob")]  # bob is free: he gets it although ann idled longer
    j("accept", "c1", "bob", 10.5)
    out = j("enqueue", kit.spec("c2", preferred_agent="cy"), 11.0)
    assert kit.offers(out) == []  # cy is not ready: ann may not take it yet
    assert r.contacts["c2"].restrict_to == "cy"
    assert j("tick", 40.9) == []
    out = j("tick", 41.0)
    assert kit.kinds(out) == ["ContactWidened", "ContactOffered"]
    assert kit.offers(out) == [("c2", "ann")]
    assert r.contacts["c2"].enqueued_at == 11.0 and r.contacts["c2"].restrict_to is None
    _replays(j)


def test_preferred_agent_who_can_never_take_it_does_not_hold_the_contact_back(kit) -> None:
    center = kit.make_center({"q": {"skills": {"taxes": 5}}},
                             {"ann": {"skills": {"taxes": 5}}, "bob": {"skills": {"taxes": 2}}})
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    out = j("enqueue", kit.spec("c1", preferred_agent="bob"), 1.0)
    assert kit.offers(out) == [("c1", "ann")]


def test_transfer_to_queue_and_to_agent_keeps_age_and_history(kit) -> None:
    center = kit.make_center(
        {"q": {"skills": {"general": 1}}, "taxes": {"skills": {"taxes": 4}, "preferred_agent_timeout_s": 20}},
        {"ann": {"skills": {"general": 2, "french": 2}}, "tia": {"skills": {"taxes": 6, "french": 1}},
         "tom": {"skills": {"taxes": 5, "french": 1}}, "tex": {"skills": {"taxes": 9}}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("login", "tia", 0.0, ready=True)
    j("login", "tex", 0.0, ready=True)  # idles longest, but has no French: the caller's own need is kept
    j("enqueue", kit.spec("c1", needs={"french": 1}), 5.0)
    j("accept", "c1", "ann", 6.0)
    out = j("transfer", "c1", 20.0, to_queue="taxes", note="asks about arrears")
    assert kit.kinds(out) == ["ContactTransferred", "ContactOffered"]
    assert kit.offers(out) == [("c1", "tia")]
    c = r.contacts["c1"]
    assert c.queue == "taxes" and c.enqueued_at == 5.0
    assert [(s.skill, s.min_level) for s in c.requirements] == [("french", 1), ("taxes", 4)]
    assert r.agent_state("ann") is AgentState.AVAILABLE  # a blind transfer frees the agent at once
    j("accept", "c1", "tia", 21.0)
    # tom is not ready yet: a transfer to him waits for him until the queue's preferred-agent timeout
    j("login", "tom", 22.0)
    out = j("transfer", "c1", 30.0, to_agent="tom", note="for tom")
    assert kit.offers(out) == []
    assert c.restrict_to == "tom" and c.restrict_until == 50.0
    out = j("set_ready", "tom", 35.0)
    assert kit.offers(out) == [("c1", "tom")]
    j("accept", "c1", "tom", 36.0)
    events = [h["event"] for h in c.history]
    assert events == ["queued", "answered", "transferred", "answered", "transferred", "answered"]
    assert [h.get("note") for h in c.history if h["event"] == "transferred"] == ["asks about arrears", "for tom"]
    assert c.enqueued_at == 5.0 and c.first_answered_at == 6.0
    assert r.stats.queues["q"].totals().transfers == 1 and r.stats.queues["taxes"].totals().transfers == 1
    # answered counted once, where it was first answered
    assert r.stats.queues["q"].totals().answered == 1 and r.stats.queues["taxes"].totals().answered == 0
    _replays(j)


# ----------------------------------------------------------------------------------------------
# abandons and callbacks
def test_abandon_records_time_waited_and_counts_short_abandons_apart(kit) -> None:
    center = kit.make_center({"q": {"short_abandon_s": 5, "sl_threshold_s": 20}}, {"ann": {}})
    j = kit.Journal(center)
    r = j.router
    j("enqueue", kit.spec("short"), 0.0)
    j("enqueue", kit.spec("long"), 1.0)
    j("enqueue", kit.spec("late"), 2.0)
    out = j("abandon", "short", 4.0)
    assert kit.kinds(out) == ["ContactAbandoned"] and (out[0].waited_s, out[0].short) == (4.0, True)
    out = j("abandon", "long", 11.0)
    assert (out[0].waited_s, out[0].short) == (10.0, False)
    out = j("abandon", "late", 32.0)
    assert (out[0].waited_s, out[0].short) == (30.0, False)
    t = r.stats.queues["q"].totals()
    assert (t.short_abandoned, t.abandoned, t.abandoned_after, t.abandon_wait_s) == (1, 2, 1, 40.0)
    assert r.waiting("q") == [] and r.contacts["long"].state is ContactState.ABANDONED
    with pytest.raises(errors.InvalidTransition):
        r.abandon("long", 40.0)
    _replays(j)


def test_abandon_while_ringing_frees_the_agent(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {}})
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    j("enqueue", kit.spec("c2"), 1.0)
    out = j("abandon", "c1", 8.0)
    assert kit.kinds(out) == ["ContactAbandoned", "ContactOffered"] and kit.offers(out) == [("c2", "ann")]
    with pytest.raises(errors.InvalidTransition):
        j.router.accept("c1", "ann", 9.0)
    _replays(j)


def test_scheduled_callback_enters_the_queue_at_its_time(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {"capacity": {"voice": 1, "callback": 1}}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    out = j("enqueue", kit.spec("cb", channel=Channel.CALLBACK, schedule_at=3600.0), 10.0)
    assert kit.kinds(out) == ["CallbackScheduled"]
    assert r.contacts["cb"].state is ContactState.SCHEDULED and r.waiting("q") == []
    assert r.next_due() == 3600.0
    assert j("tick", 3599.0) == []
    out = j("tick", 3600.0)
    assert kit.kinds(out) == ["CallbackDue", "ContactOffered"] and out[0].t == 3600.0
    assert kit.offers(out) == [("cb", "ann")]
    out = j("accept", "cb", "ann", 3605.0)
    # the wait of a booked callback runs from the time it was booked for, not from when it was booked
    assert r.stats.queues["q"].totals().answer_wait_s == 5.0
    _replays(j)


def test_scheduled_callback_can_be_cancelled_before_it_is_due(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {"capacity": {"callback": 1}}})
    j = kit.Journal(center)
    j("enqueue", kit.spec("cb", channel=Channel.CALLBACK, schedule_at=100.0), 0.0)
    j("abandon", "cb", 50.0)
    j("login", "ann", 60.0, ready=True)
    assert j("tick", 200.0) == []
    assert j.router.contacts["cb"].state is ContactState.ABANDONED
    t = j.router.stats.queues["q"].totals()  # a cancelled booking was never offered, nor abandoned
    assert (t.offered, t.abandoned, t.short_abandoned) == (0, 0, 0)
    _replays(j)


def test_callback_request_keeps_the_callers_place(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {"capacity": {"voice": 1, "callback": 1}}})
    j = kit.Journal(center)
    r = j.router
    j("enqueue", kit.spec("c1"), 0.0)
    j("enqueue", kit.spec("c2"), 5.0)
    out = j("request_callback", "c1", 20.0)
    assert kit.kinds(out) == ["CallbackRequested"]
    c1 = r.contacts["c1"]
    assert c1.channel is Channel.CALLBACK and c1.state is ContactState.QUEUED and c1.enqueued_at == 0.0
    assert r.position("c1") == 1 and r.position("c2") == 2
    out = j("login", "ann", 30.0, ready=True)
    assert kit.offers(out) == [("c1", "ann")]
    with pytest.raises(errors.InvalidTransition):
        r.request_callback("c1", 31.0)  # offered now, not waiting on the line
    _replays(j)


def test_callback_request_is_for_voice_contacts_only(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {"capacity": {"chat": 1}}})
    r = kit.Journal(center).router
    r.enqueue(kit.spec("chat1", channel=Channel.CHAT), 0.0)
    before = r.snapshot()
    with pytest.raises(errors.InvalidTransition):
        r.request_callback("chat1", 1.0)
    assert r.snapshot() == before


# ----------------------------------------------------------------------------------------------
# priority and ageing
def _priority_run(kit, boost: float) -> list[str]:
    """One agent; an old low-priority contact and a stream of newer high-priority ones."""
    center = kit.make_center({"q": {"priority_boost_per_s": boost}}, {"ann": {}})
    j = kit.Journal(center)
    j("enqueue", kit.spec("low", priority=0), 0.0)
    j("login", "ann", 1.0)
    served = []
    for i in range(8):
        t = 10.0 + 20 * i
        j("enqueue", kit.spec(f"high{i}", priority=5), t)
        out = j("set_ready", "ann", t + 1)
        (cid, _), = kit.offers(out)
        served.append(cid)
        j("accept", cid, "ann", t + 2)
        j("set_not_ready", "ann", t + 3, "break")  # so finishing does not pull the next contact
        j("complete", cid, t + 4)
    return served


def test_without_ageing_a_low_priority_contact_starves(kit) -> None:
    assert "low" not in _priority_run(kit, 0.0)


def test_priority_ageing_lets_an_old_low_priority_contact_beat_newer_high_priority_ones(kit) -> None:
    served = _priority_run(kit, 0.05)
    # low gains 0.05 a second: at t=111 it has 5.55 > 5 + 0.05*(111-110); at t=91 only 4.55
    assert served[:6] == ["high0", "high1", "high2", "high3", "high4", "low"]


def test_fifo_among_equal_contacts_and_priority_first(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {}})
    j = kit.Journal(center)
    for i, (cid, prio) in enumerate([("a", 0), ("b", 0), ("vip", 3), ("c", 0)]):
        j("enqueue", kit.spec(cid, priority=prio), float(i))
    assert [c.id for c in j.router.waiting("q")] == ["vip", "a", "b", "c"]
    assert [j.router.position(x) for x in ("vip", "a", "b", "c")] == [1, 2, 3, 4]
    j("login", "ann", 10.0)
    got = []
    for k in range(4):
        (cid, _), = kit.offers(j("set_ready", "ann", 11.0 + k))
        got.append(cid)
        j("accept", cid, "ann", 11.2 + k)
        j("set_not_ready", "ann", 11.3 + k, "break")
        j("complete", cid, 11.4 + k)
    assert got == ["vip", "a", "b", "c"]
    _replays(j)


# ----------------------------------------------------------------------------------------------
# multi-channel capacity
def test_multichannel_capacity_voice_blocks_chat_and_email_chat_three_email_alongside(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {"capacity": {"voice": 1, "chat": 3, "email": 1}}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    assert kit.offers(j("enqueue", kit.spec("v1"), 1.0)) == [("v1", "ann")]
    # on a call (even while it rings): no chat, no email
    assert kit.offers(j("enqueue", kit.spec("ch1", channel=Channel.CHAT), 2.0)) == []
    assert kit.offers(j("enqueue", kit.spec("em1", channel=Channel.EMAIL), 3.0)) == []
    j("accept", "v1", "ann", 4.0)
    out = j("complete", "v1", 10.0)
    # freed: the chat and the email both come at once (chat does not block email)
    assert sorted(kit.offers(out)) == [("ch1", "ann"), ("em1", "ann")]
    j("accept", "ch1", "ann", 11.0)
    j("accept", "em1", "ann", 11.0)
    offered = [kit.offers(j("enqueue", kit.spec(f"ch{i}", channel=Channel.CHAT), 12.0 + i)) for i in (2, 3, 4)]
    assert offered == [[("ch2", "ann")], [("ch3", "ann")], []]  # three chats at most
    assert r.agents["ann"].load == {Channel.CHAT: 3, Channel.EMAIL: 1}
    assert kit.offers(j("enqueue", kit.spec("em2", channel=Channel.EMAIL), 20.0)) == []  # email full
    out = j("complete", "em1", 21.0)
    assert kit.offers(out) == [("em2", "ann")]
    out = j("complete", "ch1", 22.0)
    assert kit.offers(out) == [("ch4", "ann")]
    _replays(j)


def test_custom_blocks_chat_blocks_voice(kit) -> None:
    center = kit.make_center({"q": {}}, {"ann": {"capacity": {"voice": 1, "chat": 2}}},
                             blocks={"voice": ["chat"], "chat": ["voice"]})
    j = kit.Journal(center)
    j("login", "ann", 0.0, ready=True)
    assert kit.offers(j("enqueue", kit.spec("ch1", channel=Channel.CHAT), 1.0)) == [("ch1", "ann")]
    assert kit.offers(j("enqueue", kit.spec("v1"), 2.0)) == []
    assert kit.offers(j("enqueue", kit.spec("ch2", channel=Channel.CHAT), 3.0)) == [("ch2", "ann")]


# ----------------------------------------------------------------------------------------------
# typed errors
def test_accepting_an_offer_that_timed_out_is_refused(kit) -> None:
    center = kit.make_center({"q": {"offer_timeout_s": 10}}, {"ann": {}, "bob": {}, "cy": {}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)
    before = r.snapshot()
    with pytest.raises(errors.OfferExpired):  # the deadline passed though no tick came yet
        r.accept("c1", "ann", 10.5)
    assert r.snapshot() == before
    j("tick", 11.0)
    with pytest.raises(errors.OfferExpired):  # and after the timeout was processed
        r.accept("c1", "ann", 11.5)
    assert kit.offers(j("login", "bob", 12.0, ready=True)) == [("c1", "bob")]
    with pytest.raises(errors.OfferExpired):
        r.accept("c1", "ann", 12.5)
    j("login", "cy", 13.0, ready=True)
    with pytest.raises(errors.NotYourContact):
        r.accept("c1", "cy", 13.5)
    j("accept", "c1", "bob", 14.0)


def test_unknown_ids_and_duplicates_are_typed_errors_and_change_nothing(kit) -> None:
    center = kit.make_center({"q": {"skills": {"general": 1}}}, {"ann": {"skills": {"general": 1}}})
    r = kit.Journal(center).router
    r.login("ann", 0.0, ready=True)
    r.enqueue(kit.spec("c1"), 1.0)
    before, now = r.snapshot(), r.now
    cases = [
        (errors.UnknownAgent, lambda: r.login("nobody", 2.0)),
        (errors.UnknownAgent, lambda: r.accept("c1", "nobody", 2.0)),
        (errors.UnknownContact, lambda: r.accept("zz", "ann", 2.0)),
        (errors.UnknownContact, lambda: r.hold("zz", 2.0)),
        (errors.UnknownQueue, lambda: r.enqueue(kit.spec("c2", queue="nope"), 2.0)),
        (errors.UnknownAgent, lambda: r.enqueue(kit.spec("c2", preferred_agent="nobody"), 2.0)),
        (errors.DuplicateContact, lambda: r.enqueue(kit.spec("c1"), 2.0)),
        (errors.InvalidContact, lambda: r.enqueue(kit.spec("c2", needs={"klingon": 1}), 2.0)),
        (errors.InvalidContact, lambda: r.enqueue(kit.spec("c2", needs={"general": 11}), 2.0)),
        (errors.InvalidTransition, lambda: r.login("ann", 2.0)),
        (errors.InvalidReason, lambda: r.set_not_ready("ann", 2.0, "nap")),
        (errors.AgentHasWork, lambda: r.logout("ann", 2.0)),
        (errors.InvalidTransition, lambda: r.hold("c1", 2.0)),
        (errors.InvalidTransition, lambda: r.end("c1", 2.0)),
        (errors.InvalidTransition, lambda: r.wrap_up("c1", 2.0)),
    ]
    for error, command in cases:
        with pytest.raises(error):
            command()
        assert r.snapshot() == before and r.now == now


def test_a_contact_moved_where_nobody_could_ever_take_it_is_refused(kit) -> None:
    center = kit.make_center(
        {"q": {"skills": {"general": 1}, "steps": [{"after_s": 30, "level_drop": 2}]},
         "taxes": {"skills": {"taxes": 3}}},
        {"ann": {"skills": {"general": 2, "french": 3}}, "tim": {"skills": {"taxes": 5}}})
    r = kit.Journal(center).router
    r.enqueue(kit.spec("c1", needs={"french": 5}, enqueued_at=-40.0), 0.0)  # french 5 drops to 3 at ring 1
    r.login("ann", 0.0, ready=True)
    r.accept("c1", "ann", 1.0)
    before = r.snapshot()
    with pytest.raises(errors.InvalidContact):
        r.transfer("c1", 3.0, to_queue="taxes")  # the caller's French comes along; tim has none
    assert r.snapshot() == before
    r.enqueue(kit.spec("c5"), 4.0)
    with pytest.raises(errors.InvalidContact):
        r.request_callback("c5", 5.0)  # the line would be lost: nobody makes callbacks here
    assert r.contacts["c5"].channel is Channel.VOICE and r.contacts["c5"].state is ContactState.QUEUED


def test_complete_twice_and_wrap_up_twice_are_refused(kit) -> None:
    center = kit.make_center({"q": {"wrap_up_s": 60}}, {"ann": {}})
    r = kit.Journal(center).router
    r.login("ann", 0.0, ready=True)
    r.enqueue(kit.spec("c1"), 0.0)
    r.accept("c1", "ann", 1.0)
    r.end("c1", 5.0)
    r.wrap_up("c1", 6.0)
    with pytest.raises(errors.InvalidTransition):
        r.wrap_up("c1", 7.0)
    r.enqueue(kit.spec("c2"), 8.0)
    r.accept("c2", "ann", 9.0)
    assert kit.kinds(r.complete("c2", 10.0)) == ["ContactEnded", "WrapUpCompleted"]
    before = r.snapshot()
    with pytest.raises(errors.InvalidTransition):
        r.complete("c2", 11.0)
    assert r.snapshot() == before


# ----------------------------------------------------------------------------------------------
# statistics
def test_interval_counters_and_the_three_service_levels_on_a_hand_computed_day(kit) -> None:
    center = kit.make_center(
        {"q": {"sl_threshold_s": 20, "short_abandon_s": 5, "wrap_up_codes": ["ok"],
               "wrap_up_code_required": True}},
        {"ann": {}})
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 0.0)      # offered at once
    j("enqueue", kit.spec("c2"), 5.0)
    j("enqueue", kit.spec("c3"), 6.0)
    j("enqueue", kit.spec("c4"), 7.0)
    j("abandon", "c3", 8.0)                # waited 2: short abandon
    j("accept", "c1", "ann", 10.0)         # waited 10: within 20
    j("enqueue", kit.spec("c5"), 12.0)
    j("abandon", "c5", 25.0)               # waited 13: abandoned, not after T
    j("hold", "c1", 30.0)
    j("resume", "c1", 40.0)
    j("abandon", "c4", 40.0)               # waited 33: abandoned after T
    j("end", "c1", 70.0)                   # talk 60 of which 10 on hold
    out = j("wrap_up", "c1", 80.0, "ok")   # wrap 10; ann free: c2 is offered
    assert kit.offers(out) == [("c2", "ann")]
    j("accept", "c2", "ann", 82.0)         # waited 77: outside 20
    j("complete", "c2", 100.0, "ok")       # talk 18, no hold, no wrap
    j("set_not_ready", "ann", 150.0, "break")
    rows = r.stats.interval_report("q")
    assert len(rows) == 1
    row = rows[0]
    assert row["interval_start"] == 0.0
    expected = {"offered": 5, "answered": 2, "answered_within": 1, "abandoned": 2, "abandoned_after": 1,
                "short_abandoned": 1, "handled": 2, "transfers": 0, "ronas": 0,
                "answer_wait_s": 87.0, "abandon_wait_s": 46.0, "talk_s": 68.0, "hold_s": 10.0, "wrap_s": 10.0,
                "asa_s": 43.5, "aht_s": 44.0,
                "sl_answered": 0.5, "sl_offered": 0.25, "sl_abandoned_after_t": pytest.approx(1 / 3)}
    assert {k: row[k] for k in expected} == expected
    # occupancy: ann busy 0-100 (ringing, talking, wrapping), idle 100-150, then away
    assert row["occupancy"] == pytest.approx(100 / 150)
    assert r.agents["ann"].occupancy(150.0) == pytest.approx(100 / 150)
    _replays(j)


def test_counters_fall_in_the_interval_of_their_event_and_count_transfers_and_ronas(kit) -> None:
    center = kit.make_center({"q": {"offer_timeout_s": 10}, "r": {}}, {"ann": {}, "bob": {}},
                             interval_s=900, rona_misses=1)
    j = kit.Journal(center)
    r = j.router
    j("login", "ann", 890.0, ready=True)
    j("enqueue", kit.spec("c1"), 895.0)
    j("tick", 905.0)                       # ann misses at 905 (second interval) and goes RONA
    assert r.agents["ann"].reason == RONA_REASON
    j("login", "bob", 906.0, ready=True)
    j("accept", "c1", "bob", 907.0)
    j("set_not_ready", "bob", 999.0, "break")
    j("transfer", "c1", 1000.0, to_queue="r")
    j("set_ready", "ann", 1001.0)          # ann is back and takes the transfer
    j("accept", "c1", "ann", 1002.0)
    j("complete", "c1", 1900.0)
    q = {row["interval_start"]: row for row in r.stats.interval_report("q")}
    assert q[0.0]["offered"] == 1 and q[0.0]["answered"] == 0 and q[0.0]["ronas"] == 0
    assert q[900.0]["ronas"] == 1 and q[900.0]["answered"] == 1 and q[900.0]["transfers"] == 1
    assert q[900.0]["answer_wait_s"] == 12.0
    rr = {row["interval_start"]: row for row in r.stats.interval_report("r")}
    assert rr[1800.0]["handled"] == 1
    assert rr[1800.0]["talk_s"] == (1000.0 - 907.0) + (1900.0 - 1002.0)
    assert rr[1800.0]["aht_s"] == rr[1800.0]["talk_s"]
    _replays(j)
