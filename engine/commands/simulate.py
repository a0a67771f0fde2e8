"""`switchboard simulate --scenario FILE [--seed N] [--json]`: run a scenario through the real router.

A bad scenario is reported as `file:line: field: message`, every problem at once, and exits 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from acd.errors import ConfigError
from acd.scenario import Scenario, load_scenario
from acd.simulate import SimulationResult, simulate
from engine.configfile import Problem, _line_of, _split_path

EXIT_BAD_SCENARIO = 2


class _Loader(yaml.SafeLoader):
    """YAML with 1.2 integers: `10:30` stays a string (YAML 1.1 would read it as 630, base 60)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$"),
    list("-+0123456789"))


class ScenarioFileError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_scenario_file(path: str | Path) -> Scenario:
    """Read and check a scenario file; `ScenarioFileError` names the file, line and field of each problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioFileError([Problem(file, None, "(file)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioFileError([Problem(file, mark.line + 1 if mark is not None else None, "(syntax)",
                                         str(getattr(exc, "problem", None) or exc))]) from None
    try:
        return load_scenario(data)
    except ConfigError as exc:
        raise ScenarioFileError([Problem(file, _line_of(root, _split_path(i.path)), i.path, i.message)
                                 for i in exc.issues]) from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("simulate", help="simulate a day (or a long run) of a contact centre",
                       description="Discrete-event simulation that drives the real router with the "
                                   "scenario's arrivals, handle times, patience and shifts.")
    p.add_argument("--scenario", required=True, metavar="FILE", help="scenario YAML (see config/scenarios/)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's, else 1)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--intervals", action="store_true", help="include the per-interval report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario_file(args.scenario)
    except ScenarioFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.scenario}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_BAD_SCENARIO
    result = simulate(scenario, args.seed, intervals=args.intervals)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(render(result, args.intervals))
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def _sec(x: float | None) -> str:
    return "-" if x is None else f"{x:6.1f}s"


def render(r: SimulationResult, intervals: bool = False) -> str:
    sls = r.service_levels
    lines = [
        (f"scenario {r.scenario} (seed {r.seed}): {r.contacts} contacts, {r.answered} answered, "
         f"{r.abandoned} abandoned (+{r.short_abandoned} short), {r.unserved} unserved, {r.ronas} RONA"),
        (f"service level {_pct(r.service_level)} (answered within T / offered); "
         f"{_pct(sls['sl_answered'])} of answered; {_pct(sls['sl_abandoned_after_t'])} excluding abandons within T"),
        (f"ASA {_sec(r.asa_s)}  abandon rate {_pct(r.abandon_rate)}  occupancy {_pct(r.occupancy)}  "
         f"AHT {_sec(r.aht_s)}"),
        (f"wait estimate error (n={r.estimator_samples}): ours MAE {_sec(r.ewt_mae_s)} bias "
         f"{_sec(r.ewt_mean_error_s)} | Asterisk holdtime MAE {_sec(r.asterisk_mae_s)} bias "
         f"{_sec(r.asterisk_mean_error_s)}"),
        (f"  ours blends forecasts by how close each came lately: by gap MAE {_sec(r.estimator_mae_s['gap'])}, "
         f"by place MAE {_sec(r.estimator_mae_s['place'])}, and Asterisk's holdtime (above)"),
        "",
        f"{'queue':<16}{'T':>6}{'contacts':>10}{'answered':>10}{'aband.':>8}{'SL':>8}{'ASA':>9}{'AHT':>9}",
    ]
    for q in r.queues.values():
        lines.append(f"{q.queue:<16}{q.sl_threshold_s:>6.0f}{q.contacts:>10}{q.answered:>10}{q.abandoned:>8}"
                     f"{_pct(q.service_level):>8}{_sec(q.asa_s):>9}{_sec(q.aht_s):>9}")
    if intervals and r.intervals:
        lines += ["", f"{'time':<7}{'queue':<16}{'offered':>8}{'answered':>9}{'aband.':>8}{'SL':>8}{'occ.':>8}"]
        for row in r.intervals:
            lines.append(f"{row['time']:<7}{row['queue']:<16}{row['offered']:>8}{row['answered']:>9}"
                         f"{row['abandoned']:>8}{_pct(row['sl_offered']):>8}{_pct(row['occupancy']):>8}")
    return "\n".join(lines)

