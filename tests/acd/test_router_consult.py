"""Consult (warm transfer), conference and hand-over to an outside number: `Router.consult`,
`consult_complete`, `consult_cancel` and the two events they emit (ConsultStarted, ConsultEnded).

Each test also replays the journal into a fresh router and compares snapshots, and round-trips the
events through `to_dict` / `from_dict` (the engine's journal format).
"""

from __future__ import annotations

import pytest

from acd import errors
from acd.events import from_dict, to_dict
from acd.model import AgentState, Channel, ContactState


def _replays(j) -> None:
    assert j.replayed().snapshot() == j.router.snapshot()
    assert [from_dict(to_dict(e)) for e in j.events] == j.events


def _center(kit, **queue):
    return kit.make_center({"q": {"skills": {"general": 1}, "offer_timeout_s": 20, **queue}},
                           {"ann": {"skills": {"general": 3}}, "bob": {"skills": {"general": 3}},
                            "cy": {"skills": {"general": 3}}})


def _connected(kit, **queue):
    """ann talking to c1; bob and cy ready and idle."""
    j = kit.Journal(_center(kit, **queue))
    for a in ("ann", "bob", "cy"):
        j("login", a, 0.0, ready=True)
    j("enqueue", kit.spec("c1"), 1.0)
    offered = j.router.contacts["c1"].agent
    assert offered == "ann"  # longest idle first: configuration order breaks the tie
    j("accept", "c1", "ann", 2.0)
    return j


def test_consult_reserves_the_target_who_then_takes_the_contact_over_with_its_history(kit) -> None:
    j = _connected(kit)
    r = j.router
    j("hold", "c1", 10.0)
    out = j("consult", "c1", 11.0, to_agent="bob", note="resident asks about arrears")
    assert kit.kinds(out) == ["ConsultStarted"]
    assert r.agent_state("bob") is AgentState.RESERVED
    # bob is reserved: a new caller goes to cy, never to bob
    out = j("enqueue", kit.spec("c2"), 12.0)
    assert kit.offers(out) == [("c2", "cy")]
    j("accept", "c2", "cy", 13.0)
    out = j("enqueue", kit.spec("c3"), 14.0)
    assert kit.offers(out) == []  # nobody free: bob stays reserved for the consult
    started = r.consult_of("c1")
    assert (started["from_agent"], started["agent"], started["note"]) == ("ann", "bob", "resident asks about arrears")

    out = j("consult_complete", "c1", 30.0)
    assert kit.kinds(out) == ["ConsultEnded", "ContactOffered"]  # ann is free and takes the waiting c3
    assert kit.offers(out) == [("c3", "ann")]
    c = r.contacts["c1"]
    assert c.state is ContactState.CONNECTED and c.agent == "bob"
    assert c.hold_s == 20.0  # held from 10 to 30 while ann consulted bob
    assert r.agent_state("bob") is AgentState.BUSY
    assert r.consult_of("c1") is None
    done = c.history[-1]
    assert done["event"] == "consult_ended" and done["outcome"] == "completed"
    assert done["from_agent"] == "ann" and done["agent"] == "bob"
    assert done["note"] == "resident asks about arrears"
    assert [h["event"] for h in c.history][:2] == ["queued", "answered"]  # history kept

    j("complete", "c1", 60.0)
    assert r.contacts["c1"].state is ContactState.COMPLETED
    assert r.stats.counters("q", 60.0).transfers == 1
    assert c.talk_s == (30.0 - 2.0) + (60.0 - 30.0)
    _replays(j)


def test_cancelled_consult_releases_the_target_and_leaves_the_contact_with_its_agent(kit) -> None:
    j = _connected(kit)
    r = j.router
    j("consult", "c1", 5.0, to_agent="bob")
    out = j("consult_cancel", "c1", 8.0)
    assert kit.kinds(out) == ["ConsultEnded"]
    assert r.contacts["c1"].agent == "ann" and r.contacts["c1"].state is ContactState.CONNECTED
    assert r.agent_state("bob") is AgentState.AVAILABLE
    out = j("enqueue", kit.spec("c2"), 9.0)
    assert kit.offers(out) == [("c2", "bob")]  # free again
    assert r.contacts["c1"].history[-1]["outcome"] == "cancelled"
    _replays(j)


def test_outside_number_hand_over_ends_the_conversation_for_the_agent(kit) -> None:
    j = _connected(kit, wrap_up_s=15)
    r = j.router
    out = j("consult", "c1", 5.0, to_number="311", purpose="transfer", note="regional 311")
    assert kit.kinds(out) == ["ConsultStarted"]
    assert r.agent_state("bob") is AgentState.AVAILABLE  # nobody reserved for an outside number
    out = j("consult_complete", "c1", 9.0)
    assert kit.kinds(out) == ["ConsultEnded", "ContactEnded"]
    c = r.contacts["c1"]
    assert c.state is ContactState.WRAP_UP and c.agent == "ann"
    assert c.history[-2]["to_number"] == "311" and c.history[-2]["purpose"] == "transfer"
    out = j("tick", 24.0)
    assert kit.kinds(out) == ["WrapUpCompleted"]
    _replays(j)


def test_consult_cancel_is_allowed_after_the_contact_ended(kit) -> None:
    """The caller hung up mid-consult: the engine ends the contact, then lets the target go."""
    j = _connected(kit)
    r = j.router
    j("consult", "c1", 5.0, to_agent="bob", purpose="conference")
    j("end", "c1", 6.0)
    assert r.agent_state("bob") is AgentState.RESERVED
    j("consult_cancel", "c1", 6.5)
    assert r.agent_state("bob") is AgentState.AVAILABLE
    with pytest.raises(errors.InvalidTransition, match="no consult"):
        j("consult_cancel", "c1", 7.0)
    _replays(j)


@pytest.mark.parametrize("kw, message", [
    ({"to_agent": "bob", "to_number": "311"}, "exactly one"),
    ({}, "exactly one"),
    ({"to_agent": "ann"}, "already has contact"),
    ({"to_agent": "zed"}, "unknown agent"),
    ({"to_agent": "bob", "purpose": "gossip"}, "unknown purpose"),
])
def test_bad_consults_change_nothing(kit, kw, message) -> None:
    j = _connected(kit)
    before = j.router.snapshot()
    with pytest.raises(errors.AcdError, match=message):
        j("consult", "c1", 5.0, **kw)
    assert j.router.snapshot() == before


def test_consult_needs_a_connected_contact_and_an_available_target(kit) -> None:
    j = _connected(kit)
    r = j.router
    j("set_not_ready", "bob", 3.0, "break")
    with pytest.raises(errors.InvalidTransition, match="not available"):
        j("consult", "c1", 4.0, to_agent="bob")
    j("enqueue", kit.spec("c2"), 4.5)  # offered to cy
    with pytest.raises(errors.InvalidTransition, match="not available"):
        j("consult", "c1", 5.0, to_agent="cy")  # cy has an offer: her voice slot is taken
    with pytest.raises(errors.InvalidTransition, match="cannot consult"):
        j("consult", "c2", 5.0, to_agent="bob")  # c2 is only offered
    j("consult", "c1", 6.0, to_number="9055550100")
    with pytest.raises(errors.InvalidTransition, match="already has a third party"):
        j("consult", "c1", 7.0, to_number="311")
    with pytest.raises(errors.InvalidTransition, match="no consult"):
        j("consult_complete", "c2", 7.0)
    assert r.contacts["c1"].channel is Channel.VOICE
    _replays(j)
