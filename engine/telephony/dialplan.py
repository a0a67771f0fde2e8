"""The dial plan: which outside numbers Switchboard may call, and how it reaches them.

Every outbound path (click-to-dial, callbacks, blind transfer to an outside number, the answering-service
overflow) asks `DialPlan.route(number)` first: this is the toll-fraud guard. A number is normalised
(spaces, dashes, dots, brackets, a leading +1 or 1 dropped for North American numbers) and classified:

- `n11`: three-digit service codes (211, 311, 411, 511; 911 is `emergency`)
- `local`: ten-digit numbers in the site's local area codes (Ontario's 905/289/365 by default)
- `toll_free`: 800, 833, 844, 855, 866, 877, 888
- `long_distance`: any other Canada/US geographic number
- `premium`: 900 and 976 numbers
- `international`: 011 or a + other than +1, and the NANP area codes that are other countries
  (the Caribbean codes such as 876 Jamaica or 809 Dominican Republic look domestic but bill as
  international: the classic toll-fraud route)
- `emergency`: 911 (callers dial it from a real phone; the contact centre never originates it)

By default `n11`, `local` and `toll_free` are allowed and everything else is refused; a site can allow more
categories and add explicit `allow`/`deny` patterns (deny wins). Pure: no I/O, so it is tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    N11 = "n11"
    LOCAL = "local"
    TOLL_FREE = "toll_free"
    LONG_DISTANCE = "long_distance"
    PREMIUM = "premium"
    INTERNATIONAL = "international"
    EMERGENCY = "emergency"
    INVALID = "invalid"


DEFAULT_ALLOWED = frozenset({Category.N11, Category.LOCAL, Category.TOLL_FREE})
DEFAULT_LOCAL_AREA_CODES = ("905", "289", "365")
TOLL_FREE_CODES = frozenset({"800", "833", "844", "855", "866", "877", "888"})
PREMIUM_CODES = frozenset({"900", "976"})
# NANP area codes outside Canada and the US (Caribbean and Pacific territories billed internationally)
FOREIGN_NANP_CODES = frozenset({
    "242", "246", "264", "268", "284", "345", "441", "473", "649", "658", "664", "721", "758", "767", "784",
    "809", "829", "849", "868", "869", "876",
})
_PUNCTUATION = re.compile(r"[\s\-.()/]")
_NANP = re.compile(r"^[2-9]\d{2}[2-9]\d{6}$")


class DialRefused(Exception):
    """The dial plan will not call this number. `category` says why (premium, international, ...)."""

    def __init__(self, number: str, category: Category, reason: str):
        self.number, self.category, self.reason = number, category, reason
        super().__init__(f"{number!r}: {reason}")


@dataclass(frozen=True, slots=True)
class DialTarget:
    number: str  # normalised digits as dialled on the trunk (ten digits, an N11 code, or +E.164)
    category: Category
    uri: str  # the SIP URI to originate to


def normalise(raw: str) -> str:
    """Digits (and a leading + for international) with punctuation and the NANP 1 / +1 prefix removed."""
    s = _PUNCTUATION.sub("", raw.strip())
    if s.startswith("+1") and len(s) == 12:
        s = s[2:]
    elif s.startswith("1") and len(s) == 11:
        s = s[1:]
    return s


def classify(number: str, local_area_codes: Iterable[str] = DEFAULT_LOCAL_AREA_CODES) -> Category:
    """The category of an already normalised number."""
    if number.startswith("+"):
        return Category.INTERNATIONAL if number[1:].isdigit() and 8 <= len(number) <= 16 else Category.INVALID
    if not number.isdigit():
        return Category.INVALID
    if number == "911":
        return Category.EMERGENCY
    if len(number) == 3 and number[0] in "2345678" and number[1:] == "11":
        return Category.N11
    if number.startswith("011"):
        return Category.INTERNATIONAL if len(number) >= 10 else Category.INVALID
    if not _NANP.match(number):
        return Category.INVALID
    area, exchange = number[:3], number[3:6]
    if area in TOLL_FREE_CODES:
        return Category.TOLL_FREE
    if area in PREMIUM_CODES or exchange == "976":
        return Category.PREMIUM
    if area in FOREIGN_NANP_CODES:
        return Category.INTERNATIONAL
    if area in set(local_area_codes):
        return Category.LOCAL
    return Category.LONG_DISTANCE


@dataclass(frozen=True)
class DialPlan:
    trunk: str = "sip:{number}@127.0.0.1:5080"  # URI template for the outside line ({number} is filled in)
    allowed: frozenset[Category] = DEFAULT_ALLOWED
    local_area_codes: tuple[str, ...] = DEFAULT_LOCAL_AREA_CODES
    allow: tuple[str, ...] = ()  # extra regexes over the normalised number, allowed whatever the category
    deny: tuple[str, ...] = ()  # regexes always refused (deny wins over allow)

    def route(self, raw: str) -> DialTarget:
        number = normalise(raw)
        category = classify(number, self.local_area_codes)
        if category is Category.INVALID:
            raise DialRefused(raw, category, "not a dialable number")
        if any(re.fullmatch(p, number) for p in self.deny):
            raise DialRefused(raw, category, "refused by the site's dial plan (deny list)")
        if category is Category.EMERGENCY:
            raise DialRefused(raw, category, "the contact centre never originates emergency calls")
        if category not in self.allowed and not any(re.fullmatch(p, number) for p in self.allow):
            raise DialRefused(raw, category, f"{category.value.replace('_', ' ')} numbers are not allowed")
        return DialTarget(number, category, self.trunk.format(number=number))
