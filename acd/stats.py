"""Queue statistics the router keeps as it applies events: interval counters and wait estimates.

Interval counters are kept per queue per 15-minute interval (the interval an event happens in).
Service level is reported in the three definitions vendors use, side by side and labelled:
  sl_answered:          answered within T / answered
  sl_offered:           answered within T / (answered + abandoned)
  sl_abandoned_after_t: answered within T / (answered + abandoned after T)
Short abandons (under the queue's threshold) are counted apart and left out of all three.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from acd.model import pickled

DEFAULT_AHT_S = 180.0


@dataclass(slots=True)
class IntervalCounters:
    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0
    abandoned_after: int = 0
    short_abandoned: int = 0
    answer_wait_s: float = 0.0
    abandon_wait_s: float = 0.0
    handled: int = 0
    talk_s: float = 0.0
    hold_s: float = 0.0
    wrap_s: float = 0.0
    transfers: int = 0
    ronas: int = 0

    def add(self, other: "IntervalCounters") -> None:
        for name in COUNTER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        data["asa_s"] = self.answer_wait_s / self.answered if self.answered else None
        data["aht_s"] = (self.talk_s + self.hold_s + self.wrap_s) / self.handled if self.handled else None
        data.update(service_levels(self))
        return data


COUNTER_FIELDS: Final = tuple(f.name for f in fields(IntervalCounters))


def service_levels(c: IntervalCounters) -> dict[str, float | None]:
    def ratio(n: int, d: int) -> float | None:
        return n / d if d else None

    return {
        "sl_answered": ratio(c.answered_within, c.answered),
        "sl_offered": ratio(c.answered_within, c.answered + c.abandoned),
        "sl_abandoned_after_t": ratio(c.answered_within, c.answered + c.abandoned_after),
    }


# what a caller was told on joining the line: (place in line, forecasts by gap, by place, Asterisk)
Forecast = tuple[int, tuple[float, float, float]]


class WaitEstimator:
    """Expected wait for the contact at a given position in line: three forecasts, blended by how close
    each came lately to the real waits of this queue's callers.

    - gap: the line moves at the rate contacts leave its head (answered or abandoned). The gap between
      departures is smoothed, counting only gaps that start with someone waiting (idle time does not
      dilute it), and the forecast is position x gap. It sees the line move now, so it is the best on a
      busy queue with many agents; but it samples only while a line stands, so on a small queue whose
      agents also serve others it overestimates the wait of a caller who finds little or no line.
    - place: the wait per place in line that callers of this queue really had (wait / place on joining,
      smoothed over the answered ones), times the position. It learns from every caller who joined at the
      end of the line (one who jumped ahead of others would need the line's index to know their place).
    - asterisk: Asterisk's holdtime, `(3*old + new)/4` over every answer. Kept apart as `asterisk_s`, too,
      so simulations can show how far it lands from the real waits.
    The forecasts a caller got on joining are scored when they are answered (smoothed absolute error per
    queue); the blend weighs each by 1/(error + 1 s)^2. Until all three have been scored, gap alone.
    """

    __slots__ = ("gap_s", "last_departure", "asterisk_s", "samples", "place_s", "errors")

    ALPHA = 0.1

    def __init__(self) -> None:
        self.gap_s: float | None = None
        self.last_departure: float | None = None
        self.asterisk_s = 0.0
        self.samples = 0
        self.place_s: float | None = None
        self.errors: tuple[float, float, float] | None = None  # smoothed |forecast - wait|: gap, place, asterisk

    def departed(self, now: float, still_waiting: int) -> None:
        if self.last_departure is not None:  # someone was waiting when the last one left
            gap = now - self.last_departure
            self.gap_s = gap if self.gap_s is None else self.gap_s + self.ALPHA * (gap - self.gap_s)
            self.samples += 1
        self.last_departure = now if still_waiting else None

    def answered(self, wait_s: float, told: Forecast | None = None) -> None:
        """A caller was answered after `wait_s`; `told`: their place and the forecasts on joining the line
        (None when they never stood in line, or joined ahead of someone: then only Asterisk's average learns)."""
        self.asterisk_s = (3 * self.asterisk_s + wait_s) / 4
        if told is None:
            return
        place, forecasts = told
        per_place = wait_s / place
        self.place_s = per_place if self.place_s is None else self.place_s + self.ALPHA * (per_place - self.place_s)
        by_gap, by_place, by_asterisk = (abs(f - wait_s) for f in forecasts)
        if self.errors is None:
            self.errors = (by_gap, by_place, by_asterisk)
        else:
            g, p, a = self.errors
            k = self.ALPHA
            self.errors = (g + k * (by_gap - g), p + k * (by_place - p), a + k * (by_asterisk - a))

    def forecasts(self, position: int, fallback_gap_s: float) -> tuple[float, float, float]:
        """By gap, by place, Asterisk's."""
        by_gap = position * (self.gap_s if self.gap_s is not None else fallback_gap_s)
        by_place = position * self.place_s if self.place_s is not None else by_gap
        return by_gap, by_place, self.asterisk_s

    def expected_wait(self, position: int, fallback_gap_s: float) -> float:
        return self.blend(self.forecasts(position, fallback_gap_s))

    def blend(self, forecasts: tuple[float, float, float]) -> float:
        """The three forecasts (as `forecasts` gives them) weighed by how close each came lately."""
        if self.errors is None:
            return forecasts[0]
        w_gap, w_place, w_asterisk = (1.0 / (e + 1.0) ** 2 for e in self.errors)
        f_gap, f_place, f_asterisk = forecasts
        return (w_gap * f_gap + w_place * f_place + w_asterisk * f_asterisk) / (w_gap + w_place + w_asterisk)


class QueueStats:
    __slots__ = ("threshold_s", "intervals", "estimator", "aht_s")

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, (self.threshold_s,))

    def __init__(self, threshold_s: float):
        self.threshold_s = threshold_s
        self.intervals: dict[int, IntervalCounters] = defaultdict(IntervalCounters)
        self.estimator = WaitEstimator()
        self.aht_s: float | None = None  # smoothed handle time, for the estimator's cold start

    def handled(self, handle_s: float) -> None:
        self.aht_s = handle_s if self.aht_s is None else self.aht_s + 0.1 * (handle_s - self.aht_s)

    def totals(self) -> IntervalCounters:
        total = IntervalCounters()
        for counters in self.intervals.values():
            total.add(counters)
        return total


class CenterStats:
    """All queues' counters plus the agents' busy and staffed time per interval (occupancy)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return pickled(self, ({}, self.interval_s))

    def __init__(self, thresholds: dict[str, float], interval_s: float):
        self.interval_s = interval_s
        self.queues = {q: QueueStats(t) for q, t in thresholds.items()}
        self.busy_s: dict[int, float] = defaultdict(float)
        self.staffed_s: dict[int, float] = defaultdict(float)

    def interval(self, t: float) -> int:
        return int(t // self.interval_s)

    def counters(self, queue: str, t: float) -> IntervalCounters:
        return self.queues[queue].intervals[int(t // self.interval_s)]  # (self.interval, inlined: hot)

    def agent_span(self, activity: str, start: float, end: float) -> None:
        """Book an agent's time from `start` to `end` in `activity`, split at interval edges."""
        if end <= start or (activity != "busy" and activity != "idle"):
            return
        busy = activity == "busy"
        iv = self.interval_s
        t = start
        while t < end:
            idx = int(t // iv)
            edge = (idx + 1) * iv
            if edge > end:
                edge = end
            self.staffed_s[idx] += edge - t
            if busy:
                self.busy_s[idx] += edge - t
            t = edge

    def occupancy(self, idx: int | None = None) -> float | None:
        if idx is None:
            busy, staffed = sum(self.busy_s.values()), sum(self.staffed_s.values())
        else:
            busy, staffed = self.busy_s.get(idx, 0.0), self.staffed_s.get(idx, 0.0)
        return busy / staffed if staffed else None

    def interval_report(self, queue: str) -> list[dict[str, Any]]:
        rows = []
        for idx, counters in sorted(self.queues[queue].intervals.items()):
            row = {"interval_start": idx * self.interval_s, "queue": queue, **counters.report()}
            row["occupancy"] = self.occupancy(idx)
            rows.append(row)
        return rows
