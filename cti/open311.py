"""Open311 GeoReport v2 at `/open311/v2`: the city's web site, apps and answering service file and track
requests in the same case store the agents use (spec: wiki.open311.org/GeoReport_v2).

Every resource answers in XML (`.xml`, the spec's required format) or JSON (`.json`). Field names, the
`[{"code": 400, "description": ...}]` error bodies and the status codes follow the spec: 404 for what does
not exist (an unknown service code too), 403 for a missing or wrong `api_key`, 400 for anything else wrong
with a request. A refused POST stores nothing. The `service_request_id` is the case's reference number
(`SR-2026-000123`), so a resident who phoned can follow their request here too; the caller's identity,
notes and who filed it are never published, and a description is published only when it was itself
submitted through Open311.

Extensions: `page` and `page_size` on GET requests (the spec's most common extension), a JSON POST body
as well as the form body, and `discovery.{json,xml}` (service discovery).
"""

from __future__ import annotations

import json
import logging
import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Coroutine, Sequence

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from cti.apikeys import ApiKeys
from cti.cases import (
    OPEN_STATUSES,
    Actor,
    Case,
    CaseDraft,
    CaseInputError,
    CaseQuery,
    CaseStore,
    ChannelNotAllowed,
    Location,
    ResidentDraft,
    UnknownService,
    for_app,
    lifespan,
    parse_reference,
)
from cti.catalogue import LIST_TYPES, Service
from engine.store import StoreUnavailable

log = logging.getLogger("switchboard.open311")

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
FORMATS = ("json", "xml")
MEDIA_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
MAX_SPAN = timedelta(days=90)  # the spec's cap on a start_date..end_date window
MAX_REQUESTS = 1000  # the spec's default query limit
OPEN311_CHANNEL = "web"
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
# XML element names of list items (the JSON mapping follows the spec's Spark convention)
_ITEM = {"services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
         "errors": "error", "endpoints": "endpoint", "formats": "format"}


class Open311Error(Exception):
    """An error the client sees as the spec's error list; `status` is the HTTP status."""

    def __init__(self, status: int, *descriptions: str):
        self.status = status
        self.descriptions = descriptions or ("error",)
        super().__init__("; ".join(self.descriptions))


def _format_of(path: str) -> str:
    return "xml" if path.endswith(".xml") else "json"


def render(fmt: str, root: str, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """`data` as JSON, or as XML under `<root>` (lists become repeated child elements)."""
    if fmt == "xml":
        element = ET.Element(root)
        _fill(element, root, data)
        body = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(element, encoding="unicode")
        return Response(body.encode("utf-8"), status, headers=headers, media_type=MEDIA_TYPES["xml"])
    return Response(json.dumps(data, ensure_ascii=False).encode("utf-8"), status, headers=headers,
                    media_type=MEDIA_TYPES["json"])


def _fill(element: ET.Element, tag: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            _fill(ET.SubElement(element, key), key, child)
    elif isinstance(value, list):
        item = _ITEM.get(tag, "item")
        for child in value:
            _fill(ET.SubElement(element, item), item, child)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def error_response(fmt: str, status: int, descriptions: Sequence[str],
                   headers: dict[str, str] | None = None) -> Response:
    return render(fmt, "errors", [{"code": status, "description": d} for d in descriptions], status, headers)


class Open311Route(APIRoute):
    """Turns every failure on these routes into the spec's error list (not the API's RFC 9457 problems)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            fmt = _format_of(request.url.path)
            try:
                return await handler(request)
            except Open311Error as error:
                return error_response(fmt, error.status, error.descriptions)
            except RequestValidationError as error:
                return error_response(fmt, 400, [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                                                 for e in error.errors()])
            except StoreUnavailable as error:
                log.warning("open311: store unavailable", extra={"error": str(error)})
                return error_response(fmt, 503, ["the service request store is unavailable; try again shortly"],
                                      {"Retry-After": "2"})

        return guarded


router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route, lifespan=lifespan)


def _cases(request: Request) -> CaseStore:
    return for_app(request.app.state)


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"unknown format {fmt!r}: use .xml or .json")
    return fmt


def _param(params: Any, name: str) -> str | None:
    """A parameter's value; empty counts as absent (the spec's rule for optional arguments)."""
    value = params.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _check_jurisdiction(store: CaseStore, params: Any) -> None:
    given = _param(params, "jurisdiction_id")
    if given is not None and store.catalogue.jurisdiction and given != store.catalogue.jurisdiction:
        raise Open311Error(404, f"jurisdiction_id {given!r} not found (this endpoint serves "
                                f"{store.catalogue.jurisdiction})")


# --- views ---------------------------------------------------------------------------------------------

def _w3(moment: datetime | None, store: CaseStore) -> str | None:
    """ISO 8601 / W3C date-time with the site's UTC offset, e.g. 2026-04-02T16:00:00-04:00."""
    return moment.astimezone(store.calendar.tz).isoformat(timespec="seconds") if moment else None


def service_view(s: Service, store: CaseStore) -> dict[str, Any]:
    return {"service_code": s.code, "service_name": s.name, "description": s.description or None,
            "metadata": bool(s.attributes), "type": s.open311_type, "keywords": ", ".join(s.keywords) or None,
            "group": s.group or store.catalogue.department_name(s.department)}


def definition_view(s: Service) -> dict[str, Any]:
    attributes = []
    for order, a in s.ordered_attributes():
        item: dict[str, Any] = {"variable": a.variable, "code": a.code, "datatype": a.datatype,
                                "required": a.required, "datatype_description": a.datatype_description,
                                "order": order, "description": a.description}
        if a.datatype in LIST_TYPES:
            item["values"] = [{"key": v.key, "name": v.name} for v in a.values]
        attributes.append(item)
    return {"service_code": s.code, "attributes": attributes}


def request_view(c: Case, store: CaseStore) -> dict[str, Any]:
    return {
        "service_request_id": c.reference,
        "status": c.open311_status,
        "status_notes": c.status_notes,
        "service_name": c.service_name,
        "service_code": c.service_code,
        "description": c.description if c.source == "open311" else None,
        "agency_responsible": c.department_name,
        "service_notice": c.service_notice,
        "requested_datetime": _w3(c.requested_at, store),
        "updated_datetime": _w3(c.updated_at, store),
        "expected_datetime": _w3(c.expected_at, store),
        "address": c.location.address,
        "address_id": c.location.address_id,
        "zipcode": c.location.zipcode,
        "lat": c.location.lat,
        "long": c.location.long,
        "media_url": c.media_url,
    }


# --- service discovery and the catalogue -----------------------------------------------------------------

@router.get("/discovery.{fmt}", summary="Service discovery: where the GeoReport v2 endpoint is")
def discovery(fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    base = str(request.url_for("services", fmt="json")).rsplit("/", 1)[0]
    return render(fmt, "discovery", {
        "changeset": _w3(datetime.now(timezone.utc), store),
        "contact": store.catalogue.jurisdiction,
        "key_service": "switchboard apikey add NAME (ask the city's 311 administrator)",
        "endpoints": [{"specification": SPEC_URL, "url": base, "changeset": None, "type": "production",
                       "formats": ["text/xml", "application/json"]}]})


@router.get("/services.{fmt}", name="services", summary="GET Service List")
def services(fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    _check_jurisdiction(store, request.query_params)
    return render(fmt, "services", [service_view(s, store) for s in store.catalogue.services.values()])


@router.get("/services/{code}.{fmt}", summary="GET Service Definition (the attributes of one service)")
def service_definition(code: str, fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    _check_jurisdiction(store, request.query_params)
    service = store.catalogue.get(code)
    if service is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    return render(fmt, "service_definition", definition_view(service))


# --- requests ---------------------------------------------------------------------------------------------

async def _submitted(request: Request) -> dict[str, list[str]]:
    """The POST body as name -> values: form-encoded (the spec), multipart, or a JSON object."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    out: dict[str, list[str]] = {}
    if ctype == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise Open311Error(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Open311Error(400, "the JSON body must be an object of fields")
        for key, value in data.items():
            if isinstance(value, dict) and key == "attribute":
                for code, v in value.items():
                    out[f"attribute[{code}]"] = [str(x) for x in v] if isinstance(v, list) else [str(v)]
            elif isinstance(value, list):
                out[key] = [str(x) for x in value]
            elif value is not None:
                out[key] = [str(value)]
        return out
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data", ""):
        raise Open311Error(400, f"send the request as application/x-www-form-urlencoded, not {ctype}")
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001 - any parse failure is the client's malformed body
        raise Open311Error(400, "the form body could not be read") from None
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = [v.strip() for v in fields.get(name, []) if v.strip()]
    return values[0] if values else None


def _coordinate(fields: dict[str, list[str]], name: str, problems: list[str]) -> float | None:
    raw = _first(fields, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name}: {raw!r} is not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{name}: must be a finite number")
        return None
    return value


def _draft(fields: dict[str, list[str]]) -> CaseDraft:
    problems: list[str] = []
    service_code = _first(fields, "service_code")
    if service_code is None:
        problems.append("service_code: missing (get one from services.json)")
    lat, long = _coordinate(fields, "lat", problems), _coordinate(fields, "long", problems)
    attributes: dict[str, list[str]] = {}
    for key, values in fields.items():
        m = _ATTRIBUTE.match(key)
        if m:
            attributes.setdefault(m.group(1), []).extend(values)
    requester = {k: v for k in ("account_id", "device_id", "first_name", "last_name", "email", "phone")
                 if (v := _first(fields, k)) is not None}
    for key, value in requester.items():
        if len(value) > 200:
            problems.append(f"{key}: must be at most 200 characters")
    resident = None
    if any(k in requester for k in ("first_name", "last_name", "email", "phone")):
        resident = ResidentDraft(first_name=requester.get("first_name"), last_name=requester.get("last_name"),
                                 phones=tuple(p for p in [requester.get("phone")] if p),
                                 emails=tuple(e for e in [requester.get("email")] if e))
    if problems:
        raise Open311Error(400, *problems)
    assert service_code is not None
    return CaseDraft(
        service_code=service_code, channel=OPEN311_CHANNEL, description=_first(fields, "description"),
        location=Location(address=_first(fields, "address_string"), address_id=_first(fields, "address_id"),
                          zipcode=_first(fields, "zipcode"), lat=lat, long=long),
        resident=resident, attributes=attributes, media_url=_first(fields, "media_url"), requester=requester,
        acknowledge=True, source="open311", location_required=True)


@router.post("/requests.{fmt}", status_code=201, summary="POST Service Request (api_key required)")
async def create_request(fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    fields = await _submitted(request)
    api_key = _first(fields, "api_key") or _param(request.query_params, "api_key")
    owner = await run_in_threadpool(ApiKeys(store.db).verify, api_key)
    if owner is None:
        raise Open311Error(403, "Invalid api_key received -- can't proceed with create_request."
                           if api_key else "api_key is required to create a service request")
    _check_jurisdiction(store, {k: v[0] for k, v in fields.items() if v})
    draft = _draft(fields)
    try:
        case = await run_in_threadpool(store.create, draft, Actor(owner, "apikey"))
    except UnknownService:
        raise Open311Error(404, f"service_code {draft.service_code!r} not found") from None
    except ChannelNotAllowed as error:
        raise Open311Error(400, *(m for _, m in error.problems)) from None
    except CaseInputError as error:
        raise Open311Error(400, *(f"{f}: {m}" for f, m in error.problems)) from None
    service = store.catalogue.get(case.service_code)
    answer: dict[str, Any] = ({"token": case.token} if service and service.open311_type == "batch"
                              else {"service_request_id": case.reference})
    answer["service_notice"] = case.service_notice
    answer["account_id"] = case.requester.get("account_id")
    log.info("open311 request filed", extra={"reference": case.reference, "api_key": owner,
                                             "service_code": case.service_code})
    return render(fmt, "service_requests", [answer], status=201)


def _when(params: Any, name: str) -> datetime | None:
    raw = _param(params, name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Open311Error(400, f"{name}: {raw!r} is not a W3C date-time such as 2010-01-01T00:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _listed(params: Any, name: str) -> list[str]:
    """A parameter that may be comma-separated and may be given several times."""
    return [part.strip() for value in params.getlist(name) for part in value.split(",") if part.strip()]


def _positive(params: Any, name: str, default: int, top: int) -> int:
    raw = _param(params, name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise Open311Error(400, f"{name}: must be a whole number from 1 to {top}")
    return int(raw)


@router.get("/requests.{fmt}", summary="GET Service Requests (filters: service_request_id, service_code, "
                                       "start_date, end_date, status)")
def list_requests(fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    params = request.query_params
    _check_jurisdiction(store, params)
    page_size = _positive(params, "page_size", MAX_REQUESTS, MAX_REQUESTS)
    page = _positive(params, "page", 1, 1_000_000)
    ids = _listed(params, "service_request_id")
    if ids:  # "this overrides all other arguments"
        query = CaseQuery(references=tuple(ids))
    else:
        start, end = _when(params, "start_date"), _when(params, "end_date")
        if start is not None and end is not None and end < start:
            raise Open311Error(400, "end_date is before start_date")
        if start is not None and end is not None and end - start > MAX_SPAN:
            raise Open311Error(400, "start_date and end_date may not span more than 90 days")
        if start is None:  # no window given: the most recent 90 days (up to end_date if given)
            start = (end or store.clock()) - MAX_SPAN
        statuses: list[str] = []
        for status in _listed(params, "status"):
            if status not in ("open", "closed"):
                raise Open311Error(400, f"status: {status!r} is not open or closed")
            statuses += list(OPEN_STATUSES) if status == "open" else ["closed"]
        codes = _listed(params, "service_code")
        unknown = [c for c in codes if store.catalogue.get(c) is None]
        if unknown:
            raise Open311Error(404, *(f"service_code {c!r} not found" for c in unknown))
        query = CaseQuery(statuses=tuple(dict.fromkeys(statuses)), service_codes=tuple(codes),
                          requested_from=start, requested_to=end)
    found, _total = store.search(query, limit=page_size, offset=(page - 1) * page_size)
    return render(fmt, "service_requests", [request_view(c, store) for c in found])


@router.get("/requests/{request_id}.{fmt}", summary="GET Service Request (one, by service_request_id)")
def get_request(request_id: str, fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    _check_jurisdiction(store, request.query_params)
    case = store.get(request_id) if parse_reference(request_id) else None
    if case is None:
        raise Open311Error(404, f"service_request_id {request_id!r} not found")
    return render(fmt, "service_requests", [request_view(case, store)])


@router.get("/tokens/{token}.{fmt}", summary="GET service_request_id from a token")
def token(token: str, fmt: str, request: Request) -> Response:
    fmt = _fmt(fmt)
    store = _cases(request)
    _check_jurisdiction(store, request.query_params)
    case = store.by_token(token) if len(token) <= 64 else None
    if case is None:
        raise Open311Error(404, f"token {token!r} not found")
    return render(fmt, "service_requests", [{"service_request_id": case.reference, "token": case.token}])


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def not_found(rest: str, request: Request) -> Response:
    """Anything else under /open311/v2 answers in the spec's error format too (405 if the path exists)."""
    path = request.url.path
    allowed = sorted({m for r in router.routes if isinstance(r, APIRoute) and r.endpoint is not not_found
                      and r.path_regex.match(path) for m in (r.methods or ())})
    if allowed:
        return error_response(_format_of(path), 405, [(f"{request.method} is not allowed here "
                                                       f"(allowed: {', '.join(allowed)})")],
                              {"Allow": ", ".join(allowed)})
    return error_response(_format_of(path), 404, [f"no such resource: {path}"])
