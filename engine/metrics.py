"""Prometheus metrics: counted from committed events, read live from the router at scrape time."""

from __future__ import annotations

from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from acd.events import ContactAbandoned, ContactOffered, OfferMissed
from acd.stats import service_levels
from engine.core import Committed, Core


class _LiveCollector(Collector):
    def __init__(self, core: Core):
        self.core = core

    def collect(self) -> Iterable[GaugeMetricFamily]:
        router = self.core.router
        contacts = GaugeMetricFamily("switchboard_contacts", "Contacts by queue and state",
                                     labels=["queue", "state"])
        counts: dict[tuple[str, str], int] = {}
        for c in router.contacts.values():
            key = (c.queue, c.state.value)
            counts[key] = counts.get(key, 0) + 1
        for (queue, state), n in sorted(counts.items()):
            contacts.add_metric([queue, state], n)
        yield contacts
        agents = GaugeMetricFamily("switchboard_agents", "Agents by state", labels=["state"])
        by_state: dict[str, int] = {}
        for a in router.agents:
            s = router.agent_state(a).value
            by_state[s] = by_state.get(s, 0) + 1
        for s, n in sorted(by_state.items()):
            agents.add_metric([s], n)
        yield agents
        sl = GaugeMetricFamily("switchboard_service_level",
                               "Service level of the current 15-minute interval, by definition",
                               labels=["queue", "definition"])
        now = self.core.clock()
        idx = router.stats.interval(now)
        for qid, qs in router.stats.queues.items():
            counters = qs.intervals.get(idx)
            if counters is None:
                continue
            for definition, value in service_levels(counters).items():
                if value is not None:
                    sl.add_metric([qid, definition], value)
        yield sl
        oldest = GaugeMetricFamily("switchboard_oldest_wait_seconds", "Age of the oldest waiting contact",
                                   labels=["queue"])
        for qid in router.center.queues:
            waiting = router.waiting(qid)
            oldest.add_metric([qid], max((now - c.enqueued_at for c in waiting), default=0.0))
        yield oldest


class Metrics:
    def __init__(self, core: Core):
        self.registry = CollectorRegistry()
        self.offers = Counter("switchboard_offers", "Offers made to agents", ["queue"], registry=self.registry)
        self.ronas = Counter("switchboard_ronas", "Offers missed (rejected, timed out, busy)", ["queue", "reason"],
                             registry=self.registry)
        self.abandons = Counter("switchboard_abandons", "Contacts abandoned before answer", ["queue"],
                                registry=self.registry)
        self.routing = Histogram("switchboard_routing_latency_seconds",
                                 "Time the core takes to run one command and route what it caused",
                                 buckets=(5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1),
                                 registry=self.registry)
        self.registry.register(_LiveCollector(core))
        self.core = core
        core.listeners.append(self.on_committed)
        core.latency_observers.append(self.routing.observe)

    def on_committed(self, items: list[Committed]) -> None:
        router = self.core.router
        for item in items:
            e = item.event
            if isinstance(e, ContactOffered):
                self.offers.labels(router.contacts[e.contact].queue).inc()
            elif isinstance(e, OfferMissed):
                self.ronas.labels(router.contacts[e.contact].queue, e.reason).inc()
            elif isinstance(e, ContactAbandoned):
                self.abandons.labels(router.contacts[e.contact].queue).inc()
