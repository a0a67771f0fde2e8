"""An agent at run time: presence, the work and offers they hold, and what capacity they have left.

Capacity is per channel (voice 1, chat 3, ...) and cross-channel rules block whole channels while
the agent has work on another (a phone call blocks new chats and emails). An offer reserves a slot
exactly like work does, until it is accepted or missed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from acd.local_days import UTC_DAYS, LocalDays
from acd.model import AgentConfig, AgentState, Channel, ContactState, Presence, pickled


class Activity:
    """Coarse time buckets for occupancy: busy (any work or offer), idle (ready, nothing), away."""

    BUSY: Final = "busy"
    IDLE: Final = "idle"
    AWAY: Final = "away"  # not ready
    OFF: Final = "off"  # logged out


NO_CHANNELS: frozenset[Channel] = frozenset()


# what an agent's runtime carries beyond its configuration: kept across a configuration reload
STATE_FIELDS: Final = ("presence", "reason", "load", "offers", "work", "idle_since", "rona_streak", "day",
                       "handled_today", "busy_s", "staffed_s", "activity", "activity_since", "occ_day",
                       "busy_today_s", "staffed_today_s")


class AgentRuntime:
    __slots__ = ("cfg", "id", "order", "free", "full", "indexed_since", *STATE_FIELDS)

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, (self.cfg, self.order))

    def __init__(self, cfg: AgentConfig, order: int):
        self.cfg = cfg
        self.id = cfg.id
        self.order = order  # configuration order: linear hunt and tie-breaks
        self.presence = Presence.LOGGED_OUT
        self.reason: str | None = None
        self.load: dict[Channel, int] = {}
        self.offers: dict[str, Channel] = {}  # contact id -> channel
        self.work: dict[str, Channel] = {}  # contacts connected, held or in wrap-up
        self.idle_since = 0.0
        self.rona_streak = 0
        self.day = -1
        self.handled_today = 0
        self.busy_s = 0.0  # since the router started (statistics)
        self.staffed_s = 0.0
        # since local midnight of day `occ_day`: what least_occupied and the supervisor weigh, so yesterday's
        # rush does not keep an agent from work today
        self.occ_day = -1
        self.busy_today_s = 0.0
        self.staffed_today_s = 0.0
        self.activity = Activity.OFF
        self.activity_since = 0.0
        self.free: frozenset[Channel] = frozenset()  # channels with a slot left, as last indexed
        self.indexed_since = math.nan  # the idle_since of the agent's entries in the router's idle indexes
        # the channels free when ready and holding nothing: the common case, kept ready for the router
        self.full: frozenset[Channel] = frozenset(ch for ch, cap in cfg.capacity.items() if cap > 0)

    # capacity -------------------------------------------------------------------------------
    def free_channels(self, blocks: Mapping[Channel, frozenset[Channel]]) -> frozenset[Channel]:
        """The channels with a slot left that no work in hand blocks."""
        if self.presence is not Presence.READY:
            return NO_CHANNELS
        load = self.load
        free = [ch for ch, cap in self.cfg.capacity.items() if load.get(ch, 0) < cap]
        for ch, n in load.items():
            if free and n and ch in blocks:  # (a full single-channel agent, the usual case, stops at once)
                blocked = blocks[ch]
                free = [f for f in free if f not in blocked]
        return frozenset(free) if free else NO_CHANNELS

    def hold_slot(self, contact_id: str, channel: Channel, *, offer: bool) -> None:
        self.load[channel] = self.load.get(channel, 0) + 1
        (self.offers if offer else self.work)[contact_id] = channel

    def release_slot(self, contact_id: str) -> Channel:
        channel = self.offers.pop(contact_id, None) or self.work.pop(contact_id)
        self.load[channel] -= 1
        if not self.load[channel]:
            del self.load[channel]
        return channel

    def promote_offer(self, contact_id: str) -> None:
        self.work[contact_id] = self.offers.pop(contact_id)

    # occupancy clock ------------------------------------------------------------------------
    def current_activity(self) -> str:
        if self.presence is Presence.LOGGED_OUT:
            return Activity.OFF
        if self.load:
            return Activity.BUSY
        return Activity.IDLE if self.presence is Presence.READY else Activity.AWAY

    def clock(self, now: float, days: LocalDays = UTC_DAYS) -> tuple[str, str] | None:
        """Close the running activity at `now`; return (old, new) when the activity changed."""
        new = self.current_activity()
        span = now - self.activity_since
        if self.activity == Activity.BUSY:
            self.busy_s += span
        if self.activity in (Activity.BUSY, Activity.IDLE):
            self.staffed_s += span
            self.book_today(self.activity, self.activity_since, now, days)
        self.activity_since = now
        if new == self.activity:
            return None
        old, self.activity = self.activity, new
        return old, new

    def book_today(self, activity: str, since: float, until: float, days: LocalDays) -> None:
        """Add the staffed (and, if busy, busy) time of [since, until) that falls on `until`'s local day."""
        day = days.day(until)
        if day != self.occ_day:
            self.occ_day, self.busy_today_s, self.staffed_today_s = day, 0.0, 0.0
        span = until - max(since, days.start(until))
        if span > 0:
            self.staffed_today_s += span
            if activity == Activity.BUSY:
                self.busy_today_s += span

    def handled_on(self, day: int) -> int:
        """Contacts answered on local day `day`: the count is reset only at the day's first answer."""
        return self.handled_today if self.day == day else 0

    def occupancy(self, now: float, days: LocalDays = UTC_DAYS) -> float:
        """Today's occupancy (local day): busy over staffed time since midnight, the running activity included."""
        busy, staffed = (self.busy_today_s, self.staffed_today_s) if days.day(now) == self.occ_day else (0.0, 0.0)
        span = now - max(self.activity_since, days.start(now))
        if span > 0 and self.activity in (Activity.BUSY, Activity.IDLE):
            staffed += span
            if self.activity == Activity.BUSY:
                busy += span
        return busy / staffed if staffed > 0 else 0.0

    # what a supervisor sees -----------------------------------------------------------------
    def state(self, contact_states: Mapping[str, ContactState]) -> AgentState:
        if self.presence is Presence.LOGGED_OUT:
            return AgentState.LOGGED_OUT
        states = [contact_states[c] for c in self.work]
        if any(s in (ContactState.CONNECTED, ContactState.HELD) for s in states):
            return AgentState.BUSY
        if self.offers:
            return AgentState.RESERVED
        if states:
            return AgentState.WRAP_UP
        if self.presence is Presence.NOT_READY:
            return AgentState.NOT_READY
        return AgentState.AVAILABLE
