"""The simulator benchmark: contacts simulated per second, ours against ciw on the same M/M/c model.

Ours runs the whole `acd.simulate` loop with the real router deciding every contact (enqueue, offer,
accept, end, wrap-up timers) and the wait-estimator read-outs; ciw (a pure-Python queueing library)
runs the bare queue. Both simulate the same model for the same simulated time; each is run
`--repeat` times, alternating, and the best run of each counts (other processes on the machine
only ever make a run slower); `--clock cpu` times this thread's CPU time instead of the wall clock,
which leaves out preemption on a busy machine. The service levels of both and Erlang C's are printed beside the
speeds so a fast wrong answer shows.

The model is run at several centre sizes at the same load per agent (one row each), because the ratio
depends on the size: ciw's cost per customer grows with its number of servers, the router's does not
(measured: ciw 62k customers/s at 14 agents, 31k at 200, 8.8k at 1000). The headline figures are the
largest size's, by default 1000 agents: a large city 311, the scale DOMAIN.md designs for and the routing
benchmark's. The smaller rows stay in the output so nobody reads the headline as holding everywhere.

`add_arguments(parser)` and `run(args) -> dict` are called by `switchboard bench simulate`.
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acd import native
from acd.scenario import Scenario, load_scenario
from acd.simulate import simulate
from engine.commands.argtypes import number, sizes, whole

GOAL_RATIO = 10.0
# centre sizes, each at the same load per agent: a small city's centre, a mid-sized one, and a large city 311
# (hundreds of agents: the scale DOMAIN.md designs for, and the routing benchmark's 1000), the headline
DEFAULT_SIZES = [14, 100, 1000]
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


@dataclass(frozen=True, slots=True)
class MMC:
    """An M/M/c queue in the trade's units."""

    arrivals_per_hour: float
    aht_s: float
    agents: int
    threshold_s: float

    def scenario(self, duration_s: float, warmup_s: float = 0.0, seed: int = 1) -> dict[str, Any]:
        """The same model as a simulation scenario (plain data, as a YAML file would give)."""
        return {
            "name": f"mmc-{self.agents}", "seed": seed, "start": 0, "duration_s": duration_s,
            "warmup_s": warmup_s,
            "center": {
                "skills": ["general"],
                "queues": {"general": {"sl_threshold_s": self.threshold_s, "skills": {"general": 1}}},
                "agents": {f"a{i:03d}": {"skills": {"general": 5}} for i in range(1, self.agents + 1)},
            },
            "contact_types": {"call": {
                "queue": "general", "channel": "voice", "arrivals": {"per_hour": self.arrivals_per_hour},
                "handle_time": {"distribution": "exponential", "mean_s": self.aht_s}}},
        }


def mmc_of(sc: Scenario) -> MMC:
    """The M/M/c model a single-skill scenario is, or ValueError saying why it is not one."""
    if len(sc.contact_types) != 1 or len(sc.center.queues) != 1:
        raise ValueError("an M/M/c scenario has one contact type and one queue")
    ct = sc.contact_types[0]
    if ct.handle_time.kind != "exponential" or ct.patience.kind != "none":
        raise ValueError("an M/M/c scenario has exponential handle times and no abandonment")
    if len(set(ct.rates_per_s)) != 1:
        raise ValueError("an M/M/c scenario has one constant arrival rate")
    if sc.shifts or sc.no_answer_probability or sc.ring_delay.mean or any(
            q.wrap_up_s for q in sc.center.queues.values()):
        raise ValueError("an M/M/c scenario has no shifts, ring delay, RONA or wrap-up")
    queue = sc.center.queues[ct.queue]
    return MMC(ct.rates_per_s[0] * 3600.0, ct.handle_time.mean_s, len(sc.center.agents), queue.sl_threshold_s)


@dataclass(frozen=True, slots=True)
class CiwRun:
    contacts: int  # customers that arrived after the warm-up and finished
    service_level: float
    asa_s: float
    seconds: float  # wall time of the simulation itself


def run_ciw(model: MMC, duration_s: float, seed: int, warmup_s: float = 0.0,
            clock: Callable[[], float] = time.perf_counter) -> CiwRun:
    """Simulate `model` with ciw for `duration_s`; figures over customers arriving after `warmup_s`."""
    import ciw  # a test/benchmark dependency only

    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(model.arrivals_per_hour / 3600.0)],
        service_distributions=[ciw.dists.Exponential(1.0 / model.aht_s)],
        number_of_servers=[model.agents],
    )
    ciw.seed(seed)
    sim = ciw.Simulation(network)
    started = clock()
    sim.simulate_until_max_time(duration_s)
    seconds = clock() - started
    waits = [r.waiting_time for r in sim.get_all_records() if r.arrival_date >= warmup_s]
    within = sum(1 for w in waits if w <= model.threshold_s)
    return CiwRun(len(waits), within / len(waits), sum(waits) / len(waits), seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", type=sizes, default=DEFAULT_SIZES,
                        help="centre sizes to run, comma-separated, all agents always ready (default "
                             f"{','.join(map(str, DEFAULT_SIZES))}); the largest is the headline")
    parser.add_argument("--arrivals-per-hour", type=number(low=0.0, strict=True), default=None,
                        help="Poisson arrival rate (default: what keeps each size at --occupancy)")
    parser.add_argument("--occupancy", type=number(low=0.0, strict=True, high=1.0), default=0.9,
                        help="offered load per agent when no --arrivals-per-hour (default 0.9)")
    parser.add_argument("--aht-s", type=number(low=0.0, strict=True), default=180.0,
                        help="mean (exponential) handle time (default 180)")
    parser.add_argument("--threshold-s", type=number(low=0.0, strict=False), default=20.0,
                        help="service-level threshold T (default 20)")
    parser.add_argument("--contacts", type=whole(1), default=24_000,
                        help="contacts each run simulates, about (default 24,000); sets the simulated time")
    parser.add_argument("--hours", type=number(low=0.0, strict=True), default=None,
                        help="simulated hours per run instead of --contacts")
    parser.add_argument("--repeat", type=whole(1), default=3,
                        help="runs of each simulator; the best counts (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall: time.perf_counter (default); cpu: this thread's CPU time")


class BadModel(ValueError):
    """Options that make no queue to measure (the command prints it as a usage error)."""


def _model(args: argparse.Namespace, agents: int) -> MMC:
    rate = args.arrivals_per_hour
    if rate is None:
        rate = agents * args.occupancy * 3600.0 / args.aht_s
    elif rate * args.aht_s / 3600.0 >= agents:
        raise BadModel(f"--arrivals-per-hour {rate:g} with --aht-s {args.aht_s:g} is {rate * args.aht_s / 3600:g} "
                       f"Erlangs, too much for {agents} agents: the line would grow without end")
    return MMC(rate, args.aht_s, agents, args.threshold_s)


def run_size(model: MMC, hours: float, *, repeat: int, seed: int,
             clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """One centre size: ours and ciw, alternating, best of `repeat` each; with the service levels."""
    from acd.erlang import erlang_c

    duration = hours * 3600.0
    scenario = load_scenario(model.scenario(duration))
    best_ours = best_ciw = math.inf
    ours = None
    theirs = None
    for i in range(max(1, repeat)):
        gc.collect()
        started = clock()
        ours = simulate(scenario, seed + i)
        elapsed = clock() - started
        best_ours = min(best_ours, elapsed / max(ours.contacts, 1))
        gc.collect()
        theirs = run_ciw(model, duration, seed + i, clock=clock)
        best_ciw = min(best_ciw, theirs.seconds / max(theirs.contacts, 1))
    assert ours is not None and theirs is not None
    ours_rate, ciw_rate = 1.0 / best_ours, 1.0 / best_ciw
    exact = erlang_c(model.arrivals_per_hour, model.aht_s, model.agents, model.threshold_s)
    return {
        "agents": model.agents, "arrivals_per_hour": round(model.arrivals_per_hour, 3), "hours": round(hours, 3),
        "contacts": ours.contacts,
        "contacts_per_s": round(ours_rate, 1),
        "ciw_contacts_per_s": round(ciw_rate, 1),
        "ratio": round(ours_rate / ciw_rate, 3),
        "meets_goal": ours_rate / ciw_rate >= GOAL_RATIO,
        "service_level": ours.service_level,
        "ciw_service_level": theirs.service_level,
        "erlang_c_service_level": exact.service_level,
        "occupancy": ours.occupancy,
        "erlang_c_occupancy": exact.occupancy,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = CLOCKS[args.clock]
    rows = []
    models = [_model(args, agents) for agents in args.agents]  # (every size checked before any runs)
    for model in models:
        hours = args.hours if args.hours is not None else args.contacts / model.arrivals_per_hour
        rows.append(run_size(model, hours, repeat=args.repeat, seed=args.seed, clock=clock))
    head = rows[-1]  # (sizes come smallest first)
    return {
        "benchmark": "simulate",
        "clock": args.clock,
        "core": native.build(),  # compiled (mypyc) or pure Python, and why
        **{k: head[k] for k in ("agents", "contacts", "contacts_per_s", "ciw_contacts_per_s", "ratio")},
        "goal_ratio": GOAL_RATIO,
        "meets_goal": head["meets_goal"],
        "service_level": head["service_level"],
        "ciw_service_level": head["ciw_service_level"],
        "erlang_c_service_level": head["erlang_c_service_level"],
        "rows": rows,
    }
