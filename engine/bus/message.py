"""What travels on the bus: messages, the gap marker, the bus's own error, and message ids.

Ids are Redis stream ids, "<ms>-<seq>", on both buses (the in-process bus counts "<n>-0"), so a
reader compares them the same way whichever bus runs: as a pair of integers, never as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEFAULT_STREAM = "switchboard:events"
MAX_SEQ = 2**64 - 1  # the largest sequence part Redis accepts in a stream id
START = "0-0"  # before every message: "from the oldest message the bus still keeps"
NOW = "$"  # as in XREAD: "only what is published from now on"


class BusUnavailable(Exception):
    """The bus cannot be reached (Redis down, refused, timed out): nothing was published or read."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    id: str
    type: str  # the event type ("ContactQueued", ...); "" when the payload has none
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages after `after_id` were dropped (retention) or never reached this bus (it was reset).

    The reader cannot catch up from the bus: it must resync from the store. Reading goes on with
    the messages after `resume_after`, the oldest ones the bus still keeps.
    """

    after_id: str
    resume_after: str

    def to_dict(self) -> dict[str, Any]:
        return {"gap": True, "after_id": self.after_id, "resume_after": self.resume_after}


def id_key(msg_id: str) -> tuple[int, int]:
    """Order key of a message id: "12-3" -> (12, 3); "12" means "12-0"."""
    ms, sep, seq = msg_id.partition("-")
    if not (ms.isascii() and ms.isdigit()) or (sep and not (seq.isascii() and seq.isdigit())):
        raise ValueError(f"not a bus message id: {msg_id!r} (expected '<ms>-<seq>')")
    key = (int(ms), int(seq) if sep else 0)
    if key[0] > MAX_SEQ or key[1] > MAX_SEQ:
        raise ValueError(f"bus message id out of range: {msg_id!r}")
    return key


def format_id(key: tuple[int, int]) -> str:
    return f"{key[0]}-{key[1]}"


def id_before(msg_id: str) -> str:
    """The position just before `msg_id`: reading after it starts with `msg_id` itself."""
    ms, seq = id_key(msg_id)
    if seq > 0:
        return format_id((ms, seq - 1))
    if ms > 0:
        return format_id((ms - 1, MAX_SEQ))
    return START


def encode(payload: dict[str, Any]) -> str:
    """Payload as compact JSON; raises TypeError before anything is sent if it is not JSON-serialisable."""
    if not isinstance(payload, dict):
        raise TypeError(f"bus payload must be a dict, not {type(payload).__name__}")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def type_of(payload: dict[str, Any]) -> str:
    kind = payload.get("type", "")
    return kind if isinstance(kind, str) else str(kind)
