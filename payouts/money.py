"""Money types. Amounts are integers from snapshot to export; never floats.

- mUSD: thousandths of a US dollar (policy prices, connection price, rewards).
- TFT units: 10^-7 TFT, Stellar's 7 decimals (1 TFT = 10_000_000 units).
- stroops: 10^-7 XLM (fees).
"""

from __future__ import annotations

import re
from typing import NewType

TftUnits = NewType("TftUnits", int)

UNITS_PER_TFT = 10**7
DECIMALS = 7

_AMOUNT_RE = re.compile(r"^(\d+)(?:\.(\d{1,7}))?$")


def format_tft(amount_units: int) -> str:
    """Format TFT units as a decimal string with exactly 7 decimals ("180.7625000")."""
    if not isinstance(amount_units, int) or isinstance(amount_units, bool):
        raise TypeError(f"TFT amounts are integers of units, got {type(amount_units).__name__}")
    sign = "-" if amount_units < 0 else ""
    whole, frac = divmod(abs(amount_units), UNITS_PER_TFT)
    return f"{sign}{whole}.{frac:07d}"


def parse_tft(text: str) -> TftUnits:
    """Parse a non-negative decimal amount with at most 7 decimals into TFT units."""
    match = _AMOUNT_RE.match(text.strip())
    if match is None:
        raise ValueError(f"not a TFT amount with at most 7 decimals: {text!r}")
    whole, frac = match.group(1), match.group(2) or ""
    return TftUnits(int(whole) * UNITS_PER_TFT + int(frac.ljust(DECIMALS, "0")))


def format_usd(amount_musd: int) -> str:
    """Format mUSD for people ("$14.461")."""
    sign = "-" if amount_musd < 0 else ""
    whole, frac = divmod(abs(amount_musd), 1000)
    return f"{sign}${whole:,}.{frac:03d}"


def format_tft_human(amount_units: int) -> str:
    """TFT units for people: thousands separated, trailing zeros dropped, nothing rounded
    (151_339_900_000_0 -> "151,339.9"; 0 -> "0")."""
    whole, _, frac = format_tft(amount_units).partition(".")
    sign = "-" if whole.startswith("-") else ""
    text = f"{sign}{int(whole.lstrip('-')):,}"
    frac = frac.rstrip("0")
    return f"{text}.{frac}" if frac else text
