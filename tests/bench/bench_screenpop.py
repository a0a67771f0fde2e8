"""Screen-pop latency: offer -> pop on the agent's own socket, with the builtin CRM, many agents connected.

    python tests/bench/bench_screenpop.py [--agents 100] [--contacts 500] [--rate 50] [--json out.json]

A real `switchboard serve` (SQLite, in-process bus, builtin CRM over the case store) with N agents who can
all take the queue. Setup (not measured): residents with phone numbers and open cases, every agent logged
in and ready, one agent WebSocket per agent. Then contacts arrive at R per second with a caller id: most
of them of a known resident (their pop names them and lists their cases), the rest unknown (no_match).
Each agent, when an offer reaches its socket, notes the time, waits for the pop on the same socket,
notes that time, then accepts and completes the contact over HTTP so it can take the next one.

Prints one JSON object: offer->pop p50/p90/p99/max in ms (both times taken on this process's monotonic
clock as the messages arrive: what a desktop would see), POST->offer for comparison, the pops by status,
and any contact whose pop never came or came before its offer. No pass/fail: the goal (p99 < 50 ms on
loopback) is for people to compare against.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_engine import (
    PASSWORD,
    REPO,
    AgentSocket,
    Server,
    agent_ids,
    close_sockets,
    log,
    ms,
    quantile,
    site_config,
)


class Desk(AgentSocket):
    """One agent's socket: times each offer and its pop, then finishes the contact over HTTP."""

    def __init__(self, agent: str, url: str, http: httpx.AsyncClient, results: dict[str, Any]):
        super().__init__(agent, url)
        self.http, self.results = http, results
        self.offered: dict[str, float] = {}

    def on_message(self, m: dict[str, Any], arrived: float, arrived_wall: float) -> None:
        kind, cid = m.get("type"), m.get("contact")
        if kind == "ContactOffered" and m.get("agent") == self.agent and cid is not None:
            self.offered[cid] = arrived
            self.results["offer_at"][cid] = arrived
        elif kind == "cti.screen_pop" and cid is not None:
            offered = self.offered.pop(cid, None)
            if offered is None:
                self.results["pop_before_offer"].append(cid)
                return
            self.results["offer_to_pop"].append(arrived - offered)
            self.results["status"][m["status"]] = self.results["status"].get(m["status"], 0) + 1
            self.spawn(self.finish(cid))

    def lost(self, detail: str) -> None:
        self.results["errors"].append(f"socket {detail}")

    async def finish(self, cid: str) -> None:
        try:
            r = await self.http.post(f"/api/v1/contacts/{cid}/accept")
            r.raise_for_status()
            r = await self.http.post(f"/api/v1/contacts/{cid}/complete", json={})
            r.raise_for_status()
            self.results["completed"] += 1
        except httpx.HTTPError as exc:
            self.results["errors"].append(f"{cid}: {exc}")


async def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    server = Server(workdir, site_config(args.agents, offer_timeout_s=120),
                    Path(args.server_log or REPO / "test-artifacts" / "bench" / "screenpop-server.log"),
                    {"SWITCHBOARD_SIP_ENABLED": "false"})
    results: dict[str, Any] = {"offer_to_pop": [], "offer_at": {}, "status": {}, "pop_before_offer": [],
                               "completed": 0, "errors": []}
    desks: list[Desk] = []
    listeners: list[asyncio.Task[None]] = []
    try:
        await server.ready()
        base = server.base_url
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as anon:
            r = await anon.post("/api/v1/auth/login", json={"username": "sup", "password": PASSWORD})
            r.raise_for_status()
            token = r.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers) as http:
            # residents with open cases (the callers the pop should find)
            phones = []
            for i in range(args.residents):
                phone = f"905555{i:04d}"
                person = {"first_name": f"Resident{i}", "last_name": "Bench", "phones": [phone]}
                r = await http.post("/api/v1/residents", json=person)
                r.raise_for_status()
                for n in range(1 + i % 3):
                    c = await http.post("/api/v1/cases", json={"service_code": "pothole", "channel": "voice",
                                                               "resident_id": r.json()["id"],
                                                               "location": {"address": f"{n + 1} Bench St"}})
                    c.raise_for_status()
                phones.append(phone)
            # a supervisor may follow any agent: one socket per agent, as each desktop has its own
            ids = agent_ids(args.agents)
            desks += [Desk(a, f"{server.ws_url}?token={token}&agent={a}", http, results) for a in ids]
            listeners += [asyncio.create_task(d.listen()) for d in desks]
            await asyncio.wait_for(asyncio.gather(*(d.connected.wait() for d in desks)), 120)
            if results["errors"]:
                raise RuntimeError(f"setup failed: {results['errors'][:3]}")
            for a in ids:
                (await http.post(f"/api/v1/agents/{a}/login", json={"ready": True})).raise_for_status()
            log(f"{args.agents} agents connected and ready, {len(phones)} residents; sending {args.contacts}",
                "screenpop")

            sent: dict[str, float] = {}

            async def one(i: int) -> None:
                known = rng.random() < args.known
                caller = rng.choice(phones) if known and phones else f"416555{i:04d}"
                cid = f"sp-{i:05d}"
                sent[cid] = time.perf_counter()
                body = {"id": cid, "queue": "general", "channel": "voice",
                        "attributes": {"caller_id": caller}}
                r = await http.post("/api/v1/contacts", json=body)
                if r.status_code != 201:
                    results["errors"].append(f"{cid}: {r.status_code} {r.text[:200]}")

            started = time.perf_counter()
            creators = []
            for i in range(args.contacts):
                creators.append(asyncio.create_task(one(i)))
                await asyncio.sleep(max(0.0, started + (i + 1) / args.rate - time.perf_counter()))
            await asyncio.gather(*creators)
            deadline = time.perf_counter() + 60
            while (results["completed"] + len(results["errors"]) < args.contacts
                   and time.perf_counter() < deadline):
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
    finally:
        await close_sockets(desks, listeners)
        server.stop()

    pops = sorted(results["offer_to_pop"])
    to_offer = sorted(results["offer_at"][c] - sent[c] for c in sent if c in results["offer_at"])
    return {
        "agents": args.agents, "contacts": args.contacts, "rate_per_s": args.rate, "crm": "builtin",
        "database": "sqlite", "bus": "memory", "residents": args.residents, "known_share": args.known,
        "pops": len(pops), "pops_by_status": results["status"], "completed": results["completed"],
        "offer_to_pop_p50_ms": ms(quantile(pops, 0.50), 2),
        "offer_to_pop_p90_ms": ms(quantile(pops, 0.90), 2),
        "offer_to_pop_p99_ms": ms(quantile(pops, 0.99), 2),
        "offer_to_pop_max_ms": ms(max(pops) if pops else None, 2),
        "post_to_offer_p50_ms": ms(quantile(to_offer, 0.50), 2),
        "post_to_offer_p99_ms": ms(quantile(to_offer, 0.99), 2),
        "pop_before_offer": len(results["pop_before_offer"]),
        "missing_pops": args.contacts - len(pops),
        "errors": len(results["errors"]), "error_samples": results["errors"][:5],
        "elapsed_s": round(elapsed, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--contacts", type=int, default=500)
    p.add_argument("--rate", type=float, default=50.0, help="contacts per second")
    p.add_argument("--residents", type=int, default=50, help="known callers (each with 1-3 open cases)")
    p.add_argument("--known", type=float, default=0.8, help="share of contacts from a known caller")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--server-log", type=Path, default=None)
    args = p.parse_args(argv)
    if args.agents < 1 or args.contacts < 1 or args.rate <= 0 or not 0 <= args.known <= 1:
        p.error("--agents and --contacts must be at least 1, --rate positive, --known within 0..1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sb-screenpop-") as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
