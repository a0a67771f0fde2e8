"""An Asterisk ARI stand-in that holds the adapter to the published contract.

Asterisk cannot run here, so the ARI adapter is tested against this server instead. It LOADS the Swagger
declarations Asterisk itself serves (`<repo>/../shared/ari-api-docs/`) and refuses, with 400 and a recorded
violation, any request the contract does not allow: unknown path, wrong method, unknown or repeated parameter,
missing required parameter, wrong type, value outside `allowableValues`, a body where none is declared. Every
event it sends over the events WebSocket, and every response body, is first checked against the models
(required fields, types, allowed values, no undeclared fields). Tests assert `violations` is empty at the end.

Behind the contract it simulates just enough of Asterisk: channels, bridges, playbacks, live recordings, snoop
channels; and a test scripts the far ends: an inbound call entering Stasis, an outbound leg that answers, is
busy, does not answer or keeps ringing, a remote hang-up, a key press, the WebSocket dropped.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

ARI_DOCS = Path(__file__).resolve().parents[2] / ".." / "shared" / "ari-api-docs"

# ARI hangup reason -> (Q.850 cause, cause text), as Asterisk's ari/resource_channels.c maps them.
REASON_CAUSE: dict[str, tuple[int, str]] = {
    "normal": (16, "Normal Clearing"),
    "busy": (17, "User busy"),
    "congestion": (34, "Circuit/channel congestion"),
    "no_answer": (19, "User alerting, no answer"),
    "timeout": (18, "No user responding"),
    "rejected": (21, "Call Rejected"),
    "unallocated": (1, "Unallocated (unassigned) number"),
    "normal_unspecified": (31, "Normal, unspecified"),
    "number_incomplete": (28, "Invalid number format (addr incomplete)"),
    "codec_mismatch": (58, "Bearer capability not available"),
    "interworking": (127, "Interworking, unspecified"),
    "failure": (38, "Network out of order"),
    "answered_elsewhere": (26, "Answered elsewhere"),
}
CAUSE_TEXT = {cause: text for cause, text in REASON_CAUSE.values()}
_PRIMITIVES = {"string", "int", "long", "double", "boolean", "Date", "object", "containers"}


# ---- the contract ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    resource: str  # "channels"
    path: str  # "/channels/{channelId}"
    method: str
    nickname: str
    params: dict[str, dict[str, Any]]
    response_class: str
    regex: re.Pattern[str]
    literal_segments: int


class Contract:
    """The ARI Swagger declarations, loaded from disk, as request and model checks."""

    def __init__(self, docs_dir: Path = ARI_DOCS) -> None:
        docs_dir = docs_dir.resolve()
        listing = json.loads((docs_dir / "resources.json").read_text())
        self.operations: list[Operation] = []
        self.models: dict[str, dict[str, Any]] = {}
        for api in listing["apis"]:
            name = api["path"].rsplit("/", 1)[1].replace(".{format}", "")
            declaration = json.loads((docs_dir / f"{name}.json").read_text())
            self.models.update(declaration.get("models", {}))
            for entry in declaration["apis"]:
                pattern = re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(entry["path"]))
                names = re.findall(r"\{([^/]+?)\}", entry["path"])
                literals = sum(1 for part in entry["path"].split("/") if part and "{" not in part)
                for op in entry["operations"]:
                    self.operations.append(
                        Operation(
                            resource=name,
                            path=entry["path"],
                            method=op["httpMethod"],
                            nickname=op["nickname"],
                            params={p["name"]: p for p in op.get("parameters", [])},
                            response_class=op.get("responseClass", "void"),
                            regex=re.compile(f"^{pattern}$"),
                            literal_segments=literals,
                        )
                    )
                    assert all(n in self.operations[-1].params for n in names), entry["path"]
        self.event_types: set[str] = set(self.models["Event"]["subTypes"])

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation for `method path` (most literal path wins, as in Asterisk), or ValueError."""
        candidates = [(op, m) for op in self.operations if (m := op.regex.match(path))]
        if not candidates:
            raise ValueError(f"no ARI resource at path {path!r}")
        allowed = [(op, m) for op, m in candidates if op.method == method]
        if not allowed:
            methods = sorted({op.method for op, _ in candidates})
            raise ValueError(
                f"method {method} not allowed on {path!r} (contract allows {', '.join(methods)})"
            )
        op, m = max(allowed, key=lambda pair: pair[0].literal_segments)
        names = re.findall(r"\{([^/]+?)\}", op.path)
        return op, dict(zip(names, m.groups()))

    def check_request(self, op: Operation, query: list[tuple[str, str]], body: bytes) -> list[str]:
        where = f"{op.method} {op.path} ({op.resource}.{op.nickname})"
        problems: list[str] = []
        seen: dict[str, str] = {}
        for name, value in query:
            spec = op.params.get(name)
            if spec is None or spec["paramType"] != "query":
                problems.append(f"{where}: unknown query parameter {name!r}")
                continue
            if name in seen:
                problems.append(f"{where}: parameter {name!r} given twice")
            seen[name] = value
            values = value.split(",") if spec.get("allowMultiple") else [value]
            for item in values:
                problems += [f"{where}: {p}" for p in self._check_scalar(name, item, spec)]
        for name, spec in op.params.items():
            if spec["paramType"] == "query" and spec.get("required") and name not in seen:
                problems.append(f"{where}: required parameter {name!r} missing")
        body_specs = [spec for spec in op.params.values() if spec["paramType"] == "body"]
        if body.strip():
            if not body_specs:
                problems.append(f"{where}: a request body is not allowed here")
            else:
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                if not isinstance(parsed, dict):
                    problems.append(f"{where}: the body must be a JSON object")
        elif any(spec.get("required") for spec in body_specs):
            problems.append(f"{where}: required body missing")
        return problems

    @staticmethod
    def _check_scalar(name: str, value: str, spec: dict[str, Any]) -> list[str]:
        kind = spec["dataType"]
        number: float | None = None
        if kind in ("int", "long"):
            if not re.fullmatch(r"-?[0-9]+", value):
                return [f"parameter {name!r}={value!r} is not an {kind}"]
            number = int(value)
        elif kind == "double":
            try:
                number = float(value)
            except ValueError:
                return [f"parameter {name!r}={value!r} is not a double"]
        elif kind == "boolean" and value not in ("true", "false"):
            return [f"parameter {name!r}={value!r} is not a boolean (true/false)"]
        allowed = spec.get("allowableValues")
        if allowed and allowed["valueType"] == "LIST" and value not in allowed["values"]:
            return [f"parameter {name!r}={value!r} not in allowed values {allowed['values']}"]
        below = number is not None and "min" in allowed and number < allowed["min"] if allowed else False
        above = number is not None and "max" in allowed and number > allowed["max"] if allowed else False
        if allowed and allowed["valueType"] == "RANGE" and (below or above):
            return [f"parameter {name!r}={value!r} outside range {allowed}"]
        return []

    def check_model(self, value: Any, kind: str, where: str) -> list[str]:
        """Problems with `value` as Swagger type `kind` (strict: undeclared fields are errors)."""
        if kind.startswith("List[") and kind.endswith("]"):
            if not isinstance(value, list):
                return [f"{where}: expected a list ({kind})"]
            return [
                p for i, item in enumerate(value) for p in self.check_model(item, kind[5:-1], f"{where}[{i}]")
            ]
        if kind in ("string",):
            return [] if isinstance(value, str) else [f"{where}: expected a string, got {value!r}"]
        if kind in ("int", "long"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            return [] if ok else [f"{where}: expected an integer, got {value!r}"]
        if kind == "double":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return [] if ok else [f"{where}: expected a number, got {value!r}"]
        if kind == "boolean":
            return [] if isinstance(value, bool) else [f"{where}: expected a boolean, got {value!r}"]
        if kind == "Date":
            try:
                datetime.fromisoformat(value)
                return []
            except (TypeError, ValueError):
                return [f"{where}: expected an ISO 8601 date, got {value!r}"]
        if kind in ("object", "containers"):
            return [] if isinstance(value, dict) else [f"{where}: expected an object"]
        model = self.models.get(kind)
        if model is None:
            return [f"{where}: unknown type {kind!r}"]
        if not isinstance(value, dict):
            return [f"{where}: expected a {kind} object"]
        return self._check_properties(value, dict(model["properties"]), where)

    def _check_properties(self, value: dict[str, Any], props: dict[str, Any], where: str) -> list[str]:
        problems = []
        for name, spec in props.items():
            if name not in value:
                if spec.get("required"):
                    problems.append(f"{where}: required field {name!r} missing")
                continue
            problems += self.check_model(value[name], spec["type"], f"{where}.{name}")
            allowed = spec.get("allowableValues")
            if allowed and allowed["valueType"] == "LIST" and value[name] not in allowed["values"]:
                problems.append(f"{where}.{name}: {value[name]!r} not in {allowed['values']}")
        problems += [f"{where}: field {name!r} not declared" for name in value if name not in props]
        return problems

    def check_event(self, event: Any) -> list[str]:
        """An events-WebSocket message: a Message whose `type` names an Event subtype, with its fields."""
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return ["event: not an object with a string 'type'"]
        kind = event["type"]
        if kind not in self.event_types:
            return [f"event: {kind!r} is not an Event subtype in events.json"]
        props = {
            **self.models["Message"]["properties"],
            **self.models["Event"]["properties"],
            **self.models[kind]["properties"],
        }
        return self._check_properties(event, props, f"event {kind}")


# ---- the simulated Asterisk --------------------------------------------------------------------------------


class Refusal(Exception):
    """A runtime error Asterisk would answer (404 channel not found, 409, 422): not a contract violation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class _Connection:
    apps: list[str]
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


class AriStandIn:
    """The stand-in server. `await start()`, then point the adapter at `url`; `await stop()` at the end."""

    def __init__(
        self, *, user: str = "switchboard", password: str = "s3cret", docs_dir: Path = ARI_DOCS
    ) -> None:
        self.contract = Contract(docs_dir)
        self.user, self.password = user, password
        self.url = ""
        self.violations: list[str] = []  # contract breaches by the client, or by this stand-in's own events
        self.unsimulated: list[str] = []  # valid requests this stand-in does not simulate
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query) of valid requests
        self.channels: dict[str, dict[str, Any]] = {}
        self.stasis: dict[str, str] = {}  # channel id -> app it is in
        self.bridges: dict[str, dict[str, Any]] = {}
        self.playbacks: dict[str, dict[str, Any]] = {}
        self.live_recordings: dict[str, dict[str, Any]] = {}
        self.stored_recordings: set[str] = set()
        self.moh: dict[str, str] = {}  # channel id -> MOH class playing to it
        self.dtmf_sent: dict[str, list[str]] = {}
        self.hangup_reasons: dict[str, str] = {}  # channel id -> ARI reason the client hung it up with
        self.outcomes: dict[str, str] = {}  # endpoint -> answer | busy | no_answer | missing | ring (default)
        self.originated: dict[str, dict[str, str]] = {}  # channel id -> originate query
        self.connects = 0
        self.sent_events: list[dict[str, Any]] = []
        self.dropped_events = 0
        self._connections: set[_Connection] = set()
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- server --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = Starlette(
            routes=[
                WebSocketRoute("/ari/events", self._events_socket),
                Route("/ari/{path:path}", self._http, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", ws="websockets-sansio", lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await self.until(lambda: self._server is not None and self._server.started, "the stand-in to start")
        self.url = f"http://127.0.0.1:{port}/ari"

    async def stop(self) -> None:
        await self.drop_connections()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 15)

    @staticmethod
    async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
        """Wait (bounded) for a condition; a generous bound so a loaded machine does not fail it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await asyncio.sleep(0.01)

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return header == f"Basic {expected}"

    async def _http(self, request: Request) -> Response:
        if not self._authorized(request.headers.get("authorization")):
            return JSONResponse({"message": "Authentication required"}, status_code=401)
        path = "/" + request.path_params["path"]
        body = await request.body()
        try:
            op, path_params = self.contract.match(request.method, path)
        except ValueError as error:
            return self._violation(str(error))
        problems = self.contract.check_request(op, list(request.query_params.multi_items()), body)
        if problems:
            return self._violation("; ".join(problems))
        query = dict(request.query_params)
        handler = getattr(self, f"_op_{op.resource}_{op.nickname}", None)
        if handler is None:
            self.unsimulated.append(f"{op.method} {op.path}")
            return JSONResponse({"message": f"stand-in does not simulate {op.nickname}"}, status_code=501)
        self.requests.append((op.method, path, query))
        try:
            status, payload = handler(query, **path_params)
        except Refusal as refusal:
            return JSONResponse({"message": str(refusal)}, status_code=refusal.status)
        if payload is None:
            return Response(status_code=status)
        if op.response_class not in ("void",):
            for problem in self.contract.check_model(
                payload, op.response_class, f"response of {op.nickname}"
            ):
                self.violations.append(f"stand-in bug: {problem}")
        return JSONResponse(payload, status_code=status)

    def _violation(self, message: str) -> Response:
        self.violations.append(message)
        return JSONResponse({"message": f"ARI contract violation: {message}"}, status_code=400)

    async def _events_socket(self, websocket: WebSocket) -> None:
        query = list(websocket.query_params.multi_items())
        problems = self.contract.check_request(self.contract.match("GET", "/events")[0], query, b"")
        if not self._authorized(websocket.headers.get("authorization")) or problems:
            self.violations.extend(problems)
            await websocket.close(code=1008)
            return
        await websocket.accept()
        conn = _Connection(apps=websocket.query_params["app"].split(","))
        self._connections.add(conn)
        self.connects += 1
        receiver = asyncio.create_task(self._until_closed(websocket))
        try:
            while True:
                getter = asyncio.create_task(conn.queue.get())
                done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                message = getter.result()
                if message is None:
                    await websocket.close(code=1001)
                    break
                await websocket.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            self._connections.discard(conn)
            receiver.cancel()

    @staticmethod
    async def _until_closed(websocket: WebSocket) -> None:
        try:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
        except (WebSocketDisconnect, RuntimeError):
            pass

    async def drop_connections(self) -> None:
        """Close every events WebSocket (as an Asterisk restart would) and wait until they are gone."""
        for conn in list(self._connections):
            conn.queue.put_nowait(None)
        await self.until(lambda: not self._connections, "the events WebSockets to close")

    @property
    def connected_apps(self) -> int:
        return len(self._connections)

    # ---- events --------------------------------------------------------------------------------------------

    def emit(self, kind: str, app: str, **fields: Any) -> None:
        event = {
            "type": kind,
            "application": app,
            "timestamp": _now(),
            "asterisk_id": "00:00:00:00:00:01",
            **fields,
        }
        problems = self.contract.check_event(event)
        if problems:
            self.violations.extend(f"stand-in bug: {p}" for p in problems)
            return
        receivers = [conn for conn in self._connections if app in conn.apps]
        if not receivers:
            self.dropped_events += 1  # Asterisk drops events for an app with no WebSocket
            return
        self.sent_events.append(event)
        text = json.dumps(event)
        for conn in receivers:
            conn.queue.put_nowait(text)

    def _app_of(self, channel_id: str) -> str | None:
        return self.stasis.get(channel_id) or self.originated.get(channel_id, {}).get("app")

    def _channel_event(self, kind: str, channel_id: str, **fields: Any) -> None:
        app = self._app_of(channel_id)
        if app is not None:
            self.emit(kind, app, channel=self.channels[channel_id], **fields)

    # ---- the far ends, scripted by tests ----------------------------------------------------------------

    def _new_channel(
        self, name: str, state: str, caller: str, exten: str, app_data: str, channel_id: str | None = None
    ) -> dict[str, Any]:
        n = next(self._ids)
        channel = {
            "id": channel_id or f"1700000000.{n}",
            "protocol_id": f"call-{n}@standin",
            "name": f"{name}-{n:08x}",
            "state": state,
            "caller": {"name": "", "number": caller},
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "creationtime": _now(),
            "language": "en",
            "dialplan": {
                "context": "switchboard-in",
                "exten": exten,
                "priority": 1,
                "app_name": "Stasis",
                "app_data": app_data,
            },
        }
        self.channels[channel["id"]] = channel
        return channel

    def inbound_call(
        self,
        exten: str,
        caller: str = "4165550100",
        *,
        app: str = "switchboard",
        args: list[str] | None = None,
    ) -> str:
        """A caller dials `exten`; the dialplan runs Stasis(app,exten): StasisStart reaches the app."""
        args = [exten] if args is None else args
        channel = self._new_channel("PJSIP/provider", "Ring", caller, exten, ",".join([app, *args]))
        self.stasis[channel["id"]] = app
        self.emit("StasisStart", app, args=args, channel=channel)
        return str(channel["id"])

    def answer_remote(self, channel_id: str) -> None:
        """The far end of an outbound leg picks up: state Up, then the channel enters Stasis."""
        channel = self.channels[channel_id]
        channel["state"] = "Up"
        self._channel_event("ChannelStateChange", channel_id)
        query = self.originated.get(channel_id, {})
        if "app" in query and channel_id not in self.stasis:
            self.stasis[channel_id] = query["app"]
            args = query["appArgs"].split(",") if query.get("appArgs") else []
            self.emit("StasisStart", query["app"], args=args, channel=channel)

    def hangup_remote(self, channel_id: str, cause: int = 16, tech_cause: int | None = None) -> None:
        """The far end hangs up (or fails the call) with a Q.850 cause."""
        extra = {"tech_cause": tech_cause} if tech_cause is not None else {}
        self._channel_event("ChannelHangupRequest", channel_id, cause=cause, **extra)
        self._destroy(channel_id, cause, **extra)

    def press(self, channel_id: str, digit: str) -> None:
        self._channel_event("ChannelDtmfReceived", channel_id, digit=digit, duration_ms=100)

    def finish_playback(self, playback_id: str) -> None:
        playback = self.playbacks.pop(playback_id)
        playback["state"] = "done"
        self._playback_event("PlaybackFinished", playback)

    def _playback_event(self, kind: str, playback: dict[str, Any]) -> None:
        target = playback["target_uri"].split(":", 1)[1]
        app = (
            self._app_of(target)
            if playback["target_uri"].startswith("channel:")
            else self.bridges.get(target, {}).get("_app")
        )
        if app is not None:
            self.emit(kind, app, playback={k: v for k, v in playback.items() if not k.startswith("_")})

    def _destroy(self, channel_id: str, cause: int, **extra: Any) -> None:
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        for bridge in self.bridges.values():
            if channel_id in bridge["channels"]:
                bridge["channels"].remove(channel_id)
                self._channel_event("ChannelLeftBridge", channel_id, bridge=self._public(bridge))
        for playback_id, playback in list(self.playbacks.items()):
            if playback["target_uri"] == f"channel:{channel_id}":
                self.finish_playback(playback_id)
        for name, recording in list(self.live_recordings.items()):
            if recording["target_uri"] == f"channel:{channel_id}":
                self._finish_recording(name)
        self.moh.pop(channel_id, None)
        if channel_id in self.stasis:
            self._channel_event("StasisEnd", channel_id)
        self._channel_event(
            "ChannelDestroyed", channel_id, cause=cause, cause_txt=CAUSE_TEXT.get(cause, "Unknown"), **extra
        )
        self.stasis.pop(channel_id, None)
        self.originated.pop(channel_id, None)
        del self.channels[channel_id]

    def _later(self, step: Callable[[], None]) -> None:
        """Run a far-end step just after the current response (Asterisk answers the request first)."""

        async def run() -> None:
            await asyncio.sleep(0.01)
            step()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- operations ----------------------------------------------------------------------------------------

    def _channel(self, channel_id: str, status: int = 404) -> dict[str, Any]:
        if channel_id not in self.channels:
            raise Refusal(status, "Channel not found")
        return self.channels[channel_id]

    @staticmethod
    def _public(bridge: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (list(v) if isinstance(v, list) else v) for k, v in bridge.items() if not k.startswith("_")
        }

    def _op_channels_list(self, q: dict[str, str]) -> tuple[int, Any]:
        return 200, list(self.channels.values())

    def _op_channels_get(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        return 200, self._channel(channelId)

    def _op_channels_originate(self, q: dict[str, str], channelId: str | None = None) -> tuple[int, Any]:
        channel_id = channelId or q.get("channelId")
        if channel_id in self.channels:
            raise Refusal(409, "Channel with given unique ID already exists")
        endpoint = q["endpoint"]
        if not endpoint.startswith("PJSIP/") or "app" not in q:
            raise Refusal(400, "Endpoint must be PJSIP/... and an app given (this stand-in's dialplan)")
        if self.outcomes.get(endpoint) == "missing":
            raise Refusal(400, f"Endpoint not found: {endpoint}")
        resource = endpoint.split("/", 1)[1]
        caller = q.get("callerId", "")
        channel = self._new_channel(
            f"PJSIP/{resource.split('@')[-1]}", "Down", caller, resource.split("@")[0], "", channel_id
        )
        self.originated[channel["id"]] = dict(q)
        outcome = self.outcomes.get(endpoint, "ring")
        cid = str(channel["id"])

        def ring() -> None:
            if cid not in self.channels:
                return
            self.channels[cid]["state"] = "Ringing"
            self._channel_event("ChannelStateChange", cid)
            if outcome == "answer":
                self.answer_remote(cid)
            elif outcome == "busy":
                self.hangup_remote(cid, 17, tech_cause=486)
            elif outcome == "no_answer":  # the originate timeout, elapsed at once to keep tests short
                self._destroy(cid, 19)

        self._later(ring)
        return 200, channel

    def _op_channels_originateWithId(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        return self._op_channels_originate(q, channelId)

    def _op_channels_hangup(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        if "reason" in q and "reason_code" in q:
            self.violations.append("DELETE /channels/{channelId}: 'reason' and 'reason_code' are exclusive")
            raise Refusal(400, "reason and reason_code are mutually exclusive")
        reason = q.get("reason", "normal")
        self.hangup_reasons[channelId] = reason
        cause = REASON_CAUSE[reason][0] if "reason_code" not in q else int(q["reason_code"])
        self._destroy(channelId, cause)
        return 204, None

    def _op_channels_answer(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        channel = self._channel(channelId)
        if channelId not in self.stasis:
            raise Refusal(409, "Channel not in a Stasis application")
        if channel["state"] != "Up":
            channel["state"] = "Up"
            self._channel_event("ChannelStateChange", channelId)
        return 204, None

    def _play(self, target_uri: str, media: str, playback_id: str | None, app: str | None) -> tuple[int, Any]:
        playback_id = playback_id or f"pb-{next(self._ids)}"
        if playback_id in self.playbacks:
            raise Refusal(409, "Playback with that id already exists")
        playback = {
            "id": playback_id,
            "media_uri": media.split(",")[0],
            "target_uri": target_uri,
            "language": "en",
            "state": "playing",
        }
        if len(media.split(",")) > 1:
            playback["next_media_uri"] = media.split(",")[1]
        self.playbacks[playback_id] = playback
        self._later(lambda: self._playback_event("PlaybackStarted", playback))
        return 201, playback

    def _op_channels_play(
        self, q: dict[str, str], channelId: str, playbackId: str | None = None
    ) -> tuple[int, Any]:
        self._channel(channelId)
        return self._play(
            f"channel:{channelId}", q["media"], playbackId or q.get("playbackId"), self._app_of(channelId)
        )

    def _op_channels_playWithId(self, q: dict[str, str], channelId: str, playbackId: str) -> tuple[int, Any]:
        return self._op_channels_play(q, channelId, playbackId)

    def _op_playbacks_get(self, q: dict[str, str], playbackId: str) -> tuple[int, Any]:
        if playbackId not in self.playbacks:
            raise Refusal(404, "The playback cannot be found")
        return 200, self.playbacks[playbackId]

    def _op_playbacks_stop(self, q: dict[str, str], playbackId: str) -> tuple[int, Any]:
        if playbackId not in self.playbacks:
            raise Refusal(404, "The playback cannot be found")
        self.finish_playback(playbackId)
        return 204, None

    def _op_channels_sendDTMF(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        if "dtmf" not in q:
            raise Refusal(400, "DTMF is required")
        self.dtmf_sent.setdefault(channelId, []).append(q["dtmf"])
        return 204, None

    def _op_channels_startMoh(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        self.moh[channelId] = q.get("mohClass", "default")
        return 204, None

    def _op_channels_stopMoh(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        self.moh.pop(channelId, None)
        return 204, None

    def _op_channels_hold(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        self._channel_event("ChannelHold", channelId)
        return 204, None

    def _op_channels_unhold(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        self._channel_event("ChannelUnhold", channelId)
        return 204, None

    def _record(self, target_uri: str, q: dict[str, str], app: str | None) -> tuple[int, Any]:
        name = q["name"]
        exists = name in self.live_recordings or name in self.stored_recordings
        if exists and q.get("ifExists", "fail") == "fail":
            raise Refusal(409, "Recording with that name already exists")
        if name in self.live_recordings:
            raise Refusal(409, "Recording in progress with that name")
        recording = {"name": name, "format": q["format"], "target_uri": target_uri, "state": "recording"}
        self.live_recordings[name] = {**recording, "_app": app}
        if app is not None:
            self._later(lambda: self.emit("RecordingStarted", app, recording=recording))
        return 201, recording

    def _op_channels_record(self, q: dict[str, str], channelId: str) -> tuple[int, Any]:
        self._channel(channelId)
        return self._record(f"channel:{channelId}", q, self._app_of(channelId))

    def _op_bridges_record(self, q: dict[str, str], bridgeId: str) -> tuple[int, Any]:
        bridge = self._bridge(bridgeId)
        return self._record(f"bridge:{bridgeId}", q, bridge["_app"])

    def _finish_recording(self, name: str) -> None:
        recording = self.live_recordings.pop(name)
        app = recording.pop("_app")
        recording.update(state="done", duration=1)
        self.stored_recordings.add(name)
        if app is not None:
            self.emit("RecordingFinished", app, recording=recording)

    def _op_recordings_stop(self, q: dict[str, str], recordingName: str) -> tuple[int, Any]:
        if recordingName not in self.live_recordings:
            raise Refusal(404, "Recording not found")
        self._finish_recording(recordingName)
        return 204, None

    def _op_channels_snoopChannel(
        self, q: dict[str, str], channelId: str, snoopId: str | None = None
    ) -> tuple[int, Any]:
        target = self._channel(channelId)
        snoop_id = snoopId or q.get("snoopId")
        channel = self._new_channel(f"Snoop/{target['id']}", "Up", "", "", "", snoop_id)
        self.stasis[channel["id"]] = q["app"]
        args = q["appArgs"].split(",") if q.get("appArgs") else []
        self._later(lambda: self.emit("StasisStart", q["app"], args=args, channel=channel))
        return 200, channel

    def _op_channels_snoopChannelWithId(
        self, q: dict[str, str], channelId: str, snoopId: str
    ) -> tuple[int, Any]:
        return self._op_channels_snoopChannel(q, channelId, snoopId)

    def _bridge(self, bridge_id: str) -> dict[str, Any]:
        if bridge_id not in self.bridges:
            raise Refusal(404, "Bridge not found")
        return self.bridges[bridge_id]

    def _op_bridges_list(self, q: dict[str, str]) -> tuple[int, Any]:
        return 200, [self._public(b) for b in self.bridges.values()]

    def _op_bridges_get(self, q: dict[str, str], bridgeId: str) -> tuple[int, Any]:
        return 200, self._public(self._bridge(bridgeId))

    def _op_bridges_create(self, q: dict[str, str], bridgeId: str | None = None) -> tuple[int, Any]:
        bridge_id = bridgeId or q.get("bridgeId") or f"bridge-{next(self._ids)}"
        if bridge_id in self.bridges:
            raise Refusal(409, "Bridge with that id already exists")
        types = q.get("type", "mixing").split(",")
        bridge = {
            "id": bridge_id,
            "technology": "simple_bridge",
            "bridge_type": "holding" if "holding" in types else "mixing",
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": q.get("name", ""),
            "channels": [],
            "creationtime": _now(),
            "_app": None,
        }
        self.bridges[bridge_id] = bridge
        return 200, self._public(bridge)

    def _op_bridges_createWithId(self, q: dict[str, str], bridgeId: str) -> tuple[int, Any]:
        return self._op_bridges_create(q, bridgeId)

    def _op_bridges_addChannel(self, q: dict[str, str], bridgeId: str) -> tuple[int, Any]:
        bridge = self._bridge(bridgeId)
        ids = q["channel"].split(",")
        for channel_id in ids:
            self._channel(channel_id, status=400)
            if channel_id not in self.stasis:
                raise Refusal(422, "Channel not in Stasis application")
        for channel_id in ids:
            for other in self.bridges.values():  # a channel is in one bridge at a time
                if channel_id in other["channels"] and other is not bridge:
                    other["channels"].remove(channel_id)
                    self._channel_event("ChannelLeftBridge", channel_id, bridge=self._public(other))
            if channel_id not in bridge["channels"]:
                bridge["channels"].append(channel_id)
                bridge["_app"] = bridge["_app"] or self.stasis[channel_id]
                self._channel_event("ChannelEnteredBridge", channel_id, bridge=self._public(bridge))
        return 204, None

    def _op_bridges_removeChannel(self, q: dict[str, str], bridgeId: str) -> tuple[int, Any]:
        bridge = self._bridge(bridgeId)
        ids = q["channel"].split(",")
        for channel_id in ids:
            self._channel(channel_id, status=400)
            if channel_id not in bridge["channels"]:
                raise Refusal(422, "Channel not in this bridge")
        for channel_id in ids:
            bridge["channels"].remove(channel_id)
            self._channel_event("ChannelLeftBridge", channel_id, bridge=self._public(bridge))
        return 204, None

    def _op_bridges_destroy(self, q: dict[str, str], bridgeId: str) -> tuple[int, Any]:
        bridge = self._bridge(bridgeId)
        for channel_id in list(bridge["channels"]):
            bridge["channels"].remove(channel_id)
            self._channel_event("ChannelLeftBridge", channel_id, bridge=self._public(bridge))
        del self.bridges[bridgeId]
        if bridge["_app"] is not None:
            self.emit("BridgeDestroyed", bridge["_app"], bridge=self._public(bridge))
        return 204, None
