"""`switchboard follow`: tail the event bus (Redis Streams) and print one JSON line per message.

For operators ("what is the engine doing?") and for any script that wants the events: each line is
{"id": ..., "type": ..., "payload": {...}}; pass the last id back with --from-id to carry on where it
stopped. If messages after that id are gone (retention), a line {"gap": true, ...} says so and the
output goes on from the oldest message still kept. Survives Redis restarts: it waits and resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from engine.bus import NOW, BusMessage, Gap, id_key


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("follow", help="print the event stream as JSON lines (needs Redis)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from-id", default=NOW, metavar="ID",
                   help='print messages after this id; "0-0": all the stream keeps; default "$": only new ones')
    p.add_argument("--redis-url", default=None, metavar="URL",
                   help="Redis to follow (default: SWITCHBOARD_REDIS_URL)")
    p.add_argument("--stream", default=None, help="stream key (default: SWITCHBOARD_REDIS_STREAM or switchboard:events)")
    p.add_argument("--type", action="append", dest="types", metavar="TYPE",
                   help="only messages of this event type (repeatable)")
    p.add_argument("--count", type=int, default=None, metavar="N", help="stop after N messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.settings import Settings

    settings = Settings()
    url = args.redis_url or settings.redis_url
    if not url:
        print("switchboard follow: no Redis configured (--redis-url or SWITCHBOARD_REDIS_URL); "
              "the in-process bus can only be seen from inside the engine", file=sys.stderr)
        return 2
    if args.from_id != NOW:
        try:
            id_key(args.from_id)
        except ValueError as exc:
            print(f"switchboard follow: --from-id: {exc}", file=sys.stderr)
            return 2
    if args.count is not None and args.count < 1:
        print("switchboard follow: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(follow(url, args.stream or settings.redis_stream, args.from_id,
                                  set(args.types or ()), args.count, sys.stdout))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `switchboard follow | head`
        sys.stderr.close()
        return 0


async def follow(url: str, stream: str, from_id: str, types: set[str], count: int | None, out: TextIO) -> int:
    from engine.bus.redis_streams import RedisBus

    bus = RedisBus(url, stream=stream)
    printed = 0
    try:
        async for item in bus.subscribe(from_id):
            if isinstance(item, Gap):
                print(f"switchboard follow: messages after {item.after_id} are gone; "
                      f"going on after {item.resume_after}", file=sys.stderr)
                line = item.to_dict()
            else:
                assert isinstance(item, BusMessage)
                if types and item.type not in types:
                    continue
                line = item.to_dict()
                printed += 1
            out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
            out.flush()
            if count is not None and printed >= count:
                break
    finally:
        await bus.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.commands.follow ...`, for when the `switchboard` script is not at hand."""
    parser = argparse.ArgumentParser(prog="switchboard")
    register(parser.add_subparsers())
    args = parser.parse_args(["follow", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
