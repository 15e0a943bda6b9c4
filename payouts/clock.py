"""Time as the product judges it: a `Clock` is handed in, never read from the machine deep
inside a service, so that "has this period's window closed?" is asked of the chain (or, in
tests, of a fixed moment)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where "now" comes from, and a few words saying whose time it is."""

    def now(self) -> datetime: ...

    @property
    def source(self) -> str: ...


class SystemClock:
    """This machine's clock (UTC)."""

    source = "this machine's clock"

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class FixedClock:
    """One fixed moment (tests, and reproducing a past decision)."""

    moment: datetime
    source: str = "a fixed clock"

    def __post_init__(self) -> None:
        if self.moment.tzinfo is None:
            raise ValueError("a FixedClock needs a timezone-aware moment (UTC)")

    def now(self) -> datetime:
        return self.moment.astimezone(UTC)
