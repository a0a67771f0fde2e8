"""Small shared helpers for the ACD tests: build a center from plain data and drive a router."""

from __future__ import annotations

from typing import Any

import pytest

from acd.config import load_center
from acd.events import Event
from acd.model import CenterConfig, Channel, ContactSpec, SkillRequirement
from acd.router import Router


def make_center(queues: dict[str, Any], agents: dict[str, Any], **extra: Any) -> CenterConfig:
    """A center from the same plain data a YAML file parses to (so every test also passes the checks)."""
    skills = sorted({s for q in queues.values() for s in q.get("skills", {})}
                    | {s for a in agents.values() for s in a.get("skills", {})})
    return load_center({"skills": extra.pop("skills", skills), "queues": queues, "agents": agents, **extra})


def spec(cid: str, queue: str = "q", channel: Channel = Channel.VOICE, *, needs: dict[str, int] | None = None,
         **kw: Any) -> ContactSpec:
    reqs = tuple(SkillRequirement(s, lv) for s, lv in (needs or {}).items())
    return ContactSpec(id=cid, queue=queue, channel=channel, requirements=reqs, **kw)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


def offers(events: list[Event]) -> list[tuple[str, str]]:
    """(contact, agent) of every offer in `events`, in order."""
    return [(e.contact, e.agent) for e in events if e.kind == "ContactOffered"]  # type: ignore[attr-defined]


class Journal:
    """A router plus every event it emitted, so a test can replay them and compare."""

    def __init__(self, center: CenterConfig):
        self.center = center
        self.router = Router(center)
        self.events: list[Event] = []

    def __call__(self, command: str, *args: Any, **kw: Any) -> list[Event]:
        out: list[Event] = getattr(self.router, command)(*args, **kw)
        self.events.extend(out)
        return out

    def replayed(self) -> Router:
        return Router.replay(self.center, self.events)


class Kit:
    """The helpers above, handed to tests as the `kit` fixture (test modules cannot import conftest safely)."""

    make_center = staticmethod(make_center)
    spec = staticmethod(spec)
    kinds = staticmethod(kinds)
    offers = staticmethod(offers)
    Journal = Journal


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
