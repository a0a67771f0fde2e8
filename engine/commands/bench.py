"""`switchboard bench routing|simulate`: benchmarks that print figures (JSON with --json).

`routing` times the real router's decisions at a large city's scale beside a naive full scan;
`simulate` runs a scenario through the simulator (engine/bench/simulate.py). Each benchmark
module is imported only when its subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands.argtypes import sizes, whole

SCALING_DEFAULT = "100,1000,10000"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="benchmarks (routing, simulate, calls)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    which.required = True

    r = which.add_parser("routing", help="routing decisions per second and latency, against a naive scan")
    r.add_argument("--agents", type=whole(1), default=1000, help="agents, all logged in (default 1000)")
    r.add_argument("--skills", type=whole(2), default=100, help="skills: topics and languages (default 100)")
    r.add_argument("--waiting", type=whole(1), default=10_000, help="contacts kept waiting (default 10000)")
    r.add_argument("--decisions", type=whole(1), default=20_000, help="timed routing decisions (default 20000)")
    r.add_argument("--baseline-decisions", type=whole(1), default=300,
                   help="timed decisions of the naive full-scan baseline (default 300: it is slow)")
    r.add_argument("--scaling", type=sizes, default=sizes(SCALING_DEFAULT),
                   help=f"waiting sizes of the scaling table, comma-separated (default {SCALING_DEFAULT}); "
                        "the baseline runs only at sizes up to --waiting")
    r.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    r.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: time.perf_counter_ns (default); cpu: this thread's CPU time, which leaves out "
                        "preemption by other processes on a busy machine")
    r.add_argument("--json", action="store_true", help="print one JSON object")
    r.set_defaults(func=run_routing)

    # The simulator's options belong to its module, imported only when this subcommand runs: keep
    # everything after `simulate` for it (a `+` prefix so that argparse leaves `--options` alone).
    s = which.add_parser("simulate", help="a scenario through the real router (see: bench simulate --help)",
                         add_help=False, prefix_chars="+")
    s.add_argument("args", nargs="*", metavar="ARGS", help="options of the simulation benchmark")
    s.set_defaults(func=run_simulate)

    c = which.add_parser("calls", help="real SIP calls through the engine (SIPp on loopback): success, "
                                       "setup times, engine CPU and memory")
    c.add_argument("--rate", type=float, default=5.0, help="new calls per second (default 5)")
    c.add_argument("--concurrent", type=whole(1), default=100,
                   help="at most this many calls at once; also the number of agents (default 100)")
    c.add_argument("--duration", type=float, default=60.0, help="seconds of placing calls (default 60)")
    c.add_argument("--hold", type=float, default=20.0, help="seconds each call lasts once answered (default 20)")
    c.add_argument("--agents", type=whole(1), default=None, help="agents (default: --concurrent)")
    c.add_argument("--workdir", help="keep the site file, logs and SIPp traces here (default: a temp dir)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=run_calls)


def run_routing(args: argparse.Namespace) -> int:
    from engine.bench.routing import run_routing as bench

    progress = (lambda _msg: None) if args.json else (lambda msg: print(f"... {msg}", file=sys.stderr))
    result = bench(agents=args.agents, skills=args.skills, waiting=args.waiting, decisions=args.decisions,
                   seed=args.seed, baseline_decisions=args.baseline_decisions, scaling=args.scaling,
                   clock=args.clock, progress=progress)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_routing_text(result))
    # a router that disagrees with the baseline is a bug, whatever the speed
    return 0 if result["baseline_agrees"] else 1


def _routing_text(r: dict[str, Any]) -> str:
    lines = [
        (f"routing: {r['agents']} agents, {r['skills']} skills, {r['queues']} queues, {r['waiting']} waiting "
         f"(seed {r['seed']}, {r['clock']} clock)"),
        f"  core: {r['core']}",
        (f"  router    {r['decisions_per_s']:>10,.0f} decisions/s   p50 {r['p50_us']:>8.1f} us   "
         f"p99 {r['p99_us']:>8.1f} us   ({r['decisions']} decisions)"),
        (f"  baseline  {r['baseline_decisions_per_s']:>10,.0f} decisions/s   p50 {r['baseline_p50_us']:>8.1f} us   "
         f"p99 {r['baseline_p99_us']:>8.1f} us   ({r['baseline_decisions']} decisions, full scan)"),
        (f"  speed-up  {r['speedup_vs_baseline']:.1f}x; same choices as the baseline: "
         f"{'yes' if r['baseline_agrees'] else 'NO'} ({r['baseline_compared_assignments']} compared)"),
        "  per decision (us): " + ", ".join(f"{k} {v}" for k, v in r["phases_mean_us"].items()),
        f"  peak RSS {r['peak_rss_mb']} MB",
        "  scaling:  waiting   decisions/s     p50 us     p99 us    mean us   baseline decisions/s   position us",
    ]
    for row in r["scaling"]:
        base, pos = row["baseline_decisions_per_s"], row["position_mean_us"]
        lines.append(f"          {row['waiting']:>8}  {row['decisions_per_s']:>12,.0f}  {row['p50_us']:>9.1f}  "
                     f"{row['p99_us']:>9.1f}  {row['mean_us']:>9.1f}  "
                     f"{f'{base:>21,.0f}' if base is not None else '(not run)':>21}  "
                     f"{f'{pos:>12.1f}' if pos is not None else '-':>12}")
    if "scaling_cost_ratio" in r:
        lines.append(f"  mean cost x{r['scaling_cost_ratio']} from the smallest line to the largest "
                     f"(baseline x{r.get('scaling_baseline_cost_ratio', '?')}; log n would give "
                     f"x{r['scaling_log_ratio']}, linear x{r['scaling_linear_ratio']})")
    goal = r["goal"]
    lines.append(f"  goal >= {goal['decisions_per_s']:,} decisions/s and p99 < {goal['p99_us']} us: "
                 f"{'met' if goal['met'] else 'NOT met'}")
    if not r["baseline_agrees"]:
        lines.append(f"  FIRST DIFFERENCE: {r['baseline_first_difference']}")
    return "\n".join(lines)


def run_calls(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.bench.calls import run_calls as bench

    if args.rate <= 0 or args.duration <= 0 or args.hold < 0:
        print("switchboard bench calls: --rate and --duration must be positive, --hold not negative",
              file=sys.stderr)
        return 2
    progress = (lambda _msg: None) if args.json else (lambda msg: print(f"... {msg}", file=sys.stderr))
    result = bench(rate=args.rate, concurrent=args.concurrent, duration_s=args.duration, hold_s=args.hold,
                   agents=args.agents, workdir=Path(args.workdir) if args.workdir else None, progress=progress)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0 if result["failed"] == 0 and result["engine_survived"] else 1


def run_simulate(args: argparse.Namespace) -> int:
    try:
        from engine.bench import simulate
    except ModuleNotFoundError as exc:
        if exc.name not in ("engine.bench", "engine.bench.simulate"):
            raise
        print("switchboard bench simulate: the simulation benchmark is not installed "
              "(engine/bench/simulate.py)", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="switchboard bench simulate",
                                     description="a scenario through the real router")
    simulate.add_arguments(parser)
    try:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    except argparse.ArgumentError:
        pass  # the benchmark has its own --json
    sim_args = parser.parse_args(args.args)
    try:
        result = simulate.run(sim_args)
    except simulate.BadModel as exc:
        parser.error(str(exc))
    if sim_args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0
