"""Guards shared by the call controller (calls.py) and the outbound dialer (outbound.py).

Call handling runs in tasks that race the far end: a leg may hang up, or the contact move on, between deciding
to act and acting. Those races are normal, so they are logged and absorbed here, never raised into a handler.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from acd import errors as acd_errors
from engine.core import Core, EngineUnavailable

log = logging.getLogger("switchboard.calls")


async def quietly(aw: Awaitable[Any]) -> Any:
    """A back-end request on a leg that may just have gone: log a failure, return None."""
    try:
        return await aw
    except Exception as exc:
        log.info("telephony request failed", extra={"error": str(exc)})
        return None


async def acd_step(core: Core, command: Callable[[Any, float], Any]) -> None:
    """An ACD command that may have been overtaken (the contact moved on): a typed refusal is fine."""
    try:
        await core.execute(command)
    except acd_errors.AcdError as exc:
        log.info("acd command overtaken", extra={"error": str(exc)})
    except EngineUnavailable as exc:
        log.error("acd command lost: engine unavailable", extra={"error": str(exc)})
