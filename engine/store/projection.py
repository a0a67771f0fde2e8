"""Events -> the rows derived from them: a contact's current state and agents' presence history.

Pure functions over plain dicts, so the journal can fold a whole batch in memory and write each touched
contact once. The state names mirror the router's (`acd.model.ContactState`, `Presence`).
"""

from __future__ import annotations

from typing import Any

from acd import events as ev
from acd.model import Channel, ContactState, Presence


def journal_keys(event: ev.Event) -> tuple[str | None, str | None]:
    """(contact, agent) an event concerns, for the journal's indexes."""
    contact = getattr(event, "contact", None)
    agent = getattr(event, "agent", None)
    if agent is None and isinstance(event, ev.ContactTransferred):
        agent = event.to_agent or event.from_agent
    return contact, (agent or None)


def fold_contact(rows: dict[str, dict[str, Any]], seq: int, event: ev.Event) -> str | None:
    """Apply `event` (journal entry `seq`) to `rows` (contact id -> row); return the id it touched.

    An event about a contact that `rows` does not hold (its creation predates the contacts table)
    is left out: the journal still has it."""
    cid: str | None = getattr(event, "contact", None)
    if cid is None:
        return None
    if isinstance(event, (ev.ContactQueued, ev.CallbackScheduled)):
        scheduled = isinstance(event, ev.CallbackScheduled)
        rows[cid] = {
            "id": cid, "queue": event.queue, "channel": Channel(event.channel).value,
            "state": (ContactState.SCHEDULED if scheduled else ContactState.QUEUED).value,
            "priority": event.priority, "enqueued_at": event.enqueued_at, "agent": None,
            "attributes": dict(event.attributes),
            "schedule_at": event.schedule_at if isinstance(event, ev.CallbackScheduled) else None,
            "answered_at": None, "ended_at": None, "wrap_up_code": None,
            "first_seq": seq, "last_seq": seq, "created_at": event.t, "updated_at": event.t,
        }
        return cid
    row = rows.get(cid)
    if row is None:
        return None
    row["last_seq"], row["updated_at"] = seq, event.t
    if isinstance(event, ev.CallbackDue):
        row["state"] = ContactState.QUEUED.value
    elif isinstance(event, ev.CallbackRequested):
        row["channel"] = Channel.CALLBACK.value
    elif isinstance(event, ev.ContactOffered):
        row["state"], row["agent"] = ContactState.OFFERED.value, event.agent
    elif isinstance(event, ev.OfferMissed):
        row["state"], row["agent"] = ContactState.QUEUED.value, None
    elif isinstance(event, ev.ContactAnswered):
        row["state"], row["agent"] = ContactState.CONNECTED.value, event.agent
        if row["answered_at"] is None:
            row["answered_at"] = event.t
    elif isinstance(event, ev.ContactHeld):
        row["state"] = ContactState.HELD.value
    elif isinstance(event, ev.ContactResumed):
        row["state"] = ContactState.CONNECTED.value
    elif isinstance(event, ev.ContactTransferred):
        row["queue"], row["state"], row["agent"] = event.to_queue, ContactState.QUEUED.value, None
    elif isinstance(event, ev.ContactEnded):
        row["state"], row["ended_at"] = ContactState.WRAP_UP.value, event.t
    elif isinstance(event, ev.WrapUpCompleted):
        row["state"], row["agent"], row["wrap_up_code"] = ContactState.COMPLETED.value, None, event.code
    elif isinstance(event, ev.ContactAbandoned):
        row["state"], row["agent"], row["ended_at"] = ContactState.ABANDONED.value, None, event.t
    elif isinstance(event, ev.ConsultEnded) and event.outcome == "completed" and event.to_agent:
        row["state"], row["agent"] = ContactState.CONNECTED.value, event.to_agent  # warm transfer done
    # ContactWidened changes only routing internals: the touch above is all
    return cid


def agent_change(seq: int, event: ev.Event) -> dict[str, Any] | None:
    """The agent_state_history row for a presence event, else None."""
    if isinstance(event, ev.AgentLoggedIn):
        state, reason = Presence.NOT_READY, None  # the router logs agents in not-ready
    elif isinstance(event, ev.AgentLoggedOut):
        state, reason = Presence.LOGGED_OUT, None
    elif isinstance(event, ev.AgentReady):
        state, reason = Presence.READY, None
    elif isinstance(event, ev.AgentNotReady):
        state, reason = Presence.NOT_READY, event.reason
    else:
        return None
    return {"seq": seq, "agent": event.agent, "event": event.kind, "state": state.value, "reason": reason,
            "t": event.t}
