"""`switchboard serve`: run the engine with embedded defaults (SQLite, in-process bus) or as configured."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the engine: HTTP API, WebSockets, ACD, store and bus")
    p.add_argument("--config", help="site file (default: SWITCHBOARD_CONFIG or config/switchboard.yaml)")
    p.add_argument("--host", help="bind address (default: SWITCHBOARD_HTTP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default: SWITCHBOARD_HTTP_PORT or 8080)")
    p.add_argument("--data-dir", help="SQLite file and media (default: SWITCHBOARD_DATA_DIR or ./var)")
    p.add_argument("--no-sip", action="store_true", help="do not start the embedded SIP voice back end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from engine import collector, logs
    from engine.app import create_app
    from engine.configfile import ConfigFileError, load_file
    from engine.settings import Settings

    overrides = {k: v for k, v in {"config": args.config and Path(args.config), "http_host": args.host,
                                   "http_port": args.port, "data_dir": args.data_dir and Path(args.data_dir)
                                   }.items() if v is not None}
    settings = Settings(**overrides)
    if not getattr(args, "no_sip", False) and "SWITCHBOARD_SIP_ENABLED" not in os.environ:
        settings.sip_enabled = True  # serve answers calls by default; create_app alone (tests) does not
    log_config = logs.setup(settings.log_level)
    try:
        site = load_file(settings.config)
    except ConfigFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    from cti.connectors import CrmConfigError, check_settings

    try:
        check_settings(settings)
    except CrmConfigError as exc:
        print(f"switchboard serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, site)
    config = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_config=log_config,
                            ws_max_size=65536, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    collector.settle()  # what start-up loaded, frozen; young collections less often (engine/collector.py)

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def reload() -> None:
            from engine.api.admin import reload_site

            try:
                result = await reload_site(app)
                logging.getLogger("switchboard").info("config reloaded", extra=result)
            except Exception as exc:  # a bad reload is refused; the running config stays
                logging.getLogger("switchboard").error("config reload refused", extra={"error": str(exc)})

        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
        await server.serve()

    asyncio.run(main())
    return 0
