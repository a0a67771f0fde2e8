"""`switchboard erlang`: the service level a staffing level gives, or the agents a target needs.

    switchboard erlang --arrivals-per-hour 200 --aht-s 240 --threshold-s 30 --agents 16 [--json]
    switchboard erlang --arrivals-per-hour 200 --aht-s 240 --threshold-s 30 --target-sl 0.8
    ... --patience-s 120      Erlang A (callers hang up) instead of Erlang C

Bad input exits 2 with a message that names the option. An Erlang C queue with too few agents is
not an error: it is reported as unstable (in JSON `stable: false`, `asa_s: null`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from acd.erlang import StaffingResult, agents_required, erlang_a, erlang_c
from engine.commands.argtypes import number, whole

EXIT_BAD_INPUT = 2


def _occupancy(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0.0 < value <= 1.0):
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("erlang", help="Erlang C / Erlang A staffing maths",
                       description="Service level, probability of waiting, ASA and occupancy for a number "
                                   "of agents (--agents), or the fewest agents meeting a service-level "
                                   "target (--target-sl). Erlang C; Erlang A with --patience-s. Service "
                                   "level = answered within the threshold / offered.")
    p.add_argument("--arrivals-per-hour", required=True, type=number(low=0.0, strict=False), metavar="N",
                   help="offered contacts per hour")
    p.add_argument("--aht-s", required=True, type=number(low=0.0, strict=True), metavar="S",
                   help="average handle time in seconds (talk + hold + wrap-up)")
    p.add_argument("--threshold-s", required=True, type=number(low=0.0, strict=False), metavar="S",
                   help="service-level threshold T in seconds (answered within T)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--agents", type=whole(1), metavar="N", help="agents on the queue: evaluate them")
    which.add_argument("--target-sl", type=number(low=0.0, strict=True, high=1.0), metavar="F",
                       help="service-level target as a fraction, e.g. 0.8: find the agents it needs")
    p.add_argument("--patience-s", type=number(low=0.0, strict=True), metavar="S",
                   help="mean caller patience in seconds: use Erlang A (callers abandon)")
    p.add_argument("--max-occupancy", type=_occupancy, metavar="F",
                   help="with --target-sl: also keep occupancy at or below this fraction")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _evaluate(args: argparse.Namespace) -> StaffingResult:
    if args.target_sl is not None:
        return agents_required(args.arrivals_per_hour, args.aht_s, args.threshold_s, args.target_sl,
                               patience_s=args.patience_s, max_occupancy=args.max_occupancy)
    if args.patience_s is None:
        return erlang_c(args.arrivals_per_hour, args.aht_s, args.agents, args.threshold_s)
    return erlang_a(args.arrivals_per_hour, args.aht_s, args.agents, args.threshold_s, args.patience_s)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def to_json(args: argparse.Namespace, result: StaffingResult) -> dict[str, Any]:
    erlang_a_model = args.patience_s is not None
    data: dict[str, Any] = {
        "model": "erlang_a" if erlang_a_model else "erlang_c",
        "arrivals_per_hour": args.arrivals_per_hour,
        "aht_s": args.aht_s,
        "threshold_s": args.threshold_s,
        "patience_s": args.patience_s,
        "target_sl": args.target_sl,
        "max_occupancy": args.max_occupancy,
        "traffic_erlangs": result.traffic_erlangs,
        "agents": result.agents,
    }
    if args.target_sl is not None:
        data["agents_required"] = result.agents
    data.update({
        "stable": result.stable,
        "service_level": result.service_level,
        "service_level_definition": "answered within threshold / offered",
        "prob_wait": result.prob_wait,
        "asa_s": _finite(result.asa_s),
        "occupancy": result.occupancy,
        "sl_answered": result.sl_answered,
        "sl_abandoned_after_t": result.sl_abandoned_after_t,
        "mean_wait_s": _finite(result.mean_wait_s),
    })
    if erlang_a_model:
        data["abandon_rate"] = result.abandon_rate
    return data


def _row(result: StaffingResult, *, erlang_a_model: bool, mark: str = "") -> str:
    asa = f"{result.asa_s:9.1f}" if result.stable else f"{'unstable':>9}"
    line = (f"{result.agents:>7}  {result.service_level:12.1%}  {result.prob_wait:9.1%}  {asa}  "
            f"{result.occupancy:9.1%}")
    if erlang_a_model:
        line += f"  {result.abandon_rate or 0.0:9.1%}"
    return line + mark


def to_table(args: argparse.Namespace, result: StaffingResult) -> str:
    erlang_a_model = args.patience_s is not None
    model = (f"Erlang A (mean patience {args.patience_s:g} s)" if erlang_a_model
             else "Erlang C (callers never hang up)")
    lines = [(f"{model}: {args.arrivals_per_hour:g} contacts/h x {args.aht_s:g} s AHT = "
              f"{result.traffic_erlangs:.2f} Erlangs"),
             f"service level = answered within {args.threshold_s:g} s / offered"]
    header = f"{'agents':>7}  {'service level':>12}  {'wait prob':>9}  {'ASA s':>9}  {'occupancy':>9}"
    if erlang_a_model:
        header += f"  {'abandoned':>9}"
    lines += ["", header]
    if args.target_sl is None:
        lines.append(_row(result, erlang_a_model=erlang_a_model))
        if not result.stable:
            lines.append("unstable: no more agents than Erlangs, so the queue grows without bound")
        return "\n".join(lines)
    target = f"target {args.target_sl:.0%}" + (f", occupancy <= {args.max_occupancy:.0%}"
                                                if args.max_occupancy is not None else "")
    lines[1] += f"; {target}"
    for agents in range(max(1, result.agents - 2), result.agents + 3):
        if agents == result.agents:
            row = _row(result, erlang_a_model=erlang_a_model, mark="  <- required")
        else:
            other = (erlang_c(args.arrivals_per_hour, args.aht_s, agents, args.threshold_s)
                     if args.patience_s is None else
                     erlang_a(args.arrivals_per_hour, args.aht_s, agents, args.threshold_s, args.patience_s))
            row = _row(other, erlang_a_model=erlang_a_model)
        lines.append(row)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.max_occupancy is not None and args.target_sl is None:
        print("switchboard erlang: error: argument --max-occupancy: only applies with --target-sl",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        result = _evaluate(args)
    except ValueError as exc:  # the core names its parameters; say them as the options they came from
        message = str(exc)
        for name in ("arrivals_per_hour", "aht_s", "threshold_s", "patience_s", "target_sl", "max_occupancy"):
            message = message.replace(name, "--" + name.replace("_", "-"))
        print(f"switchboard erlang: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(to_json(args, result), indent=2, allow_nan=False))
    else:
        print(to_table(args, result))
    return 0
