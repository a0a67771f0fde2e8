"""Switchboard's ACD core: pure, deterministic routing, statistics, Erlang maths and simulation."""

from acd import native as _native  # noqa: F401  (picks the compiled build or the sources: see acd/native.py)
