"""A Dynamics 365 (Dataverse Web API v9.2) stand-in that holds the connector to what Microsoft publishes.

Dynamics cannot run here, so `cti/connectors/dynamics.py` is tested against this real HTTP server (Starlette
on uvicorn, a free port). It serves the Microsoft identity platform token endpoint (client-credentials form)
and the Web API, and it REFUSES what Dataverse would refuse, with Dataverse's status and OData error body:
- no or unknown bearer token: 401 (tokens expire, and `revoke_tokens()` makes the next call see a 401);
- an entity set, property, navigation property or system query option not in `dynamics_schema` (copied from
  Microsoft's entity reference): 404 / 400 `{"error": {"code": "0x...", "message": "..."}}`;
- a $filter that does not parse (unescaped quote, unknown operator, a quoted GUID compared with a Guid
  property, a string compared with an Int32); $select/$orderby naming unknown properties; a bad $top;
- a write setting a read-only attribute, a lookup written directly instead of through `x@odata.bind`, a
  bind to a record that does not exist, a status reason that does not belong to the state, a PATCH to a
  resolved case, a CloseIncident on a case that is not active;
- a request without the OData-MaxVersion/OData-Version/Accept headers the Web API documents;
- a `$batch` that is not multipart/mixed with boundaries, a part that is not `application/http` with
  `Content-Transfer-Encoding: binary`, a change set request without a unique Content-ID, a GET inside a
  change set, a batch inside a batch.
Each request is a transaction (a refused write leaves nothing behind), and so is each change set of a `$batch`:
one refused request in it undoes the others, and the batch answers with that request's status and error.
Every refusal is also appended to `violations`; tests assert it is empty at the end of a good path.

Knobs: `delay_s` (answer slowly), `fail_status` (answer every data request with that 5xx), `garbage`
(answer 200 with an HTML page, as a proxy or captive portal would), `token_lifetime_s`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import uvicorn
from dynamics_schema import (
    ENTITY_SETS,
    FORMATTED,
    INCIDENT_STATE_LABEL,
    INCIDENT_STATUS_LABEL,
    INCIDENT_STATUS_STATE,
    SUPPORTED_QUERY_OPTIONS,
    SYSTEM_QUERY_OPTIONS,
    Attribute,
    Entity,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

API = "/api/data/v9.2"
GUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class ODataError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def unknown_property(entity: Entity, name: str) -> ODataError:
    return ODataError(400, "0x0", f"Could not find a property named '{name}' on type '{entity.type_name}'.")


def syntax(message: str) -> ODataError:
    return ODataError(400, "0x80060888", message)


# ---- $filter: a small OData expression parser over the published properties ------------------------------

_TOKEN = re.compile(r"""\s*(?:
      (?P<string>'(?:[^']|'')*'(?!'))
    | (?P<guid>""" + GUID_RE + r""")(?![\w-])
    | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?)(?![\w-])
    | (?P<number>-?\d+(?:\.\d+)?)(?![\w.])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[(),])
    )""", re.VERBOSE)

_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"contains", "startswith", "endswith"}


@dataclass
class Tok:
    kind: str
    text: str


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise syntax(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        out.append(Tok(kind, m.group(kind)))
        pos = m.end()
    return out


Predicate = Callable[[dict[str, Any]], bool]


class FilterParser:
    """filter := or; or := and ('or' and)*; and := unary ('and' unary)*; unary := 'not' unary | primary;
    primary := '(' or ')' | func '(' prop ',' literal ')' | prop op literal."""

    def __init__(self, entity: Entity, text: str):
        self.entity, self.text = entity, text
        self.toks = tokenize(text)
        self.i = 0

    def parse(self) -> Predicate:
        pred = self._or()
        if self.i != len(self.toks):
            raise syntax(f"Syntax error: character '{self.toks[self.i].text}' is not valid at position "
                         f"{self.i} in '{self.text}'.")
        return pred

    def _peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _next(self, what: str) -> Tok:
        t = self._peek()
        if t is None:
            raise syntax(f"Syntax error: expected {what} at the end of '{self.text}'.")
        self.i += 1
        return t

    def _word(self, w: str) -> bool:
        t = self._peek()
        if t is not None and t.kind == "word" and t.text == w:
            self.i += 1
            return True
        return False

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._word("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._word("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def _unary(self) -> Predicate:
        if self._word("not"):
            inner = self._unary()
            return lambda r: not inner(r)
        return self._primary()

    def _expect(self, text: str) -> None:
        t = self._next(f"'{text}'")
        if t.text != text:
            raise syntax(f"Syntax error: expected '{text}' but found '{t.text}' in '{self.text}'.")

    def _property(self) -> Attribute:
        t = self._next("a property")
        if t.kind != "word":
            raise syntax(f"Syntax error: expected a property but found '{t.text}' in '{self.text}'.")
        attr = self.entity.property(t.text)
        if attr is None:
            raise unknown_property(self.entity, t.text)
        return attr

    def _literal(self, attr: Attribute, op: str) -> Any:
        t = self._next("a literal")
        edm = attr.edm
        if t.kind == "word" and t.text == "null":
            return None
        if t.kind == "word" and t.text in ("true", "false") and edm == "Edm.Boolean":
            return t.text == "true"
        if t.kind == "string" and edm == "Edm.String":
            return t.text[1:-1].replace("''", "'")
        if t.kind == "guid" and edm == "Edm.Guid":
            return t.text.lower()
        if t.kind == "number" and edm in ("Edm.Int32", "Edm.Int64", "Edm.Double"):
            return float(t.text) if "." in t.text else int(t.text)
        if t.kind == "datetime" and edm == "Edm.DateTimeOffset":
            return t.text
        found = {"string": "Edm.String", "guid": "Edm.Guid", "number": "Edm.Int32",
                 "datetime": "Edm.DateTimeOffset"}.get(t.kind, t.text)
        raise syntax(f"A binary operator with incompatible types was detected. Found operand types '{edm}' and "
                     f"'{found}' for operator kind '{op}'.")

    def _primary(self) -> Predicate:
        t = self._peek()
        if t is not None and t.text == "(":
            self.i += 1
            inner = self._or()
            self._expect(")")
            return inner
        if t is not None and t.kind == "word" and t.text in _FUNCTIONS:
            self.i += 1
            self._expect("(")
            attr = self._property()
            if attr.edm != "Edm.String":
                raise syntax(f"No function signature for the function with name '{t.text}' matches the "
                             f"specified arguments ({attr.edm}).")
            self._expect(",")
            value = self._literal(attr, t.text)
            self._expect(")")
            name, fn = attr.web_name, t.text
            if not isinstance(value, str):
                raise syntax(f"The function '{fn}' needs a string literal.")
            needle = value.lower()
            ops: dict[str, Callable[[str], bool]] = {"contains": lambda s: needle in s,
                                                     "startswith": lambda s: s.startswith(needle),
                                                     "endswith": lambda s: s.endswith(needle)}
            check = ops[fn]
            return lambda r: isinstance(r.get(name), str) and check(r[name].lower())
        attr = self._property()
        op_tok = self._next("an operator")
        if op_tok.kind != "word" or op_tok.text not in _COMPARE:
            raise syntax(f"Syntax error: '{op_tok.text}' is not a comparison operator (eq ne gt ge lt le) "
                         f"in '{self.text}'.")
        value = self._literal(attr, op_tok.text)
        return _comparison(attr.web_name, op_tok.text, value)


def _fold(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v  # Dataverse string comparison is case-insensitive


def _comparison(name: str, op: str, value: Any) -> Predicate:
    def check(r: dict[str, Any]) -> bool:
        have = _fold(r.get(name))
        want = _fold(value)
        if op == "eq":
            return bool(have == want)
        if op == "ne":
            return bool(have != want)
        if have is None or want is None:
            return False
        return bool({"gt": have > want, "ge": have >= want, "lt": have < want, "le": have <= want}[op])
    return check


# ---- the server --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """One Web API request, whether it came over HTTP or as a part of a $batch."""

    method: str
    segment: str  # the path after /api/data/v9.2/
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @classmethod
    def parse_http(cls, text: bytes, org_url: str) -> Op:
        """A request written out as HTTP/1.1 text (a $batch part): request line, headers, blank line, body."""
        head, _, body = text.replace(b"\r\n", b"\n").partition(b"\n\n")
        lines = head.decode("utf-8").strip("\n").split("\n")
        m = re.fullmatch(r"([A-Z]+) (\S+) HTTP/1\.1", lines[0].strip())
        if m is None:
            raise ODataError(400, "0x80060888", f"The batch part's request line {lines[0]!r} is not 'METHOD URL "
                             "HTTP/1.1'.")
        url = urlsplit(m.group(2))
        path = url.path if not url.scheme else (url.path if f"{url.scheme}://{url.netloc}" == org_url else "")
        if not path.startswith(API + "/"):
            raise ODataError(400, "0x80060888", f"The batch part's URL {m.group(2)!r} is not under this "
                             f"organization's {API}.")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ODataError(400, "0x80060888", f"The batch part's header line {line!r} is malformed.")
            headers[name.strip().lower()] = value.strip()
        return cls(m.group(1), unquote(path[len(API) + 1:]), parse_qsl(url.query, keep_blank_values=True),
                   headers, body.rstrip(b"\n"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DynamicsStandIn:
    def __init__(self, *, tenant: str = "lakeview.onmicrosoft.com", client_id: str | None = None,
                 client_secret: str = "s3cret-value") -> None:
        self.tenant = tenant
        self.client_id = client_id or str(uuid.uuid4())
        self.client_secret = client_secret
        self.token_lifetime_s = 3599
        self.delay_s = 0.0
        self.fail_status: int | None = None
        self.garbage = False
        self.tokens: dict[str, datetime] = {}
        self.token_requests = 0
        self.requests: list[tuple[str, str]] = []  # (method, path?query) of every Web API request
        self.violations: list[str] = []
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in ENTITY_SETS}
        self._tickets = 1000
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.url = ""
        self.org_url = ""
        self.token_url = ""

    # ---- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = Starlette(routes=[
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route(API + "/{segment:path}", self._api, methods=["GET", "POST", "PATCH", "DELETE", "PUT"]),
        ])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not self._server.started:
            if loop.time() > deadline:
                raise AssertionError("the Dynamics stand-in did not start within 15 s")
            await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        self.org_url = self.url  # the org URL and the login host share the server
        self.token_url = f"{self.url}/{self.tenant}/oauth2/v2.0/token"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 15)

    # ---- knobs and seeds -----------------------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """As if every token expired early: the next Web API call gets 401."""
        self.tokens.clear()

    def add_contact(self, **fields: Any) -> str:
        cid = str(uuid.uuid4())
        rec = {"contactid": cid, "statecode": 0, "statuscode": 1, "createdon": _now(), **fields}
        self._derive("contacts", rec)
        self.records["contacts"][cid] = rec
        return cid

    def add_incident(self, customer: str, title: str, *, statecode: int = 0, statuscode: int = 1,
                     createdon: str | None = None, **fields: Any) -> str:
        iid = str(uuid.uuid4())
        self._tickets += 1
        rec = {"incidentid": iid, "ticketnumber": f"CAS-{self._tickets:05d}-X1Y2Z3", "title": title,
               "_customerid_value": customer, "statecode": statecode, "statuscode": statuscode,
               "createdon": createdon or _now(), "prioritycode": 2, **fields}
        self.records["incidents"][iid] = rec
        return iid

    def _derive(self, entity_set: str, rec: dict[str, Any]) -> None:
        if entity_set == "contacts":
            rec["fullname"] = " ".join(p for p in (rec.get("firstname"), rec.get("lastname")) if p) or None
            lines = [rec.get("address1_line1"), rec.get("address1_city"), rec.get("address1_postalcode")]
            rec["address1_composite"] = "\r\n".join(x for x in lines if x) or None

    # ---- token endpoint ------------------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        self.token_requests += 1
        if request.path_params["tenant"] != self.tenant:
            return self._aad(400, "invalid_request", f"AADSTS90002: Tenant '{request.path_params['tenant']}' "
                             "not found.")
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return self._aad(400, "invalid_request", "AADSTS900144: The request body must contain the "
                             "following parameter: 'grant_type'.")
        form = await request.form()
        if form.get("grant_type") != "client_credentials":
            return self._aad(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported "
                             "grant type.")
        if form.get("client_id") != self.client_id:
            return self._aad(400, "unauthorized_client", f"AADSTS700016: Application with identifier "
                             f"'{form.get('client_id')}' was not found in the directory.")
        if form.get("client_secret") != self.client_secret:
            return self._aad(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the "
                             "secret being sent in the request is the client secret value, not the client "
                             "secret ID.")
        if form.get("scope") != f"{self.org_url}/.default":
            return self._aad(400, "invalid_scope", f"AADSTS70011: The provided value for the input parameter "
                             f"'scope' is not valid. The scope {form.get('scope')} is not valid.")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = datetime.now(UTC) + timedelta(seconds=self.token_lifetime_s)
        return JSONResponse({"token_type": "Bearer", "expires_in": self.token_lifetime_s,
                             "ext_expires_in": self.token_lifetime_s, "access_token": token})

    def _aad(self, status: int, error: str, description: str) -> Response:
        self.violations.append(f"token: {error}: {description}")
        return JSONResponse({"error": error, "error_description": description, "error_codes": [],
                             "timestamp": _now()}, status_code=status)

    # ---- Web API -------------------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        self.requests.append((request.method, request.url.path + ("?" + request.url.query
                                                                   if request.url.query else "")))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        auth = request.headers.get("authorization", "")
        expiry = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if expiry is None or expiry < datetime.now(UTC):
            return Response(status_code=401, headers={
                "WWW-Authenticate": f'Bearer authorization_uri={self.url}/{self.tenant}/oauth2/authorize'})
        if self.fail_status:
            return JSONResponse({"error": {"code": "0x80040216", "message": "An unexpected error occurred."}},
                                status_code=self.fail_status)
        if self.garbage:
            return PlainTextResponse("<html><body>Service temporarily unavailable</body></html>",
                                     media_type="text/html")
        op = Op(request.method, request.path_params["segment"], request.query_params.multi_items(),
                {k.lower(): v for k, v in request.headers.items()}, await request.body())
        try:
            self._check_headers(op)
            if op.segment == "$batch":
                return self._batch(op)
            return self._atomic(op)
        except ODataError as e:
            self.violations.append(f"{op.method} {request.url.path}: {e.status} {e.message}")
            return JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=e.status)

    def _check_headers(self, op: Op, *, in_batch: bool = False) -> None:
        if not in_batch:  # the OData headers of a $batch part are the batch's own
            for name, want in (("odata-maxversion", "4.0"), ("odata-version", "4.0")):
                if op.headers.get(name) != want:
                    raise ODataError(400, "0x80060888", f"The {name} header must be {want}.")
            if "application/json" not in op.headers.get("accept", ""):
                raise ODataError(400, "0x80060888", "The Accept header must include application/json.")
        wanted = "multipart/mixed" if op.segment == "$batch" else "application/json"
        if op.method in ("POST", "PATCH") and not op.headers.get("content-type", "").startswith(wanted):
            raise ODataError(415, "0x80060888", f"The content type must be {wanted}.")

    def _atomic(self, op: Op) -> Response:
        """One request: Dataverse runs each in a transaction, so a refused write leaves nothing behind."""
        if op.method == "GET":
            return self._dispatch(op)
        saved = self._save()
        try:
            return self._dispatch(op)
        except ODataError:
            self._restore(saved)
            raise

    def _save(self) -> tuple[dict[str, dict[str, dict[str, Any]]], int]:
        return copy.deepcopy(self.records), self._tickets

    def _restore(self, saved: tuple[dict[str, dict[str, dict[str, Any]]], int]) -> None:
        self.records, self._tickets = saved

    def _dispatch(self, op: Op) -> Response:
        segment = op.segment
        if segment == "CloseIncident":
            if op.method != "POST":
                raise ODataError(405, "", "The requested resource does not support http method "
                                 f"'{op.method}'.")
            return self._close_incident(self._json(op))
        m = re.fullmatch(r"([A-Za-z_]+)(?:\((" + GUID_RE + r")\))?", segment)
        if m is None or m.group(1) not in ENTITY_SETS:
            raise ODataError(404, "0x8006088a", f"Resource not found for the segment '{segment.split('(')[0]}'.")
        entity = ENTITY_SETS[m.group(1)]
        key = m.group(2).lower() if m.group(2) else None
        params = self._query_options(op, entity)
        if op.method == "GET":
            if key is None:
                return self._query(op, entity, params)
            rec = self._get(entity, key)
            return self._json_response(op, entity, rec, params.get("$select"))
        if op.method == "POST" and key is None:
            body = self._json(op)
            rec = self._create(entity, body)
            if "return=representation" in op.headers.get("prefer", ""):
                return self._json_response(op, entity, rec, params.get("$select"), status=201)
            return Response(status_code=204, headers={
                "OData-EntityId": f"{self.org_url}{API}/{entity.entity_set}({rec[entity.primary_id]})"})
        if op.method == "PATCH" and key is not None:
            body = self._json(op)
            if key not in self.records[entity.entity_set]:
                if op.headers.get("if-match") == "*":
                    raise self._missing(entity, key)
                self.violations.append(f"PATCH {entity.entity_set}({key}) without If-Match: * upserts a record")
                self._create(entity, {**body, entity.primary_id: key})
                return Response(status_code=204)
            self._update(entity, key, body)
            return Response(status_code=204)
        raise ODataError(405, "", f"The requested resource does not support http method '{op.method}'.")

    def _json(self, op: Op) -> dict[str, Any]:
        try:
            body = json.loads(op.body)
        except ValueError:
            raise ODataError(400, "0x80060891", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ODataError(400, "0x80060891", "The request body must be a JSON object.")
        return body

    # ---- $batch (OData 4.0 part 1, 11.7; Dataverse "Execute batch operations using the Web API") ----------

    def _batch(self, op: Op) -> Response:
        """Parts run in order; a change set is one transaction. Without `Prefer: odata.continue-on-error`
        (not implemented: the connector does not send it) the first failing request stops the batch, and the
        batch answers with that request's status and error."""
        if op.method != "POST":
            raise ODataError(405, "", f"The requested resource does not support http method '{op.method}'.")
        if "odata.continue-on-error" in op.headers.get("prefer", ""):
            raise ODataError(400, "0x80060888", "The stand-in does not implement odata.continue-on-error; the "
                             "connector should not need it.")
        batch = _multipart(op.headers["content-type"].encode(), op.body, "batch")
        out: list[tuple[Message | None, list[tuple[str | None, Response]]]] = []
        for part in batch.iter_parts():
            if part.get_content_type() == "multipart/mixed":  # a change set
                saved = self._save()
                done: list[tuple[str | None, Response]] = []
                ids: set[str] = set()
                try:
                    if not part.get_boundary():
                        raise ODataError(400, "0x80060888", "A change set needs a boundary.")
                    for request in part.iter_parts():
                        content_id = request.get("content-id")
                        if content_id is None or content_id in ids:
                            raise ODataError(400, "0x80060888", "Each request in a change set needs a Content-ID "
                                             "header, unique in the change set.")
                        ids.add(content_id)
                        inner = self._part_op(request)
                        if inner.method == "GET":
                            raise ODataError(400, "0x80060888", "GET requests are not allowed in a change set.")
                        done.append((content_id, self._dispatch(inner)))
                except ODataError as e:
                    self._restore(saved)  # the change set is all or nothing
                    return self._batch_failed(op, e)
                out.append((part, done))
            else:
                try:
                    response = self._dispatch(self._part_op(part))
                except ODataError as e:
                    return self._batch_failed(op, e)
                out.append((None, [(None, response)]))
        return self._batch_response(out)

    def _part_op(self, part: Message) -> Op:
        if part.get_content_type() != "application/http" or part.get("content-transfer-encoding") != "binary":
            raise ODataError(400, "0x80060888", "Each batch part must be Content-Type: application/http with "
                             "Content-Transfer-Encoding: binary.")
        raw = part.get_payload(decode=True)
        assert isinstance(raw, bytes)
        inner = Op.parse_http(raw, self.org_url)
        if inner.segment == "$batch":
            raise ODataError(400, "0x80060888", "A batch request cannot contain another batch request.")
        self._check_headers(inner, in_batch=True)
        return inner

    def _batch_failed(self, op: Op, e: ODataError) -> Response:
        self.violations.append(f"{op.method} $batch: {e.status} {e.message}")
        error = JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=e.status)
        return self._batch_response([(None, [(None, error)])], status=e.status)

    def _batch_response(self, items: list[tuple[Message | None, list[tuple[str | None, Response]]]],
                        status: int = 200) -> Response:
        boundary = f"batchresponse_{uuid.uuid4()}"
        chunks: list[bytes] = []
        for changeset, responses in items:
            chunks.append(f"--{boundary}\r\n".encode())
            if changeset is None:
                _, response = responses[0]
                chunks.append(_http_part(None, response))
                continue
            inner = f"changesetresponse_{uuid.uuid4()}"
            chunks.append(f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n".encode())
            for content_id, response in responses:
                chunks.append(f"--{inner}\r\n".encode() + _http_part(content_id, response))
            chunks.append(f"--{inner}--\r\n".encode())
        chunks.append(f"--{boundary}--\r\n".encode())
        return Response(b"".join(chunks), status_code=status, headers={"OData-Version": "4.0"},
                        media_type=f"multipart/mixed; boundary={boundary}")

    def _missing(self, entity: Entity, key: str) -> ODataError:
        return ODataError(404, "0x80040217", f"{entity.logical_name} With Id = {key} Does Not Exist")

    def _get(self, entity: Entity, key: str) -> dict[str, Any]:
        rec = self.records[entity.entity_set].get(key)
        if rec is None:
            raise self._missing(entity, key)
        return rec

    # ---- query options -------------------------------------------------------------------------------------

    def _query_options(self, op: Op, entity: Entity) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for name, value in op.query:
            if name in seen:
                raise syntax(f"Query option '{name}' was specified more than once, but it must be specified at "
                             "most once.")
            seen.add(name)
            if name not in SYSTEM_QUERY_OPTIONS:
                raise syntax(f"The query parameter '{name}' is not supported.")
            if name not in SUPPORTED_QUERY_OPTIONS:
                raise syntax(f"The stand-in does not implement {name}; the connector should not need it.")
            if name == "$select":
                cols = [c.strip() for c in value.split(",")]
                for c in cols:
                    if entity.property(c) is None:
                        raise unknown_property(entity, c)
                out[name] = cols
            elif name == "$filter":
                out[name] = FilterParser(entity, value).parse()
            elif name == "$orderby":
                order: list[tuple[str, bool]] = []
                for part in value.split(","):
                    bits = part.split()
                    if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1] not in ("asc", "desc")):
                        raise syntax(f"Syntax error in $orderby '{value}'.")
                    if entity.property(bits[0]) is None:
                        raise unknown_property(entity, bits[0])
                    order.append((bits[0], len(bits) == 2 and bits[1] == "desc"))
                out[name] = order
            elif name == "$top":
                if not value.isdigit() or int(value) <= 0:
                    raise syntax(f"Invalid value '{value}' for $top query option found. The $top query option "
                                 "requires a non-negative integer value.")
                out[name] = int(value)
        return out

    def _query(self, op: Op, entity: Entity, params: dict[str, Any]) -> Response:
        rows = list(self.records[entity.entity_set].values())
        if "$filter" in params:
            rows = [r for r in rows if params["$filter"](r)]
        for name, desc in reversed(params.get("$orderby", [])):
            rows.sort(key=lambda r, n=name: (r.get(n) is None, r.get(n) or ""), reverse=desc)
        if "$top" in params:
            rows = rows[: params["$top"]]
        annotate = FORMATTED in op.headers.get("prefer", "")
        value = [self._shape(entity, r, params.get("$select"), annotate) for r in rows]
        return JSONResponse({"@odata.context": f"{self.org_url}{API}/$metadata#{entity.entity_set}", "value": value})

    def _shape(self, entity: Entity, rec: dict[str, Any], select: list[str] | None, annotate: bool) -> dict[str, Any]:
        cols = select or [a.web_name for a in entity.attributes.values()]
        out: dict[str, Any] = {"@odata.etag": f'W/"{abs(hash(json.dumps(rec, sort_keys=True))) % 10**7}"'}
        for c in cols:
            out[c] = rec.get(c)
            if annotate and entity.logical_name == "incident" and rec.get(c) is not None:
                if c == "statecode":
                    out[f"{c}@{FORMATTED}"] = INCIDENT_STATE_LABEL[rec[c]]
                elif c == "statuscode":
                    out[f"{c}@{FORMATTED}"] = INCIDENT_STATUS_LABEL[rec[c]]
        out.setdefault(entity.primary_id, rec[entity.primary_id])  # Dataverse always returns the key
        return out

    def _json_response(self, op: Op, entity: Entity, rec: dict[str, Any], select: list[str] | None,
                       status: int = 200) -> Response:
        annotate = FORMATTED in op.headers.get("prefer", "")
        body = {"@odata.context": f"{self.org_url}{API}/$metadata#{entity.entity_set}/$entity",
                **self._shape(entity, rec, select, annotate)}
        return JSONResponse(body, status_code=status)

    # ---- writes --------------------------------------------------------------------------------------------

    def _values(self, entity: Entity, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in body.items():
            if name.startswith("@odata."):
                continue
            if name.endswith("@odata.bind"):
                nav = name[: -len("@odata.bind")]
                if nav not in entity.navigation:
                    raise ODataError(400, "0x80060888", f"An undeclared property '{nav}' which only has property "
                                     "annotations in the payload but no property value was found in the payload.")
                target_set, lookup = entity.navigation[nav]
                m = re.fullmatch(r"/?" + re.escape(target_set) + r"\((" + GUID_RE + r")\)", str(value))
                if m is None:
                    raise ODataError(400, "0x80060888", f"The value '{value}' of {name} is not a valid entity "
                                     f"reference to {target_set}.")
                target = m.group(1).lower()
                if target not in self.records.get(target_set, {}):
                    raise ODataError(404, "0x80040217", f"{ENTITY_SETS[target_set].logical_name} With Id = "
                                     f"{target} Does Not Exist")
                out[f"_{lookup}_value"] = target
                continue
            attr = entity.attributes.get(name)
            if attr is None or attr.lookup:
                raise ODataError(400, "0x80060888", f"The property '{name}' does not exist on type "
                                 f"'{entity.type_name}'. Make sure to only use property names that are defined "
                                 "by the type.")
            if (creating and not attr.create) or (not creating and not attr.update):
                raise ODataError(400, "0x80040203", f"Attribute '{name}' cannot be set on "
                                 f"{'create' if creating else 'update'} for entity '{entity.logical_name}'.")
            self._check_value(entity, attr, value)
            out[name] = value
        return out

    def _check_value(self, entity: Entity, attr: Attribute, value: Any) -> None:
        if value is None:
            return
        ok = {"Edm.String": isinstance(value, str), "Edm.Int32": isinstance(value, int),
              "Edm.Int64": isinstance(value, int), "Edm.Boolean": isinstance(value, bool),
              "Edm.Double": isinstance(value, (int, float)), "Edm.Guid": isinstance(value, str),
              "Edm.DateTimeOffset": isinstance(value, str)}[attr.edm]
        if not ok:
            raise ODataError(400, "0x80060888", f"Cannot convert the literal '{value}' to the expected type "
                             f"'{attr.edm}'.")
        if attr.max_length is not None and isinstance(value, str) and len(value) > attr.max_length:
            raise ODataError(400, "0x80044331", f"A validation error occurred. The length of the '{attr.logical_name}'"
                             f" attribute of the '{entity.logical_name}' entity exceeded the maximum allowed length "
                             f"of '{attr.max_length}'.")
        if attr.options and value not in attr.options:
            raise ODataError(400, "0x8004431a", f"A validation error occurred. The value {value} of "
                             f"'{attr.logical_name}' on record of type '{entity.logical_name}' is outside the valid "
                             "range.")

    def _create(self, entity: Entity, body: dict[str, Any]) -> dict[str, Any]:
        values = self._values(entity, body, creating=True)
        key = str(values.pop(entity.primary_id, None) or uuid.uuid4()).lower()
        rec: dict[str, Any] = {entity.primary_id: key, "createdon": _now(), **values}
        if entity.entity_set == "incidents":
            if not rec.get("_customerid_value"):
                raise ODataError(400, "0x80040278", "You should specify a parent contact or account.")
            if not rec.get("title"):
                raise ODataError(400, "0x80040278", "Case Title: Required fields must be filled in.")
            self._tickets += 1
            rec.setdefault("ticketnumber", f"CAS-{self._tickets:05d}-X1Y2Z3")
            rec.setdefault("statecode", 0)
            rec.setdefault("statuscode", 1)
            if INCIDENT_STATUS_STATE[rec["statuscode"]] != 0:
                raise ODataError(400, "0x80040203", f"{rec['statuscode']} is not a valid status code for state "
                                 "code IncidentState.Active on incident.")
        if entity.entity_set == "contacts":
            rec.setdefault("statecode", 0)
            rec.setdefault("statuscode", 1)
            self._derive("contacts", rec)
        self.records[entity.entity_set][key] = rec
        return rec

    def _update(self, entity: Entity, key: str, body: dict[str, Any]) -> None:
        rec = self.records[entity.entity_set][key]
        values = self._values(entity, body, creating=False)
        if entity.entity_set == "incidents":
            if rec["statecode"] != 0:
                raise ODataError(400, "0x80043e09", "This case has already been resolved. Close and reopen the "
                                 "case record to see the updates.")
            status = values.get("statuscode")
            if status is not None and INCIDENT_STATUS_STATE[status] != values.get("statecode", rec["statecode"]):
                raise ODataError(400, "0x80040203", f"{status} is not a valid status code for state code "
                                 f"IncidentState.{INCIDENT_STATE_LABEL[rec['statecode']]} on incident.")
        rec.update(values)
        rec["modifiedon"] = _now()
        if entity.entity_set == "contacts":
            self._derive("contacts", rec)

    def _close_incident(self, body: dict[str, Any]) -> Response:
        unknown = set(body) - {"IncidentResolution", "Status"}
        if unknown:
            raise syntax(f"The parameter '{min(unknown)}' in the request payload is not a valid parameter for "
                         "the operation 'CloseIncident'.")
        resolution, status = body.get("IncidentResolution"), body.get("Status")
        if not isinstance(resolution, dict) or not isinstance(status, int):
            raise ODataError(400, "0x80060888", "CloseIncident needs IncidentResolution (incidentresolution) and "
                             "Status (Edm.Int32).")
        if status != -1 and INCIDENT_STATUS_STATE.get(status) != 1:
            raise ODataError(400, "0x80040203", f"{status} is not a valid status code for state code "
                             "IncidentState.Resolved on incident.")
        res = self._create(ENTITY_SETS["incidentresolutions"], resolution)
        incident = self.records["incidents"].get(res.get("_incidentid_value") or "")
        if incident is None:
            raise ODataError(400, "0x80040203", "IncidentResolution must reference the case (incidentid@odata.bind).")
        if incident["statecode"] != 0:
            raise ODataError(400, "0x80043e09", "This case has already been resolved. Close and reopen the case "
                             "record to see the updates.")
        incident["statecode"], incident["statuscode"] = 1, (5 if status == -1 else status)
        incident["modifiedon"] = _now()
        return Response(status_code=204)


def _multipart(content_type: bytes, body: bytes, kind: str) -> Message:
    """A multipart/mixed body as a MIME tree (the standard library's parser)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type + b"\r\n\r\n" + body)
    if message.get_content_type() != "multipart/mixed" or not message.get_boundary() or message.defects:
        raise ODataError(400, "0x80060888", f"The {kind} body is not multipart/mixed with its boundary "
                         f"({'; '.join(type(d).__name__ for d in message.defects) or 'no boundary'}).")
    return message


def _http_part(content_id: str | None, response: Response) -> bytes:
    """A response written out as the application/http part of a batch response."""
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"HTTP/1.1 {response.status_code} {HTTPStatus(response.status_code).phrase}", "OData-Version: 4.0"]
    lines += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() not in ("content-length",)]
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + response.body + b"\r\n"
