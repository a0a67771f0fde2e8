"""Microsoft Dynamics 365 (Dataverse Web API v9.2) as a CRM connector.

Sign-in is the OAuth2 client-credentials grant against the Microsoft identity platform
(`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, scope `{org}/.default`); the token is kept
until a minute before it expires and fetched again once if the Web API answers 401.

People are `contact` rows, cases are `incident` rows:
- lookup: `GET contacts?$filter=telephone1 eq '...' or telephone2 eq '...' or mobilephone eq '...' or
  emailaddress1 eq '...'` (active contacts). Dynamics keeps phone numbers as the free text someone typed, so
  the filter asks for the common ways of writing the same number (+19055550101, 19055550101, 9055550101,
  905-555-0101, (905) 555-0101, 905.555.0101, 905 555 0101, +1 905-555-0101, 1-905-555-0101, ...). A number
  written some other way (with an extension, say) is not found: that is a limit of matching free text.
- open cases: `incidents?$filter=_customerid_value eq <guid> and statecode eq 0&$orderby=createdon desc`.
- create: `POST incidents` bound to the contact (`customerid_contact@odata.bind`), with
  `Prefer: return=representation`; with no contact given, one is found by phone/e-mail or created.
- update: a note is an `annotation` bound to the case (`objectid_incident@odata.bind`); status "closed"
  (or "resolved") runs the CloseIncident action (a resolved case is read-only in Dynamics); "in_progress",
  "on_hold", "waiting_for_details" and "researching" set the active status reason; anything else is refused.
  A note with a status goes as one `$batch` change set, so Dataverse keeps both or neither (a note must not
  stay on a case whose status change was refused).

Errors: timeouts, connection failures, 5xx and replies that are not the JSON expected -> `CrmUnavailable`;
4xx -> `CrmRejected` carrying Dataverse's OData error message.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from cti.cases import normalise_email, normalise_phone
from cti.connectors.base import CaseInput, CaseUpdate, CrmCase, CrmRejected, CrmUnavailable, Person

API_VERSION = "v9.2"
TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
TOKEN_EARLY_S = 60.0  # renew this long before the token's stated expiry
ODATA_HEADERS = {"OData-MaxVersion": "4.0", "OData-Version": "4.0", "Accept": "application/json"}
CONTACT_FIELDS = ("contactid", "fullname", "firstname", "lastname", "telephone1", "telephone2", "mobilephone",
                  "emailaddress1", "address1_composite")
PHONE_FIELDS = ("telephone1", "telephone2", "mobilephone")
INCIDENT_FIELDS = ("incidentid", "ticketnumber", "title", "statecode", "statuscode", "createdon")
STATE_NAMES = {0: "open", 1: "closed", 2: "cancelled"}  # incident statecode: Active, Resolved, Canceled
ACTIVE_STATUS = {"open": 1, "in_progress": 1, "on_hold": 2, "waiting_for_details": 3, "researching": 4}
CLOSING = {"closed", "resolved"}
ORIGIN = {"voice": 1, "callback": 1, "email": 2, "chat": 3, "web": 3, "sms": 3, "work_item": 3}
TITLE_MAX, DESCRIPTION_MAX = 200, 2000  # incident.title, incident.description MaxLength

# a write for a change set: method, path under the Web API, JSON body, extra headers
Write = tuple[str, str, dict[str, Any], dict[str, str]]


def phone_forms(raw: str) -> list[str]:
    """The ways people commonly type this number into a CRM's free-text phone field; [] if not a number."""
    e164 = normalise_phone(raw)
    if e164 is None:
        return []
    digits = e164[1:]
    if not (e164.startswith("+1") and len(digits) == 11):
        return [e164, digits]
    n = digits[1:]
    a, b, c = n[:3], n[3:6], n[6:]
    return [e164, digits, n, f"{a}-{b}-{c}", f"({a}) {b}-{c}", f"({a}){b}-{c}", f"{a}.{b}.{c}", f"{a} {b} {c}",
            f"+1 {a}-{b}-{c}", f"+1 ({a}) {b}-{c}", f"+1 {a} {b} {c}", f"1-{a}-{b}-{c}", f"1 ({a}) {b}-{c}"]


def quote(value: str) -> str:
    """An OData string literal: single quotes, an embedded quote doubled."""
    return "'" + value.replace("'", "''") + "'"


def _guid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise CrmRejected(f"{value!r} is not a Dynamics {what} id (a GUID)") from None


# ---- what the Web API answers (anything else is garbage -> CrmUnavailable) ----------------------------------

class _Row(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Contact(_Row):
    contactid: str
    fullname: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    telephone1: str | None = None
    telephone2: str | None = None
    mobilephone: str | None = None
    emailaddress1: str | None = None
    address1_composite: str | None = None


class _Incident(_Row):
    incidentid: str
    ticketnumber: str | None = None
    title: str | None = None
    statecode: int
    statuscode: int | None = None
    createdon: datetime | None = None


class _Token(BaseModel):
    access_token: str
    expires_in: int
    token_type: str


class DynamicsConnector:
    name = "dynamics"

    def __init__(self, *, org_url: str, tenant: str, client_id: str, client_secret: str,
                 token_url: str | None = None, http: httpx.AsyncClient | None = None,
                 request_timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.org_url = org_url.rstrip("/")
        self.api = f"{self.org_url}/api/data/{API_VERSION}"
        self.token_url = token_url or TOKEN_URL.format(tenant=tenant)
        self.client_id = client_id
        self.client_secret = client_secret
        self.clock = clock
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=request_timeout_s)
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()

    # ---- sign-in -------------------------------------------------------------------------------------------

    async def _bearer(self, *, refused: str | None = None) -> str:
        """A current token; `refused` is one the Web API just answered 401 to (renewed once, however many
        calls saw it refused at the same time)."""
        async with self._token_lock:
            if self._token is None or self._token == refused or self.clock() >= self._token_until:
                await self._sign_in()
            assert self._token is not None
            return self._token

    async def _sign_in(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret, "scope": f"{self.org_url}/.default"}
        try:
            reply = await self.http.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise CrmUnavailable(f"Dynamics sign-in failed: {type(exc).__name__}: {exc}") from exc
        if reply.status_code != 200:
            try:
                body = reply.json()
            except ValueError:
                body = None
            why = (f"{body.get('error')}: {body.get('error_description')}" if isinstance(body, dict)
                   else reply.text[:200])
            # a refused secret or scope is a configuration problem: the CRM is unusable, not this request wrong
            raise CrmUnavailable(f"Dynamics sign-in refused ({reply.status_code}): {why}")
        try:
            token = _Token.model_validate_json(reply.content)
        except ValidationError as exc:
            raise CrmUnavailable("Dynamics sign-in answered something that is not a token") from exc
        self._token = token.access_token
        self._token_until = self.clock() + max(0.0, token.expires_in - TOKEN_EARLY_S)

    # ---- one Web API call ----------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    json: dict[str, Any] | None = None, content: bytes | None = None,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        """Signs in, and signs in again once if the token was refused."""
        refused: str | None = None
        for attempt in (0, 1):
            token = await self._bearer(refused=refused)
            all_headers = {**ODATA_HEADERS, "Authorization": f"Bearer {token}", **(headers or {})}
            try:
                reply = await self.http.request(method, f"{self.api}/{path}", params=params, json=json,
                                                content=content, headers=all_headers)
            except httpx.HTTPError as exc:
                raise CrmUnavailable(f"Dynamics unreachable: {type(exc).__name__}: {exc}") from exc
            if reply.status_code == 401 and attempt == 0:
                refused = token
                continue
            return reply
        raise AssertionError("unreachable")

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    json: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
        """The reply's JSON (None for 204)."""
        return self._reply(await self._send(method, path, params=params, json=json, headers=headers))

    async def _changeset(self, writes: list[Write]) -> None:
        """Several writes as one `$batch` change set: Dataverse applies all of them or none."""
        if len(writes) == 1:  # one write is a transaction already
            method, path, body, headers = writes[0]
            await self._call(method, path, json=body, headers=headers)
            return
        boundary, content = changeset_body(self.api, writes)
        reply = await self._send("POST", "$batch", content=content,
                                 headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"'})
        statuses = batch_statuses(reply)
        failed = next(((status, body) for status, body in statuses if status >= 400), None)
        if failed is not None:
            self._reply(httpx.Response(failed[0], content=failed[1],
                                       headers={"content-type": "application/json"}))
        if reply.status_code >= 400:
            self._reply(reply)
        if len(statuses) != len(writes):
            raise CrmUnavailable(f"Dynamics answered {len(statuses)} results to a change set of {len(writes)}")

    @staticmethod
    def _reply(reply: httpx.Response) -> Any:
        status = reply.status_code
        if status >= 500 or status == 401:
            raise CrmUnavailable(f"Dynamics answered {status}: {_odata_message(reply)}")
        if status == 429:
            raise CrmUnavailable(f"Dynamics is throttling requests (429): {_odata_message(reply)}")
        if status >= 400:
            raise CrmRejected(f"Dynamics refused ({status}): {_odata_message(reply)}")
        if status == 204:
            return None
        if "json" not in reply.headers.get("content-type", ""):
            raise CrmUnavailable(f"Dynamics answered {status} with {reply.headers.get('content-type')!r}, "
                                 "not JSON")
        try:
            return reply.json()
        except ValueError as exc:
            raise CrmUnavailable(f"Dynamics answered {status} with broken JSON") from exc

    # ---- the Connector interface ---------------------------------------------------------------------------

    async def lookup(self, *, phone: str | None = None, email: str | None = None) -> list[Person]:
        clauses = [f"{f} eq {quote(form)}" for form in (phone_forms(phone) if phone else []) for f in PHONE_FIELDS]
        mail = normalise_email(email) if email else None
        if mail:
            clauses += [f"emailaddress{i} eq {quote(mail)}" for i in (1, 2, 3)]
        if not clauses:
            return []  # an anonymous or odd caller id is simply no match
        body = await self._call("GET", "contacts", params={
            "$select": ",".join(CONTACT_FIELDS), "$filter": f"statecode eq 0 and ({' or '.join(clauses)})",
            "$top": "20"})
        return [self._person(row) for row in _rows(body, _Contact)]

    async def open_cases(self, person_id: str, *, limit: int = 20) -> list[CrmCase]:
        cid = _guid(person_id, "contact")
        if not 1 <= limit <= 5000:
            raise CrmRejected(f"limit must be 1..5000, not {limit}")
        body = await self._call("GET", "incidents", params={
            "$select": ",".join(INCIDENT_FIELDS), "$filter": f"_customerid_value eq {cid} and statecode eq 0",
            "$orderby": "createdon desc", "$top": str(limit)})
        return [self._case(row) for row in _rows(body, _Incident)]

    async def create_case(self, case: CaseInput) -> CrmCase:
        if not case.description.strip():
            raise CrmRejected("description: say what the case is about")
        title = _title(case)
        description = _description(case)
        if len(description) > DESCRIPTION_MAX:
            raise CrmRejected(f"description: Dynamics keeps at most {DESCRIPTION_MAX} characters "
                              f"(this one has {len(description)})")
        contact = await self._customer(case)
        payload: dict[str, Any] = {"title": title, "description": description,
                                   "customerid_contact@odata.bind": f"/contacts({contact})"}
        if case.channel in ORIGIN:
            payload["caseorigincode"] = ORIGIN[case.channel]
        body = await self._call("POST", "incidents", params={"$select": ",".join(INCIDENT_FIELDS)}, json=payload,
                                headers={"Prefer": "return=representation"})
        return self._case(_one(body, _Incident))

    async def update_case(self, case_id: str, update: CaseUpdate) -> CrmCase:
        iid = _guid(case_id, "case")
        status = update.status.strip().lower().replace(" ", "_") if update.status else None
        if status is not None and status not in CLOSING and status not in ACTIVE_STATUS:
            raise CrmRejected(f"status {update.status!r}: Dynamics cases here take "
                              f"{', '.join(sorted(CLOSING | set(ACTIVE_STATUS)))}")
        writes: list[Write] = []
        if update.note:
            note: dict[str, Any] = {"notetext": update.note, "objectid_incident@odata.bind": f"/incidents({iid})",
                                    "subject": f"Note from {update.filed_by}" if update.filed_by else "Note"}
            writes.append(("POST", "annotations", note, {}))
        if status in CLOSING:
            writes.append(("POST", "CloseIncident", {
                "IncidentResolution": {"subject": f"Closed by {update.filed_by or 'Switchboard'}",
                                       "incidentid@odata.bind": f"/incidents({iid})"},
                "Status": 5}, {}))  # Problem Solved
        elif status is not None:
            # If-Match: * makes PATCH an update only (without it Dataverse would create a missing record)
            writes.append(("PATCH", f"incidents({iid})", {"statuscode": ACTIVE_STATUS[status]}, {"If-Match": "*"}))
        if writes:
            await self._changeset(writes)  # the note and the status together, or neither
        body = await self._call("GET", f"incidents({iid})", params={"$select": ",".join(INCIDENT_FIELDS)})
        return self._case(_one(body, _Incident))

    async def close(self) -> None:
        if self._own_http:
            await self.http.aclose()

    # ---- helpers -------------------------------------------------------------------------------------------

    async def _customer(self, case: CaseInput) -> str:
        if case.person_id:
            return _guid(case.person_id, "contact")
        found = await self.lookup(phone=case.phone, email=case.email) if (case.phone or case.email) else []
        if found:
            return found[0].id
        if not (case.last_name or case.first_name or case.phone or case.email):
            raise CrmRejected("a Dynamics case needs a customer: give person_id, or a name, phone or e-mail")
        contact: dict[str, Any] = {k: v for k, v in (
            ("firstname", case.first_name), ("lastname", case.last_name or "(unknown)"),
            ("telephone1", normalise_phone(case.phone) if case.phone else None),
            ("emailaddress1", normalise_email(case.email) if case.email else None),
            ("address1_line1", case.address)) if v}
        body = await self._call("POST", "contacts", params={"$select": "contactid"}, json=contact,
                                headers={"Prefer": "return=representation"})
        created: _Contact = _one(body, _Contact)
        return created.contactid

    def _person(self, c: _Contact) -> Person:
        name = c.fullname or " ".join(p for p in (c.firstname, c.lastname) if p) or "(no name)"
        phones = tuple(dict.fromkeys(p for p in (c.telephone1, c.telephone2, c.mobilephone) if p))
        return Person(id=c.contactid, name=name, phones=phones,
                      emails=(c.emailaddress1,) if c.emailaddress1 else (), address=c.address1_composite,
                      url=f"{self.org_url}/main.aspx?etn=contact&pagetype=entityrecord&id={c.contactid}")

    def _case(self, i: _Incident) -> CrmCase:
        status = STATE_NAMES.get(i.statecode, str(i.statecode))
        return CrmCase(id=i.incidentid, reference=i.ticketnumber or i.incidentid, title=i.title or "(no title)",
                       status=status, opened_at=i.createdon, department=None,
                       url=f"{self.org_url}/main.aspx?etn=incident&pagetype=entityrecord&id={i.incidentid}")


def _odata_message(reply: httpx.Response) -> str:
    try:
        body = reply.json()
        err = body["error"]
        return f"{err.get('message')} (code {err.get('code')})"
    except (ValueError, KeyError, TypeError, AttributeError):
        return reply.text[:200] or reply.reason_phrase


def _rows(body: Any, model: type[_Row]) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise CrmUnavailable("Dynamics answered JSON without a 'value' list")
    try:
        return [model.model_validate(row) for row in body["value"]]
    except ValidationError as exc:
        raise CrmUnavailable(f"Dynamics answered rows of an unexpected shape: {exc.errors()[0]['msg']}") from exc


def _one(body: Any, model: type[_Row]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise CrmUnavailable(f"Dynamics answered a record of an unexpected shape: {exc.errors()[0]['msg']}") from exc


def _title(case: CaseInput) -> str:
    first_line = case.description.strip().splitlines()[0] if case.description.strip() else ""
    title = f"{case.service_code}: {first_line}" if first_line else case.service_code
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


def _description(case: CaseInput) -> str:
    lines = [case.description.strip()]
    if case.location:
        lines.append(f"Location: {case.location}")
    if case.lat is not None and case.long is not None:
        lines.append(f"Coordinates: {case.lat}, {case.long}")
    for key, value in case.attributes.items():
        lines.append(f"{key}: {value}")
    if case.contact_id:
        lines.append(f"Switchboard contact: {case.contact_id}")
    return "\n".join(lines)



def changeset_body(api: str, writes: list[Write]) -> tuple[str, bytes]:
    """A `$batch` body holding one change set of `writes` (OData 4.0 part 1, 11.7; Dataverse's batch
    article): returns the batch boundary and the body."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    lines = [f"--{batch}", f'Content-Type: multipart/mixed; boundary="{changeset}"', ""]
    for content_id, (method, path, body, headers) in enumerate(writes, start=1):
        lines += [f"--{changeset}", "Content-Type: application/http", "Content-Transfer-Encoding: binary",
                  f"Content-ID: {content_id}", "",
                  f"{method} {api}/{path} HTTP/1.1", "Content-Type: application/json; type=entry",
                  *(f"{k}: {v}" for k, v in headers.items()), "", json.dumps(body)]
    lines += [f"--{changeset}--", "", f"--{batch}--", ""]
    return batch, "\r\n".join(lines).encode()


def batch_statuses(reply: httpx.Response) -> list[tuple[int, bytes]]:
    """(status, body) of each request a `$batch` reply answers, in order, change sets opened up."""
    content_type = reply.headers.get("content-type", "")
    if not content_type.startswith("multipart/mixed"):
        if reply.status_code >= 400:  # refused as a whole, with a plain OData error
            return [(reply.status_code, reply.content)]
        raise CrmUnavailable(f"Dynamics answered a batch with {content_type!r}, not multipart/mixed")
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
                                                  + reply.content)
    out: list[tuple[int, bytes]] = []
    for part in message.walk():
        if part.get_content_type() != "application/http":
            continue
        raw = part.get_payload(decode=True)
        head, _, body = (raw if isinstance(raw, bytes) else b"").replace(b"\r\n", b"\n").partition(b"\n\n")
        status_line = head.split(b"\n", 1)[0].split()
        if len(status_line) < 2 or not status_line[1].isdigit():
            raise CrmUnavailable("Dynamics answered a batch part without an HTTP status line")
        out.append((int(status_line[1]), body.strip()))
    return out
