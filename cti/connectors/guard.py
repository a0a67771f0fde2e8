"""Timeouts and a circuit breaker around any connector, so a slow or dead CRM never holds up a contact.

Every call gets `timeout_s`; past it the caller gets `CrmUnavailable` and the screen-pop says "CRM
unavailable" (the offer itself never waits on the CRM). After `failures_to_open` failures in a row the
breaker opens: calls fail at once, without touching the CRM, for `open_for_s`. Then it is half-open: one
trial call goes through (others still fail fast); success closes the breaker, failure opens it again.

A failure is a timeout, `CrmUnavailable` (5xx, unreachable, garbage) or any unexpected exception from the
connector (reported as `CrmUnavailable`, never let out raw). `CrmRejected` is the CRM answering "no" to this
input: it proves the CRM is alive and counts as a success.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cti.connectors.base import CaseInput, CaseUpdate, Connector, CrmCase, CrmRejected, CrmUnavailable, Person

log = logging.getLogger(__name__)
T = TypeVar("T")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after the cool-down -> one trial decides."""

    def __init__(self, failures_to_open: int, open_for_s: float, clock: Callable[[], float]):
        if failures_to_open < 1:
            raise ValueError("failures_to_open must be at least 1")
        if open_for_s <= 0:
            raise ValueError("open_for_s must be positive")
        self.failures_to_open = failures_to_open
        self.open_for_s = open_for_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_running = False
        self.opened_count = 0

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.open_for_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in_s(self) -> float:
        return 0.0 if self.opened_at is None else max(0.0, self.opened_at + self.open_for_s - self.clock())

    def try_acquire(self) -> bool:
        """May a call go through now? In half-open, only one (the trial) at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def succeeded(self) -> None:
        if self.opened_at is not None:
            log.warning("CRM circuit closed: the trial call succeeded")
        self.failures = 0
        self.opened_at = None
        self.trial_running = False

    def failed(self) -> None:
        self.failures += 1
        if self.trial_running or (self.opened_at is None and self.failures >= self.failures_to_open):
            if self.opened_at is None:
                log.warning("CRM circuit open after %d failures in a row; failing fast for %.0f s",
                            self.failures, self.open_for_s)
            self.opened_at = self.clock()
            self.opened_count += 1
        self.trial_running = False

    def released(self) -> None:
        """The trial was cancelled before it could decide anything: let another one try."""
        self.trial_running = False


class GuardedConnector:
    """A `Connector` whose calls are bounded in time and shed while the CRM is down."""

    def __init__(self, inner: Connector, *, timeout_s: float = 2.0, failures_to_open: int = 5,
                 open_for_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.inner = inner
        self.name = inner.name
        self.timeout_s = timeout_s
        self.breaker = CircuitBreaker(failures_to_open, open_for_s, clock)
        self.outcomes: dict[str, int] = {"ok": 0, "rejected": 0, "timeout": 0, "unavailable": 0, "shed": 0}

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    async def _guard(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.try_acquire():
            self.outcomes["shed"] += 1
            raise CrmUnavailable(f"{self.name} CRM unavailable (circuit open; next try in "
                                 f"{self.breaker.retry_in_s():.0f} s)")
        decided = False
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
            decided = True
            self.outcomes["ok"] += 1
            self.breaker.succeeded()
            return result
        except CrmRejected:
            decided = True
            self.outcomes["rejected"] += 1
            self.breaker.succeeded()
            raise
        except TimeoutError:
            decided = True
            self.outcomes["timeout"] += 1
            self.breaker.failed()
            raise CrmUnavailable(f"{self.name} CRM did not answer within {self.timeout_s:g} s") from None
        except CrmUnavailable:
            decided = True
            self.outcomes["unavailable"] += 1
            self.breaker.failed()
            raise
        except Exception as exc:  # a connector bug must read as "unavailable", not crash a pop
            decided = True
            self.outcomes["unavailable"] += 1
            self.breaker.failed()
            log.exception("CRM connector %s failed unexpectedly", self.name)
            raise CrmUnavailable(f"{self.name} CRM unavailable ({type(exc).__name__})") from exc
        finally:
            if not decided:  # cancelled: the caller went away, the CRM's health is unknown
                self.breaker.released()

    async def lookup(self, *, phone: str | None = None, email: str | None = None) -> list[Person]:
        return await self._guard(lambda: self.inner.lookup(phone=phone, email=email))

    async def open_cases(self, person_id: str, *, limit: int = 20) -> list[CrmCase]:
        return await self._guard(lambda: self.inner.open_cases(person_id, limit=limit))

    async def create_case(self, case: CaseInput) -> CrmCase:
        return await self._guard(lambda: self.inner.create_case(case))

    async def update_case(self, case_id: str, update: CaseUpdate) -> CrmCase:
        return await self._guard(lambda: self.inner.update_case(case_id, update))

    async def close(self) -> None:
        await self.inner.close()

    # ---- /metrics ------------------------------------------------------------------------------------------

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Add `switchboard_crm_circuit_state` and `switchboard_crm_calls_total` to a Prometheus registry."""
        registry.register(CrmCollector(lambda: self))


class CrmCollector(Collector):
    """Reads the guard at scrape time; `current` may return None (no CRM bridge running yet) or a guard that
    is replaced on each application start, so one collector serves the registry for the process."""

    def __init__(self, current: Callable[[], object]):
        self.current = current

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        guard = self.current()
        if not isinstance(guard, GuardedConnector):
            return
        state = GaugeMetricFamily("switchboard_crm_circuit_state",
                                  "CRM circuit breaker: 0 closed, 1 half-open, 2 open", labels=["crm"])
        state.add_metric([guard.name], STATE_VALUE[guard.state])
        yield state
        calls = CounterMetricFamily("switchboard_crm_calls", "CRM connector calls by outcome",
                                    labels=["crm", "outcome"])
        for outcome, n in sorted(guard.outcomes.items()):
            calls.add_metric([guard.name, outcome], n)
        yield calls
