"""The `switchboard` command. Each subcommand lives in `engine/commands/<module>.py` and exposes
`register(subparsers)`; only the named one is imported, so `switchboard erlang` never loads the web stack."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module under engine.commands, one-line help)
COMMANDS = {
    "serve": ("serve", "run the engine: HTTP API, WebSockets, ACD, store and bus"),
    "check-config": ("check_config", "check a site configuration file and report every problem"),
    "migrate": ("migrate", "create or upgrade the database schema"),
    "user": ("user", "manage users (user add NAME --role ROLE)"),
    "erlang": ("erlang", "Erlang C / Erlang A staffing maths"),
    "simulate": ("simulate", "discrete-event simulation of a scenario through the real router"),
    "bench": ("bench", "benchmarks (routing, simulate)"),
    "follow": ("follow", "tail the event stream as JSON lines"),
    "apikey": ("apikey", "manage Open311 API keys"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard contact-centre engine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        if name == only:
            importlib.import_module(f"engine.commands.{module}").register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(wanted if wanted in COMMANDS else None)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
