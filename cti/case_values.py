"""The case store's vocabulary: errors, the values that go in and come out, and the small rules on them
(reference numbers, phone and e-mail normalising, the status lifecycle, what a photo is).

No database here: `cti/cases.py` (the store) and the API modules build on these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from engine.store.models import CASE_STATUSES

REFERENCE_PREFIX = "SR"
_REFERENCE = re.compile(r"^\s*SR-?(\d{4})-?(\d{1,9})\s*$", re.IGNORECASE)
MAX_DESCRIPTION = 4000  # Open311's limit, kept for every channel
MAX_NOTE = 10_000
MAX_PHOTO_BYTES = 10 * 1024 * 1024
OPEN_STATUSES = tuple(s for s in CASE_STATUSES if s != "closed")

# status -> statuses it may move to; the supervisor-only moves are listed apart
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"acknowledged"}),
    "acknowledged": frozenset({"in_progress", "pending_approval"}),
    "in_progress": frozenset({"pending_approval"}),
    "pending_approval": frozenset({"closed", "in_progress"}),
    "closed": frozenset({"in_progress"}),
}
SUPERVISOR_MOVES = frozenset({("pending_approval", "closed"), ("pending_approval", "in_progress"),
                              ("closed", "in_progress")})

# what a photo's first bytes say it is (the declared Content-Type is not trusted)
_PHOTO_MAGIC: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png", ".png"),
    (b"GIF87a", 0, "image/gif", ".gif"),
    (b"GIF89a", 0, "image/gif", ".gif"),
    (b"ftypheic", 4, "image/heic", ".heic"),
    (b"ftypheix", 4, "image/heic", ".heic"),
    (b"ftypmif1", 4, "image/heif", ".heif"),
)
_ACTORS = ("user", "apikey", "system")


# --- errors ------------------------------------------------------------------------------------------

class CaseError(Exception):
    """Base of the case store's refusals; `code` is a stable slug for API problem types."""

    code = "case-error"


class CaseInputError(CaseError):
    """The request is malformed: `problems` holds (field, message) for every bad field. Nothing stored."""

    code = "invalid-case"

    def __init__(self, problems: Sequence[tuple[str, str]]):
        self.problems = list(problems)
        # a problem of the whole draft has no field (""): its message stands alone
        super().__init__("; ".join(f"{f}: {m}" if f else m for f, m in self.problems))


class UnknownService(CaseInputError):
    code = "unknown-service"


class ChannelNotAllowed(CaseInputError):
    code = "channel-not-allowed"


class UnknownCase(CaseError):
    code = "unknown-case"


class UnknownResident(CaseError):
    code = "unknown-resident"


class InvalidTransition(CaseError):
    code = "invalid-transition"


class ApprovalRequired(CaseError):
    """The move needs a supervisor (approving a closing, sending it back, reopening)."""

    code = "supervisor-required"


class PhotoRejected(CaseError):
    """`status` is 413 (too large) or 415 (not a photo) or 422 (empty)."""

    code = "photo-rejected"

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


# --- values in ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a signed-in user (with their role), an API key, or the system."""

    name: str
    kind: str = "user"
    role: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _ACTORS:
            raise ValueError(f"actor kind must be one of {_ACTORS}")

    @property
    def label(self) -> str:
        return self.name if self.kind == "user" else f"{self.kind}:{self.name}"

    @property
    def is_supervisor(self) -> bool:
        return self.kind == "user" and self.role in ("supervisor", "admin")


@dataclass(frozen=True, slots=True)
class Location:
    address: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float | None = None
    long: float | None = None

    @property
    def given(self) -> bool:
        return self.lat is not None or bool(self.address) or bool(self.address_id)

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if (self.lat is None) != (self.long is None):
            out.append(("lat" if self.lat is None else "long", "lat and long must be sent together"))
        if self.lat is not None and not (math.isfinite(self.lat) and -90 <= self.lat <= 90):
            out.append(("lat", f"latitude must be between -90 and 90, got {self.lat}"))
        if self.long is not None and not (math.isfinite(self.long) and -180 <= self.long <= 180):
            out.append(("long", f"longitude must be between -180 and 180, got {self.long}"))
        for name, value, limit in (("address", self.address, 300), ("address_id", self.address_id, 100),
                                   ("zipcode", self.zipcode, 20)):
            if value is not None and len(value) > limit:
                out.append((name, f"must be at most {limit} characters"))
        return out


@dataclass(frozen=True, slots=True)
class ResidentDraft:
    first_name: str | None = None
    last_name: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    address: str | None = None
    language: str | None = None

    def problems(self, prefix: str = "resident") -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value, limit in (("first_name", self.first_name, 100), ("last_name", self.last_name, 100),
                                   ("address", self.address, 300), ("language", self.language, 20)):
            if value is not None and len(value) > limit:
                out.append((f"{prefix}.{name}", f"must be at most {limit} characters"))
        for i, phone in enumerate(self.phones):
            if normalise_phone(phone) is None:
                out.append((f"{prefix}.phones.{i}", f"{phone!r} is not a phone number"))
        for i, email in enumerate(self.emails):
            if normalise_email(email) is None:
                out.append((f"{prefix}.emails.{i}", f"{email!r} is not an e-mail address"))
        if not (self.first_name or self.last_name or self.phones or self.emails):
            out.append((prefix, "give at least a name, a phone number or an e-mail address"))
        return out


@dataclass(frozen=True, slots=True)
class CaseDraft:
    """A case to file. `attributes` maps an attribute code to the submitted strings (Open311 style)."""

    service_code: str
    channel: str
    description: str | None = None
    location: Location = Location()
    resident_id: int | None = None
    resident: ResidentDraft | None = None
    on_behalf_of: str | None = None
    on_behalf_role: str | None = None
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    contact_id: str | None = None
    media_url: str | None = None
    requester: Mapping[str, str] = field(default_factory=dict)
    acknowledge: bool = True  # tell the resident the reference and expected date now
    source: str = "desk"
    location_required: bool = False  # Open311 always needs one; otherwise the service decides


@dataclass(frozen=True, slots=True)
class CaseQuery:
    references: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    department: str | None = None
    channel: str | None = None
    resident_id: int | None = None
    requested_from: datetime | None = None
    requested_to: datetime | None = None
    overdue: bool | None = None
    source: str | None = None


# --- values out --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Resident:
    id: int
    first_name: str | None
    last_name: str | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    address: str | None
    language: str | None
    created_at: datetime

    @property
    def name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


@dataclass(frozen=True, slots=True)
class Case:
    id: int
    reference: str
    service_code: str
    service_name: str
    department: str
    department_name: str
    status: str
    priority: str
    channel: str
    source: str
    filed_by: str
    on_behalf_of: str | None
    on_behalf_role: str | None
    resident_id: int | None
    contact_id: str | None
    description: str | None
    location: Location
    media_url: str | None
    attributes: dict[str, Any]
    requester: dict[str, Any]
    token: str | None
    status_notes: str | None
    service_notice: str | None
    requested_at: datetime
    updated_at: datetime
    expected_at: datetime
    acknowledged_at: datetime | None
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.status != "closed"

    @property
    def open311_status(self) -> str:
        return "closed" if self.status == "closed" else "open"


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    author: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    created_at: datetime
    path: str  # relative to the attachments folder


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CaseDetail:
    case: Case
    resident: Resident | None
    notes: tuple[Note, ...]
    attachments: tuple[Attachment, ...]
    history: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class AgeingRow:
    department: str
    department_name: str
    service_code: str
    service_name: str
    open: int
    by_status: dict[str, int]
    buckets: dict[str, int]  # business days open: "0-2", "3-5", "6-10", "11-20", "21+"
    overdue: int
    oldest_days: int
    mean_days: float


AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-2", 0, 2), ("3-5", 3, 5), ("6-10", 6, 10), ("11-20", 11, 20), ("21+", 21, None))


# --- normalising -------------------------------------------------------------------------------------

def normalise_phone(raw: str) -> str | None:
    """E.164 (`+19055550123`); 10-digit numbers are North American. None if it is not a phone number."""
    text = raw.strip()
    if not text or re.search(r"[A-Za-z]", text) or not re.fullmatch(r"[+\d\s().\-/]+", text):
        return None
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        return f"+{digits}" if 8 <= len(digits) <= 15 else None
    if len(digits) == 10:
        return f"+1{digits}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+{digits}"
    return None


_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def normalise_email(raw: str) -> str | None:
    text = raw.strip().lower()
    return text if len(text) <= 320 and _EMAIL.match(text) else None


def format_reference(year: int, number: int) -> str:
    return f"{REFERENCE_PREFIX}-{year:04d}-{number:06d}"


def parse_reference(text: str) -> str | None:
    """The canonical form of a reference as a person may type or say it (`sr-2026-123`), or None."""
    m = _REFERENCE.match(text)
    return format_reference(int(m.group(1)), int(m.group(2))) if m else None


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def clean_text(text: str | None) -> str | None:
    """Empty means absent (Open311: a null parameter is the same as a missing one)."""
    if text is None:
        return None
    text = text.strip()
    return text or None


def sniff_photo(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) from a photo's first bytes, or None if it is not a photo we take."""
    for magic, offset, content_type, ext in _PHOTO_MAGIC:
        if data[offset:offset + len(magic)] == magic:
            return content_type, ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", ".webp"
    return None


def safe_filename(name: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    return base[:255]
