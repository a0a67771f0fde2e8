"""argparse `type`s for the commands' numeric options. Each says what it wants and what it got; argparse puts
the option's name in front ("argument --agents: must be ...") and exits 2."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(*, low: float, strict: bool, high: float | None = None) -> Callable[[str], float]:
    """A finite number above `low` (or at it, unless `strict`) and below `high`, if given."""
    bound = f"> {low:g}" if strict else f">= {low:g}"
    wanted = f"a number {bound}" if high is None else f"a number in ({low:g}, {high:g})"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if (not math.isfinite(value) or value < low or (strict and value == low)
                or (high is not None and value >= high)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def sizes(text: str) -> list[int]:
    """Comma-separated whole numbers of at least 1, smallest first, each once."""
    try:
        found = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 1, got {text!r}") from None
    if not found or any(n < 1 for n in found):
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers >= 1, got {text!r}")
    return sorted(set(found))
