"""`switchboard user add NAME --role ROLE [--agent ID] [--password-stdin]`, `user list`."""

from __future__ import annotations

import argparse
import getpass
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("user", help="manage users")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION")
    usub.required = True
    add = usub.add_parser("add", help="create a user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    add.add_argument("--agent", help="the agent id this user logs in as (role agent)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--database-url", help="default: SWITCHBOARD_DATABASE_URL or SQLite in the data dir")
    add.set_defaults(func=run_add)
    lst = usub.add_parser("list", help="list users")
    lst.add_argument("--database-url")
    lst.set_defaults(func=run_list)


def _users(url: str | None):  # type: ignore[no-untyped-def]
    from engine.settings import Settings
    from engine.store.store import Store

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(url or settings.effective_database_url())
    store.migrate()
    return store.users


def run_add(args: argparse.Namespace) -> int:
    if args.role == "agent" and not args.agent:
        print("user add: --agent is required for role agent", file=sys.stderr)
        return 2
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("user add: passwords differ", file=sys.stderr)
            return 2
    if len(password) < 8:
        print("user add: the password must have at least 8 characters", file=sys.stderr)
        return 2
    users = _users(args.database_url)
    if users.get(args.username) is not None:
        print(f"user add: user {args.username!r} already exists", file=sys.stderr)
        return 1
    users.create(args.username, password, args.role, agent_id=args.agent)
    print(f"created {args.role} {args.username}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    for u in _users(args.database_url).all():
        print(f"{u.username}\t{u.role}\t{u.agent_id or '-'}\t{'disabled' if u.disabled else 'active'}")
    return 0
