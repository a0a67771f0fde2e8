"""Events, contact specs and skill requirements get a faster constructor (`acd.model.fast_frozen_init`):
it must take the same arguments, fill the same defaults and leave the value as immutable as before."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest

from acd.events import EVENT_TYPES, ContactOffered, ContactQueued, from_dict, to_dict
from acd.model import Channel, ContactSpec, SkillRequirement

CLASSES = [*EVENT_TYPES.values(), ContactSpec, SkillRequirement]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_constructor_takes_the_fields_in_order_with_their_defaults(cls: type[Any]) -> None:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is dataclasses.MISSING:
            assert p.default is inspect.Parameter.empty, f.name


def test_values_are_filled_and_stay_frozen() -> None:
    e = ContactOffered(5.0, "c1", "ann", 25.0)
    assert (e.t, e.contact, e.agent, e.deadline) == (5.0, "c1", "ann", 25.0)
    assert e == ContactOffered(t=5.0, contact="c1", agent="ann", deadline=25.0) and hash(e) == hash(
        ContactOffered(5.0, "c1", "ann", 25.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.agent = "bob"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ContactOffered(5.0, "c1")  # type: ignore[call-arg]

    q = ContactQueued(1.0, "c2", "q", Channel.CHAT, (SkillRequirement("fr", 6),), 1, {"k": 1}, 0.5)
    assert (q.preferred_agent, q.restrict_until) == (None, None)
    assert from_dict(to_dict(q)) == q and pickle.loads(pickle.dumps(q)) == q


def test_default_factory_gives_each_spec_its_own_attributes() -> None:
    a, b = ContactSpec("c1", "q"), ContactSpec("c2", "q")
    assert a.attributes == {} and a.attributes is not b.attributes
    assert (a.channel, a.priority, a.requirements, a.schedule_at) == (Channel.VOICE, 0, (), None)
    assert ContactSpec("c3", "q", attributes={"lang": "fr"}).attributes == {"lang": "fr"}
    assert dataclasses.replace(a, priority=5) == ContactSpec("c1", "q", priority=5)
    assert SkillRequirement("tax") == SkillRequirement("tax", 1) < SkillRequirement("tax", 2)
