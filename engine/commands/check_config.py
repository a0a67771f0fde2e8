"""`switchboard check-config [FILE]`: report every problem in the site file with file, line and field."""

from __future__ import annotations

import argparse
import sys

from engine.configfile import ConfigFileError, load_file


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("check-config", help="check a site configuration file and report every problem")
    p.add_argument("file", nargs="?", help="configuration file (default: SWITCHBOARD_CONFIG or config/switchboard.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.settings import Settings

    path = args.file or str(Settings().config)
    try:
        site = load_file(path)
    except ConfigFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    c = site.center
    print(f"{path}: OK ({len(c.skills)} skills, {len(c.queues)} queues, {len(c.agents)} agents)")
    return 0
