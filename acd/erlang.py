"""Erlang B, C and A: the queueing maths behind staffing a contact centre.

Units: arrivals per hour; every duration in seconds (AHT, service-level threshold T, patience, ASA).
Offered traffic A = arrivals per second x AHT, in Erlangs.

Models
  Erlang B (M/M/N/N)  blocking probability of N lines or trunks.
  Erlang C (M/M/N)    callers wait as long as it takes. Unstable when N <= A: the queue grows
                      without bound, so the result says prob_wait 1, service_level 0, asa_s inf,
                      occupancy 1 (`StaffingResult.stable` is False).
  Erlang A (M/M/N+M)  Palm (1946); Garnett, Mandelbaum & Reiman (2002): callers hang up after an
                      exponential patience with mean patience_s. Always stable, even with N <= A.

Definitions (both models; in Erlang C nobody abandons, so the three service levels coincide)
  prob_wait             P(an arriving contact finds every agent busy and queues).
  service_level         answered within T / offered  (what the Erlang C formula gives, and what
                        most WFM tools report; abandoned contacts count against it).
  sl_answered           answered within T / answered.
  sl_abandoned_after_t  answered within T / (answered + abandoned after waiting more than T).
  asa_s                 average speed of answer: mean wait of the ANSWERED contacts (as ACD reports).
  mean_wait_s           mean wait of all offered contacts, abandoned ones included (= E[queue] / rate).
  abandon_rate          abandoned / offered (None for Erlang C).
  occupancy             carried load / N (Erlang C: A / N).

Erlang A, how it is computed. The number in system is a birth-death chain: births at rate lambda,
deaths at k*mu up to N, then N*mu + (k-N)*theta (theta = 1/patience). Its stationary law is taken
relative to the state "N busy, nobody waiting": the states below weigh 1/B(A, N) together (Erlang B),
the state with j waiting weighs t_j = prod_{i=1..j} lambda / (N*mu + i*theta); the tail is cut once
it is e^-45 below the largest weight. All of it in log space, so hundreds of agents neither overflow
nor underflow. A contact that arrives behind j waiting callers (PASTA) has an "offered wait" V, the
time until an agent would take it if it never hung up: a sum of exponentials with rates
N*mu + m*theta, m = j..0 (a service completion or an abandonment ahead moves it up). It is answered
iff V <= its own patience, so, conditioning on j:
  P(answered)            = N*mu / (N*mu + (j+1)*theta)                        (a telescoping product)
  wait | answered        ~ sum of exponentials with rates N*mu + i*theta, i = 1..j+1
  P(wait | answered > T) = P(NegBin(N*mu/theta + 1, q) <= j),  q = exp(-theta*T)
  P(V > T)               = P(NegBin(N*mu/theta, q) <= j)
The last two hold because, behind j, exp(-theta * wait) of an answered caller is Beta(N*mu/theta + 1,
j + 1) distributed (exp(-theta * V) is Beta(N*mu/theta, j + 1)), and a Beta law with an integer
parameter has a negative-binomial tail: every term is positive, so the sums are stable where the
textbook partial-fraction form of these sums of exponentials cancels catastrophically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_HOUR = 3600.0
# Queue states whose stationary weight is below e^-45 (about 3e-20) of the largest are dropped.
_LOG_TAIL = 45.0
# A guard against a queue chain that cannot end (patience of years with a rate the agents cannot
# keep up with): that input is better answered by Erlang C's "unstable".
_MAX_QUEUE_STATES = 5_000_000


@dataclass(frozen=True, slots=True)
class StaffingResult:
    """Steady-state performance of `agents` agents on one queue (see the module docstring)."""

    agents: int
    prob_wait: float
    service_level: float
    asa_s: float
    occupancy: float
    abandon_rate: float | None
    traffic_erlangs: float
    sl_answered: float
    sl_abandoned_after_t: float
    mean_wait_s: float

    @property
    def stable(self) -> bool:
        """False only for an Erlang C queue with agents <= traffic (waits grow without bound)."""
        return math.isfinite(self.asa_s)


def _check_finite(name: str, value: float, *, low: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {low:g}, got {value!r}")
    return value


def _check_count(name: str, value: int, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_fraction(name: str, value: float, *, closed_top: bool = False) -> float:
    value = _check_finite(name, value, low=0.0, strict=True)
    if value > 1.0 or (value == 1.0 and not closed_top):
        top = "1]" if closed_top else "1)"
        raise ValueError(f"{name} must be in (0, {top}, got {value!r}")
    return value


def _traffic(arrivals_per_hour: float, aht_s: float) -> float:
    return arrivals_per_hour / SECONDS_PER_HOUR * aht_s


def _log1pexp(z: float) -> float:
    """log(1 + e^z) without overflow."""
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def _log_inverse_erlang_b(traffic: float, servers: int) -> float:
    """ln(1 / B(A, N)) by the recurrence 1/B_k = 1 + (k/A) / B_{k-1}, B_0 = 1, in log space."""
    log_a = math.log(traffic)
    value = 0.0
    for k in range(1, servers + 1):
        value = _log1pexp(math.log(k) - log_a + value)
    return value


def erlang_b(traffic_erlangs: float, servers: int) -> float:
    """Erlang B: the probability that a call finds all `servers` lines busy and is lost."""
    traffic = _check_finite("traffic_erlangs", traffic_erlangs, low=0.0, strict=False)
    _check_count("servers", servers, low=0)
    if servers == 0:
        return 1.0
    if traffic == 0.0:
        return 0.0
    return math.exp(-_log_inverse_erlang_b(traffic, servers))


def _check_common(arrivals_per_hour: float, aht_s: float, threshold_s: float) -> tuple[float, float, float]:
    return (_check_finite("arrivals_per_hour", arrivals_per_hour, low=0.0, strict=False),
            _check_finite("aht_s", aht_s, low=0.0, strict=True),
            _check_finite("threshold_s", threshold_s, low=0.0, strict=False))


def _idle_result(agents: int, abandon_rate: float | None) -> StaffingResult:
    """No arrivals: nobody waits, nobody is answered late, the agents are idle."""
    return StaffingResult(agents=agents, prob_wait=0.0, service_level=1.0, asa_s=0.0, occupancy=0.0,
                          abandon_rate=abandon_rate, traffic_erlangs=0.0, sl_answered=1.0,
                          sl_abandoned_after_t=1.0, mean_wait_s=0.0)


def erlang_c(arrivals_per_hour: float, aht_s: float, agents: int, threshold_s: float) -> StaffingResult:
    """Erlang C (M/M/N): callers never hang up.

    prob_wait = C(N, A) = N*B / (N - A*(1 - B)) with B the Erlang B value; service level
    1 - C*exp(-(N - A)*T/AHT); ASA = C*AHT/(N - A); occupancy A/N. With N <= A the queue is unstable
    and the result is prob_wait 1, service_level 0, asa_s inf, occupancy 1 (see `stable`).
    """
    arrivals, aht, threshold = _check_common(arrivals_per_hour, aht_s, threshold_s)
    _check_count("agents", agents, low=1)
    traffic = _traffic(arrivals, aht)
    if traffic == 0.0:
        return _idle_result(agents, None)
    if agents <= traffic:
        return StaffingResult(agents=agents, prob_wait=1.0, service_level=0.0, asa_s=math.inf, occupancy=1.0,
                              abandon_rate=None, traffic_erlangs=traffic, sl_answered=0.0,
                              sl_abandoned_after_t=0.0, mean_wait_s=math.inf)
    blocking = math.exp(-_log_inverse_erlang_b(traffic, agents))
    prob_wait = agents * blocking / (agents - traffic * (1.0 - blocking))
    spare = agents - traffic
    service_level = 1.0 - prob_wait * math.exp(-spare * threshold / aht)
    asa = prob_wait * aht / spare
    return StaffingResult(agents=agents, prob_wait=prob_wait, service_level=service_level, asa_s=asa,
                          occupancy=traffic / agents, abandon_rate=None, traffic_erlangs=traffic,
                          sl_answered=service_level, sl_abandoned_after_t=service_level, mean_wait_s=asa)


def _negative_binomial_cdf(shape: float, log_q: float, log_1mq: float, count: int) -> list[float]:
    """[P(X <= j) for j in 0..count-1], X ~ NegBin(shape, q) counting failures: pmf
    Gamma(shape+k) / (Gamma(shape) k!) q^shape (1-q)^k, built term by term in log space."""
    out: list[float] = []
    log_pmf = shape * log_q
    total = 0.0
    for k in range(count):
        if k:
            log_pmf += math.log((shape + k - 1) / k) + log_1mq
        total += math.exp(log_pmf)
        out.append(min(total, 1.0))
    return out


def erlang_a(arrivals_per_hour: float, aht_s: float, agents: int, threshold_s: float,
             patience_s: float) -> StaffingResult:
    """Erlang A (M/M/N+M): callers hang up after an exponential patience with mean `patience_s`.

    service_level is answered within T / offered; asa_s is the mean wait of answered contacts;
    mean_wait_s that of all offered contacts; abandon_rate abandoned / offered. See the module
    docstring for the method (exact stationary chain, truncated far in the tail).
    """
    arrivals, aht, threshold = _check_common(arrivals_per_hour, aht_s, threshold_s)
    _check_count("agents", agents, low=1)
    patience = _check_finite("patience_s", patience_s, low=0.0, strict=True)
    traffic = _traffic(arrivals, aht)
    if traffic == 0.0:
        return _idle_result(agents, 0.0)

    lam = arrivals / SECONDS_PER_HOUR
    theta = 1.0 / patience
    drain = agents / aht  # N*mu: the rate at which the head of the queue is taken while all are busy

    # Stationary weights relative to "N busy, nobody waiting", in logs.
    log_below = _log_inverse_erlang_b(traffic, agents)  # states 0..N together (pi_N included)
    log_queue = [0.0]  # j = 0 waiting: the state N itself
    peak = (lam - drain) / theta  # the weights t_j rise while j < peak
    top = log_below
    log_t = 0.0
    j = 0
    log_lam = math.log(lam)
    while True:
        j += 1
        log_t += log_lam - math.log(drain + j * theta)
        log_queue.append(log_t)
        top = max(top, log_t)
        if j > peak and log_t < top - _LOG_TAIL:
            break
        if j > _MAX_QUEUE_STATES:
            raise ValueError(f"patience_s={patience:g} is too long for Erlang A at this load "
                             f"(more than {_MAX_QUEUE_STATES} queue states); use Erlang C")
    norm = math.exp(log_below - top) + sum(math.exp(v - top) for v in log_queue[1:])
    # P(fewer than N busy) = (1/B - 1) relative to pi_N; 1/B - 1 = e^L (1 - e^-L) keeps precision.
    p_immediate = math.exp(log_below - top + math.log(-math.expm1(-log_below))) / norm
    weights = [math.exp(v - top) / norm for v in log_queue]  # P(arrival finds N + j in system)

    # Given j waiting ahead: late_if_answered[j] = P(wait > T | answered), offered_late[j] = P(V > T).
    log_q = -theta * threshold
    one_minus_q = -math.expm1(log_q)
    if one_minus_q == 0.0:  # T = 0 (or too short to matter): nobody who waits is answered within T
        late_if_answered = offered_late = [1.0] * len(weights)
    else:
        log_1mq = math.log(one_minus_q)
        late_if_answered = _negative_binomial_cdf(drain / theta + 1.0, log_q, log_1mq, len(weights))
        offered_late = _negative_binomial_cdf(drain / theta, log_q, log_1mq, len(weights))
    q = math.exp(log_q)

    prob_wait = answered_in_time = abandoned = mean_wait = answered_wait = abandoned_after = 0.0
    harmonic = 0.0  # sum_{i=1..j+1} 1 / (N*mu + i*theta): mean wait of an answered caller behind j
    for j, w in enumerate(weights):
        ahead = j + 1
        rate = drain + ahead * theta
        answered = drain / rate
        harmonic += 1.0 / rate
        prob_wait += w
        answered_in_time += w * answered * (1.0 - late_if_answered[j])
        abandoned += w * ahead * theta / rate
        mean_wait += w * ahead / rate
        answered_wait += w * answered * harmonic
        abandoned_after += w * max(q * offered_late[j] - answered * late_if_answered[j], 0.0)

    answered_share = 1.0 - abandoned
    within = p_immediate + answered_in_time
    # (answered + abandoned after T) is at most everyone; summed in floats it can pass 1 by an ulp, and
    # this service level would then fall below the one over everyone offered
    counted = min(answered_share + abandoned_after, 1.0)
    return StaffingResult(
        agents=agents,
        prob_wait=min(prob_wait, 1.0),
        service_level=min(within, 1.0),
        asa_s=answered_wait / answered_share,
        occupancy=min(lam * answered_share / drain, 1.0),
        abandon_rate=abandoned,
        traffic_erlangs=traffic,
        sl_answered=min(within / answered_share, 1.0),
        sl_abandoned_after_t=min(within / counted, 1.0),
        mean_wait_s=mean_wait,
    )


def agents_required(arrivals_per_hour: float, aht_s: float, threshold_s: float, target_sl: float,
                    patience_s: float | None = None, max_occupancy: float | None = None) -> StaffingResult:
    """The smallest number of agents whose service level (answered within T / offered) reaches
    `target_sl` and, if given, whose occupancy is at most `max_occupancy`. Erlang C unless
    `patience_s` is given (then Erlang A). At least one agent, even with no arrivals."""
    arrivals, aht, threshold = _check_common(arrivals_per_hour, aht_s, threshold_s)
    target = _check_fraction("target_sl", target_sl)
    cap = None if max_occupancy is None else _check_fraction("max_occupancy", max_occupancy, closed_top=True)
    patience = None if patience_s is None else _check_finite("patience_s", patience_s, low=0.0, strict=True)
    traffic = _traffic(arrivals, aht)

    def evaluate(agents: int) -> StaffingResult:
        if patience is None:
            return erlang_c(arrivals, aht, agents, threshold)
        return erlang_a(arrivals, aht, agents, threshold, patience)

    def meets(result: StaffingResult) -> bool:
        return result.service_level >= target and (cap is None or result.occupancy <= cap)

    # Below `floor` the target is out of reach: Erlang C needs N > A (and N >= A/cap for the cap);
    # in Erlang A the answered share is carried load / offered < N/A, so N must exceed target*A.
    if patience is None:
        floor = int(traffic) + 1
        if cap is not None:
            floor = max(floor, int(traffic / cap))
    else:
        floor = max(1, int(target * traffic))
    # Both targets only get easier with more agents: gallop up to a staffing that meets them,
    # then bisect down to the smallest one.
    failing, agents, step = floor - 1, floor, 1
    result = evaluate(agents)
    while not meets(result):
        failing, agents, step = agents, agents + step, step * 2
        result = evaluate(agents)
    while agents - failing > 1:
        middle = (agents + failing) // 2
        candidate = evaluate(middle)
        if meets(candidate):
            agents, result = middle, candidate
        else:
            failing = middle
    return result
