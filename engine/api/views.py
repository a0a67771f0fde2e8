"""How core objects look on the wire."""

from __future__ import annotations

from typing import Any

from acd.model import Contact, QueueConfig
from acd.router import Router


def contact_view(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "queue": c.queue,
        "channel": c.channel.value,
        "state": c.state.value,
        "priority": c.priority,
        "requirements": [{"skill": r.skill, "min_level": r.min_level} for r in c.requirements],
        "attributes": c.attributes,
        "enqueued_at": c.enqueued_at,
        "agent": c.agent,
        "offer_deadline": c.offer_deadline,
        "ring": c.ring,
        "first_answered_at": c.first_answered_at,
        "talk_s": c.talk_s,
        "hold_s": c.hold_s,
        "ended_at": c.ended_at,
        "wrap_up_code": c.wrap_up_code,
        "history": c.history,
    }


def agent_view(router: Router, agent_id: str, station: str | None) -> dict[str, Any]:
    a = router.agents[agent_id]
    return {
        "id": a.id,
        "name": a.cfg.name,
        "state": router.agent_state(agent_id).value,
        "presence": a.presence.value,
        "reason": a.reason,
        "skills": dict(a.cfg.skills),
        "capacity": {ch.value: n for ch, n in a.cfg.capacity.items()},
        "groups": list(a.cfg.groups),
        "station": station,
        "offers": sorted(a.offers),
        "contacts": sorted(a.work),
        "handled_today": a.handled_on(router.days.day(router.now)),  # yesterday's count is not today's
        "occupancy": a.occupancy(router.now, router.days),  # today's (local day)
    }


def queue_view(q: QueueConfig, router: Router) -> dict[str, Any]:
    return {
        "id": q.id,
        "name": q.name,
        "strategy": q.strategy.value,
        "sl_threshold_s": q.sl_threshold_s,
        "skills": {r.skill: r.min_level for r in q.skills},
        "wrap_up_s": q.wrap_up_s,
        "wrap_up_codes": list(q.wrap_up_codes),
        "wrap_up_code_required": q.wrap_up_code_required,
        "steps": [{"after_s": s.after_s, "level_drop": s.level_drop, "add_groups": list(s.add_groups),
                   "overflow_queues": list(s.overflow_queues)} for s in q.steps],
        "waiting": len(router.waiting(q.id)),
    }
