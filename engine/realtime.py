"""Fan-out of bus events to WebSocket clients.

One task follows the bus and hands each message to every connected client whose audience it matches
(an agent sees events that name them; a supervisor sees everything). A client that reconnects sends the
id of the last message it saw and first gets what it missed, read back from the bus, then the live feed;
ids are ordered, so nothing is delivered twice. If what it missed is older than the bus keeps, it is told
to resync (`{"type": "resync"}`) and should reload state over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from engine.bus import Bus, BusMessage, BusUnavailable, id_key

log = logging.getLogger("switchboard.realtime")

QUEUE_LIMIT = 10_000  # a client this far behind is cut off and must reconnect (and catch up)


@dataclass(eq=False)
class Client:
    agent: str | None  # None: supervisor, sees everything
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    last_id: tuple[int, int] = (0, 0)
    overflowed: bool = False
    held: list[BusMessage] | None = None  # live messages that arrive while it is still catching up

    def wants(self, payload: dict[str, Any]) -> bool:
        return self.agent is None or self.agent in payload.get("agents", ())

    def offer(self, msg: BusMessage) -> None:
        if self.held is not None:
            self.held.append(msg)
            return
        self.deliver(msg)

    def deliver(self, msg: BusMessage) -> None:
        key = id_key(msg.id)
        if key <= self.last_id or not self.wants(msg.payload):
            return
        self.last_id = key
        try:
            self.queue.put_nowait({"id": msg.id, **msg.payload})
        except asyncio.QueueFull:
            self.overflowed = True


class Hub:
    def __init__(self, bus: Bus):
        self.bus = bus
        self.clients: set[Client] = set()
        # agent -> its clients, None -> supervisors: a message only visits the clients it concerns
        # (with hundreds of agents connected, visiting them all costs more than the routing)
        self.followers: dict[str | None, set[Client]] = {}
        self.last_id: str | None = None

    async def run(self) -> None:
        """Follow the bus from 'now' for ever (the bus implementation reconnects by itself)."""
        while True:
            try:
                async for msg in self.bus.subscribe(after_id=self.last_id or "$"):
                    if not isinstance(msg, BusMessage):
                        continue  # a retention gap marker: clients catch up from the store
                    self.last_id = msg.id
                    for client in self._audience(msg.payload):
                        client.offer(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hub lost the bus; retrying")
                await asyncio.sleep(0.5)

    def _audience(self, payload: dict[str, Any]) -> list[Client]:
        targets = list(self.followers.get(None, ()))
        for agent in payload.get("agents", ()):
            targets.extend(self.followers.get(agent, ()))
        return targets

    async def attach(self, agent: str | None, after_id: str | None) -> Client | None:
        """Register a client; with `after_id`, queue what it missed first. None means: resync needed."""
        client = Client(agent)
        self.clients.add(client)  # first, holding live messages, so none slips between catch-up and live
        self.followers.setdefault(agent, set()).add(client)
        if after_id:
            client.held = []
            client.last_id = id_key(after_id)
            try:
                while True:
                    batch = await self.bus.read(after_id, count=1000, block_ms=None)
                    messages = [m for m in batch if isinstance(m, BusMessage)]
                    if len(messages) != len(batch):  # a gap: some of what it missed is gone
                        self.detach(client)
                        return None
                    for m in messages:
                        client.deliver(m)
                    if len(messages) < 1000:
                        break
                    after_id = messages[-1].id
            except BusUnavailable:
                self.detach(client)
                return None
            held, client.held = client.held, None
            for m in held:
                client.deliver(m)
        return client

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        followers = self.followers.get(client.agent)
        if followers is not None:
            followers.discard(client)
            if not followers:
                del self.followers[client.agent]
