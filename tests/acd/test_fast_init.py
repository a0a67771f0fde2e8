"""Events, contact specs and skill requirements get a faster constructor (`acd.model.fast_frozen_init`, or
written out in acd/events.py for the compiled build): it must take the same arguments, fill the same
defaults and leave the value as immutable as before."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import acd
from acd.events import EVENT_TYPES, ContactOffered, ContactQueued, from_dict, to_dict
from acd.model import Channel, ContactSpec, SkillRequirement

CLASSES = [*EVENT_TYPES.values(), ContactSpec, SkillRequirement]


# a value of each field type, distinct per field (a compiled constructor checks the types it is given)
SAMPLES: dict[str, Callable[[int], Any]] = {
    "str": lambda i: f"s{i}", "str | None": lambda i: f"s{i}", "float": lambda i: i + 0.5,
    "float | None": lambda i: i + 0.5, "int": lambda i: i, "bool": lambda i: bool(i % 2),
    "Channel": lambda i: Channel.CHAT, "dict[str, Any]": lambda i: {"k": i}, "Mapping[str, Any]": lambda i: {"k": i},
    "tuple[SkillRequirement, ...]": lambda i: (SkillRequirement(f"s{i}", 2),),
}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_constructor_takes_the_fields_in_order_with_their_defaults(cls: type[Any]) -> None:
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):  # compiled: no signature to read; call it every way
        _check_by_calling(cls, fields)
        return
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default, f.name
        elif f.default_factory is dataclasses.MISSING:
            assert p.default is inspect.Parameter.empty, f.name


def _source_types(cls: type[Any]) -> dict[str, str]:
    """A class's field types as written (compiled, a class carries only erased runtime types)."""
    source = Path(acd.__file__).with_name(f"{cls.__module__.rpartition('.')[2]}.py")
    tree = ast.parse(source.read_text())
    types: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in ("Event", cls.__name__):
            types.update({n.target.id: ast.unparse(n.annotation) for n in node.body
                          if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)})
    return types


def _check_by_calling(cls: type[Any], fields: tuple[dataclasses.Field[Any], ...]) -> None:
    types = _source_types(cls)
    values = [SAMPLES[types[f.name]](i) for i, f in enumerate(fields)]
    by_position, by_name = cls(*values), cls(**{f.name: v for f, v in zip(fields, values)})
    assert [getattr(by_position, f.name) for f in fields] == values == [getattr(by_name, f.name) for f in fields]
    required = [f for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    least = cls(*values[:len(required)])
    for f in fields[len(required):]:
        expected = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        assert getattr(least, f.name) == expected, f.name
    with pytest.raises(TypeError):
        cls(*values[:len(required) - 1])
    with pytest.raises(TypeError):
        cls(*values, values[0])


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
