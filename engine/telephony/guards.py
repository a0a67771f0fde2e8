"""Guards shared by the call controller (calls.py) and the outbound dialer (outbound.py).

Call handling runs in tasks that race the far end: a leg may hang up, or the contact move on, between deciding
to act and acting. Those races are normal, so they are logged and absorbed here, never raised into a handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from acd import errors as acd_errors
from engine.core import Core, EngineUnavailable
from engine.telephony.protocol import HangupCause

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


class LegWork:
    """What the call controller and the outbound dialer share: guarded back-end and ACD steps, and the
    handler tasks they spawn (kept referenced until done; a failure is logged, never lost)."""

    core: Core
    telephony: Any  # protocol.Telephony
    stations: Callable[[], dict[str, str]]  # agent -> SIP URI of their desk phone, as configured now
    _tasks: set[asyncio.Task[Any]]
    handler_name = "call handler"  # in the log line of a failed task

    async def _quiet(self, aw: Awaitable[Any]) -> Any:
        return await quietly(aw)

    async def _acd(self, command: Callable[[Any, float], Any]) -> None:
        await acd_step(self.core, command)

    async def _station_or_decline(self, contact: str, agent: str, what: str) -> str | None:
        """The agent's desk phone; an agent without one declines the offer (it goes to the next agent)."""
        station = self.stations().get(agent)
        if station is None:
            log.warning(f"agent has no station: {what} declined", extra={"agent": agent})
            await self._acd(lambda r, now: r.reject(contact, agent, now, reason="rejected"))
        return station

    async def _hangup(self, leg: str, cause: HangupCause) -> None:
        await quietly(self.telephony.hangup(leg, cause))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(f"{self.handler_name} failed", exc_info=task.exception())
