"""The `switchboard` command. Each subcommand lives in `engine/commands/<name>.py` and exposes
`register(subparsers)`; it is imported only when named, so `switchboard erlang` never loads the web stack."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module under engine.commands
COMMANDS = {
    "erlang": "erlang",
    "simulate": "simulate",
    "bench": "bench",
    "check-config": "check_config",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard contact-centre engine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(see: switchboard {name} --help)")
            continue
        importlib.import_module(f"engine.commands.{module}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(wanted if wanted in COMMANDS else None)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
