"""The guard: every call bounded by the timeout, and a circuit breaker that sheds load from a dead CRM.

The inner connector here is scripted per call (answer, fail, hang, refuse) so each breaker transition can be
driven exactly; the clock is a test clock, so cool-downs take no wall time. The real connectors behind the
guard are exercised in test_connectors_dynamics.py and test_connectors_webhook.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cti.connectors.base import CaseInput, CaseUpdate, Connector, CrmCase, CrmRejected, CrmUnavailable, Person
from cti.connectors.guard import BreakerState, CircuitBreaker, GuardedConnector

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]
ANN = Person(id="7", name="Ann Lee", phones=("+19055550101",))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A connector whose next answers are queued: a value, an exception to raise, or "hang"."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: deque[Any] = deque()
        self.calls = 0
        self.cancelled = 0
        self.release = asyncio.Event()

    async def _next(self) -> Any:
        self.calls += 1
        step = self.script.popleft() if self.script else [ANN]
        if step == "hang":
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return [ANN]
        if isinstance(step, BaseException):
            raise step
        return step

    async def lookup(self, *, phone: str | None = None, email: str | None = None) -> list[Person]:
        result: list[Person] = await self._next()
        return result

    async def open_cases(self, person_id: str, *, limit: int = 20) -> list[CrmCase]:
        result: list[CrmCase] = await self._next()
        return result

    async def create_case(self, case: CaseInput) -> CrmCase:
        result: CrmCase = await self._next()
        return result

    async def update_case(self, case_id: str, update: CaseUpdate) -> CrmCase:
        result: CrmCase = await self._next()
        return result

    async def close(self) -> None:
        return None


def guarded(inner: Scripted, clock: Clock, **kw: Any) -> GuardedConnector:
    args: dict[str, Any] = {"timeout_s": 0.2, "failures_to_open": 3, "open_for_s": 30.0, "clock": clock}
    args.update(kw)
    return GuardedConnector(inner, **args)


def test_scripted_and_guarded_connectors_fill_the_interface() -> None:
    inner = Scripted()
    assert isinstance(inner, Connector) and isinstance(guarded(inner, Clock()), Connector)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        GuardedConnector(Scripted(), timeout_s=0)
    with pytest.raises(ValueError, match="failures_to_open"):
        CircuitBreaker(0, 30, time.monotonic)
    with pytest.raises(ValueError, match="open_for_s"):
        CircuitBreaker(3, 0, time.monotonic)


async def test_answers_pass_through_every_method() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock)
    case = CrmCase(id="SR-1", reference="SR-1", title="Pothole", status="open")
    inner.script.extend([[ANN], [case], case, case])
    assert await guard.lookup(phone="+19055550101") == [ANN]
    assert await guard.open_cases("7") == [case]
    assert await guard.create_case(CaseInput(service_code="pothole", description="x")) == case
    assert await guard.update_case("SR-1", CaseUpdate(note="x")) == case
    assert guard.state is BreakerState.CLOSED and guard.name == "scripted"


async def test_a_hung_crm_gives_up_at_the_timeout_and_is_cancelled() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, timeout_s=0.2)
    inner.script.append("hang")
    started = time.monotonic()
    with pytest.raises(CrmUnavailable, match="did not answer within 0.2 s"):
        await guard.lookup(phone="+19055550101")
    assert time.monotonic() - started < 1.5  # gave up at the timeout, did not hang
    assert inner.cancelled == 1 and guard.breaker.failures == 1


async def test_breaker_opens_after_consecutive_failures_only() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, failures_to_open=3)
    inner.script.extend([CrmUnavailable("500"), CrmUnavailable("500"), [ANN],  # a success resets the count
                         CrmUnavailable("500"), CrmUnavailable("500")])
    for _ in range(5):
        try:
            await guard.lookup(phone="x")
        except CrmUnavailable:
            pass
    assert guard.state is BreakerState.CLOSED and guard.breaker.failures == 2
    inner.script.append(CrmUnavailable("500"))
    with pytest.raises(CrmUnavailable, match="500"):
        await guard.lookup(phone="x")
    assert guard.state is BreakerState.OPEN

    calls = inner.calls
    clock.now += 10
    with pytest.raises(CrmUnavailable, match=r"circuit open; next try in 20 s"):
        await guard.lookup(phone="x")
    assert inner.calls == calls and guard.outcomes["shed"] == 1  # failed fast, CRM not asked


async def test_refusals_do_not_open_the_breaker() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, failures_to_open=2)
    inner.script.extend([CrmUnavailable("503"), CrmRejected("no such case"), CrmUnavailable("503"),
                         CrmRejected("bad id"), CrmRejected("bad id")])
    for exc in (CrmUnavailable, CrmRejected, CrmUnavailable, CrmRejected, CrmRejected):
        with pytest.raises(exc):
            await guard.update_case("x", CaseUpdate(note="n"))
    assert guard.state is BreakerState.CLOSED  # the CRM answered each time it said no


async def test_unexpected_errors_read_as_unavailable_and_count() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, failures_to_open=1)
    inner.script.append(KeyError("contactid"))
    with pytest.raises(CrmUnavailable, match=r"scripted CRM unavailable \(KeyError\)"):
        await guard.lookup(phone="x")
    assert guard.state is BreakerState.OPEN


async def test_half_open_lets_one_trial_through_and_it_decides() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, failures_to_open=1, open_for_s=30)
    inner.script.append(CrmUnavailable("down"))
    with pytest.raises(CrmUnavailable):
        await guard.lookup(phone="x")
    clock.now += 30
    assert guard.state is BreakerState.HALF_OPEN

    # a failed trial opens the breaker for another full cool-down
    inner.script.append(CrmUnavailable("still down"))
    with pytest.raises(CrmUnavailable, match="still down"):
        await guard.lookup(phone="x")
    assert guard.state is BreakerState.OPEN
    clock.now += 29
    assert guard.state is BreakerState.OPEN
    clock.now += 1
    assert guard.state is BreakerState.HALF_OPEN

    # while the trial runs, everyone else still fails fast; its success closes the breaker
    inner.script.append("hang")
    trial = asyncio.create_task(guard.lookup(phone="x"))
    while inner.calls < 3:
        await asyncio.sleep(0.001)
    with pytest.raises(CrmUnavailable, match="circuit open"):
        await guard.lookup(phone="x")
    inner.release.set()
    assert await trial == [ANN]
    assert guard.state is BreakerState.CLOSED and inner.calls == 3
    assert await guard.lookup(phone="x") == [ANN]


async def test_a_cancelled_trial_frees_the_slot() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, failures_to_open=1, open_for_s=5, timeout_s=5)
    inner.script.append(CrmUnavailable("down"))
    with pytest.raises(CrmUnavailable):
        await guard.lookup(phone="x")
    clock.now += 5
    inner.script.append("hang")
    trial = asyncio.create_task(guard.lookup(phone="x"))
    while inner.calls < 2:
        await asyncio.sleep(0.001)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert guard.state is BreakerState.HALF_OPEN
    assert await guard.lookup(phone="x") == [ANN]  # the next caller is the trial
    assert guard.state is BreakerState.CLOSED


async def test_breaker_state_is_exported_for_metrics() -> None:
    inner, clock = Scripted(), Clock()
    guard = guarded(inner, clock, failures_to_open=1)
    registry = CollectorRegistry()
    guard.register_metrics(registry)
    assert 'switchboard_crm_circuit_state{crm="scripted"} 0.0' in generate_latest(registry).decode()
    inner.script.append(CrmUnavailable("down"))
    with pytest.raises(CrmUnavailable):
        await guard.lookup(phone="x")
    with pytest.raises(CrmUnavailable):
        await guard.lookup(phone="x")
    text = generate_latest(registry).decode()
    assert 'switchboard_crm_circuit_state{crm="scripted"} 2.0' in text
    assert 'switchboard_crm_calls_total{crm="scripted",outcome="unavailable"} 1.0' in text
    assert 'switchboard_crm_calls_total{crm="scripted",outcome="shed"} 1.0' in text
