"""`switchboard apikey add NAME`, `apikey list`, `apikey revoke NAME`: keys for Open311 clients.

`add` prints the key once; only its hash is stored, so a lost key is revoked and replaced, never shown again.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from cti.apikeys import ApiKeys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("apikey", help="manage API keys for Open311 clients (web site, apps, answering service)")
    ksub = p.add_subparsers(dest="apikey_command", metavar="ACTION")
    ksub.required = True
    add = ksub.add_parser("add", help="make a key and print it (once)")
    add.add_argument("name", help="who the key is for, e.g. web-portal or answering-service")
    add.set_defaults(func=_guarded(run_add))
    lst = ksub.add_parser("list", help="list key names and when they were made")
    lst.set_defaults(func=_guarded(run_list))
    rev = ksub.add_parser("revoke", help="delete a key: it stops working at once")
    rev.add_argument("name")
    rev.set_defaults(func=_guarded(run_revoke))
    for action in (add, lst, rev):
        action.add_argument("--database-url", help="default: SWITCHBOARD_DATABASE_URL or SQLite in the data dir")


def _guarded(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A database that cannot be reached is a one-line message and exit status 1, not a traceback."""

    def guarded(args: argparse.Namespace) -> int:
        from engine.store import StoreError

        try:
            return run(args)
        except StoreError as error:
            print(f"apikey {args.apikey_command}: {error}", file=sys.stderr)
            return 1

    return guarded


@contextlib.contextmanager
def _keys(url: str | None) -> Iterator[ApiKeys]:
    from cti.apikeys import ApiKeys
    from engine.settings import Settings
    from engine.store.store import Store

    if url is None:
        settings = Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the default SQLite file lives there
        url = settings.effective_database_url()
    store = Store(url)
    try:
        store.migrate()
        yield ApiKeys(store.db)
    finally:
        store.close()


def run_add(args: argparse.Namespace) -> int:
    from cti.apikeys import ApiKeyExists

    try:
        with _keys(args.database_url) as keys:
            key, record = keys.add(args.name)
    except ValueError as error:
        print(f"apikey add: {error}", file=sys.stderr)
        return 2
    except ApiKeyExists as error:
        print(f"apikey add: {error} (revoke it first to replace it)", file=sys.stderr)
        return 1
    print(key)
    print(f"API key for {record.name}: shown once, only its hash is kept. Clients send it as api_key.",
          file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    with _keys(args.database_url) as keys:
        listed = keys.all()
    for k in listed:
        print(f"{k.name}\t{k.created_at.isoformat(timespec='seconds')}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with _keys(args.database_url) as keys:
        revoked = keys.revoke(args.name)
    if not revoked:
        print(f"apikey revoke: no key named {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.name}")
    return 0
