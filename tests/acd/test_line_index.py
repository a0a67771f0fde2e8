"""The line index behind Router.position(): the same answer as counting, whether asked at every change,
rarely (its notes dropped and the index rebuilt), or never; and a router's positions after many changes."""

from __future__ import annotations

import pickle
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from acd.line_index import LineIndex, LineKey


@settings(max_examples=300, derandomize=True, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["enter", "leave", "ask"]), st.integers(0, 40),
                              st.integers(0, 3)), max_size=400),
       quiet=st.integers(0, 200))
def test_places_match_counting_however_often_asked(ops: list[tuple[str, int, int]], quiet: int) -> None:
    index = LineIndex()
    line: set[LineKey] = set()
    seq = 0
    for i, (op, age, priority) in enumerate(ops):
        if op == "enter" or not line:
            seq += 1
            key: LineKey = (float(-priority), float(age), seq)
            line.add(key)
            if index.live:
                index.note(True, key)
        elif op == "leave":
            key = sorted(line)[age % len(line)]
            line.remove(key)
            if index.live:
                index.note(False, key)
        elif i >= quiet:  # a stretch with no asks first: notes pile up, then are dropped
            probe = sorted(line)[age % len(line)]
            assert index.ahead_of(probe, lambda: line) == sorted(line).index(probe)
    if line:
        probe = max(line)
        assert index.ahead_of(probe, lambda: line) == len(line) - 1


def test_a_quiet_index_lets_go_of_its_notes_and_is_not_pickled() -> None:
    index = LineIndex()
    line = [(0.0, float(i), i) for i in range(10)]
    assert not index.live
    assert index.ahead_of(line[5], lambda: line) == 5 and index.live
    for i in range(10, 200):  # nobody asks while 190 join
        index.note(True, (0.0, float(i), i))
        line.append((0.0, float(i), i))
    assert not index.live  # notes outgrew the line: dropped, to be rebuilt on the next ask
    assert index.ahead_of(line[150], lambda: line) == 150
    restored = pickle.loads(pickle.dumps(index))
    assert not restored.live and restored.ahead_of(line[3], lambda: line) == 3


def test_router_positions_after_many_changes_asked_now_and_then(kit) -> None:
    center = kit.make_center({"q": {"priority_boost_per_s": 0.01}}, {"ann": {}})
    j = kit.Journal(center)
    r = j.router
    rng = random.Random(7)
    j("login", "ann", 0.0)
    t = 1.0
    for n in range(600):
        t += rng.random()
        j("enqueue", kit.spec(f"c{n}", priority=rng.choice([0, 0, 0, 1, 5])), t)
        if n % 3 == 0:  # callers give up here and there, from anywhere in the line
            gone = rng.choice([c.id for c in r.waiting("q")])
            j("abandon", gone, t)
        if n % 97 == 0:  # someone asks now and then: between asks the index may have let go
            line = [c.id for c in r.waiting("q")]
            assert [r.position(cid) for cid in line] == list(range(1, len(line) + 1))
    line = [c.id for c in r.waiting("q")]
    assert len(line) == 400
    assert [r.position(cid) for cid in line] == list(range(1, len(line) + 1))
    # offered contacts have left the line: the rest move up
    j("set_ready", "ann", t + 1)
    offered = [c.id for c in r.waiting("q") if c.state.value == "offered"]
    assert len(offered) == 1 and r.position(offered[0]) is None
    assert [r.position(cid) for cid in line[1:]] == list(range(1, len(line)))


def test_the_place_a_caller_is_told_on_joining_is_their_real_place(kit) -> None:
    """The wait estimator learns wait-per-place from the place each caller was told on joining. A caller who
    joins at the end is told that place (a router restored from a snapshot too); one whose priority put them
    ahead of someone teaches nothing (their place would cost an index kept up on every change; the end of
    the line, told before, taught too short a wait per place)."""
    center = kit.make_center({"q": {"priority_boost_per_s": 0.001}}, {"ann": {}})
    j = kit.Journal(center)
    rng = random.Random(11)
    j("login", "ann", 0.0)
    t = 1.0
    kinds = Counter()
    for n in range(300):
        r = j.router
        t += rng.random()
        if n == 150:  # from here on a restored router
            j.router = r = pickle.loads(pickle.dumps(r))
        cid = f"c{n}"
        before = [c for c in r.waiting("q") if c.state.value == "queued"]
        j("enqueue", kit.spec(cid, priority=rng.choice([0, 0, 0, 1, 5])), t)
        # the real place: the line in service order, offered contacts aside, counted without the index
        line = [c.id for c in r.waiting("q") if c.state.value == "queued"]
        assert len(line) == len(before) + 1
        place, told = line.index(cid) + 1, r.contacts[cid].told
        if told is not None:
            assert told[1] == place == len(line)
            kinds["end, told"] += 1
        else:  # it jumped the line, or is last behind a tail that left (the tail errs towards not told)
            kinds["ahead" if place < len(line) else "end, not told"] += 1
        if n % 4 == 0:
            j("abandon", rng.choice(line), t)
    assert kinds["ahead"] > 30
    assert kinds["end, told"] > 150 and kinds["end, not told"] < 0.1 * kinds["end, told"]
