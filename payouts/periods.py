"""Minting periods: offset <-> month label, period bounds. Pure functions.

Period n covers [S + D*n, S + D*(n+1)], both ends inclusive when testing a timestamp.
Boundaries always come from this formula (published tables are wrong from 2025-09 on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

PERIOD_LENGTH_S = 2_630_880  # 730.8 hours
FIRST_PERIOD_START_TS = 1_522_501_000  # 2018-03-31 12:56:40 UTC
POST_PERIOD_WINDOW_S = 27 * 3600  # uptime reports read after the end to credit the last interval

_JANUARY_2022_OFFSET = 45
#: ASCII digits only: `\d` alone would read other scripts' digits as a month label
_LABEL_RE = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)
#: the last period that, with the period after it (where its held receipts are retried) and its
#: post-period window, ends before 9999-12-31 23:59:59 UTC, the last time a datetime holds
LAST_OFFSET = (253_402_300_799 - FIRST_PERIOD_START_TS - POST_PERIOD_WINDOW_S) // PERIOD_LENGTH_S - 2


class PeriodError(ValueError):
    """A period label or offset that names no valid period."""


@dataclass(frozen=True, slots=True)
class Period:
    offset: int

    @property
    def start_ts(self) -> int:
        return FIRST_PERIOD_START_TS + PERIOD_LENGTH_S * self.offset

    @property
    def end_ts(self) -> int:
        return self.start_ts + PERIOD_LENGTH_S

    @property
    def window_end_ts(self) -> int:
        """Last timestamp read for this period (end + 27 h post-period window)."""
        return self.end_ts + POST_PERIOD_WINDOW_S

    @property
    def label(self) -> str:
        return label_for_offset(self.offset)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ts, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.end_ts, UTC)

    def contains(self, ts: int) -> bool:
        return self.start_ts <= ts <= self.end_ts

    @classmethod
    def from_label(cls, label: str) -> Period:
        return cls(offset_for_label(label))

    @classmethod
    def containing(cls, ts: int) -> Period:
        """The period whose half-open range [start, end) holds ``ts``."""
        return cls((ts - FIRST_PERIOD_START_TS) // PERIOD_LENGTH_S)

    def __str__(self) -> str:
        return f"{self.label} (offset {self.offset})"


def offset_for_label(label: str) -> int:
    """'2025-11' -> 91: the period named by the calendar month that holds most of it."""
    match = _LABEL_RE.match(label.strip())
    if match is None:
        raise PeriodError(f"period {label!r} is not a month label like 2025-11")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise PeriodError(f"period {label!r} has month {month}, expected 01 to 12")
    offset = _JANUARY_2022_OFFSET + 12 * (year - 2022) + (month - 1)
    if offset < 0:
        raise PeriodError(f"period {label!r} is before the first minting period (2018-04)")
    if offset > LAST_OFFSET:
        raise PeriodError(
            f"period {label!r} is after the last period this program can date ({label_for_offset(LAST_OFFSET)})"
        )
    return offset


def label_for_offset(offset: int) -> str:
    if offset < 0:
        raise PeriodError(f"period offset {offset} is negative")
    year, month0 = divmod(offset - _JANUARY_2022_OFFSET, 12)
    return f"{2022 + year:04d}-{month0 + 1:02d}"


def resolve_period(label: str | None = None, offset: int | None = None) -> Period:
    """The CLI's `--period 2025-11` or `--period-offset 91`, exactly one of them."""
    if (label is None) == (offset is None):
        raise PeriodError("give exactly one of --period (e.g. 2025-11) or --period-offset (e.g. 91)")
    if label is not None:
        return Period.from_label(label)
    assert offset is not None
    if offset < 0:
        raise PeriodError(f"period offset {offset} is negative")
    if offset > LAST_OFFSET:
        raise PeriodError(f"period offset {offset} is after the last period this program can date ({LAST_OFFSET})")
    return Period(offset)
