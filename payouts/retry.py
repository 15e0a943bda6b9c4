"""One retry policy for the HTTP reads of the Stellar and snapshot-source clients (tenacity).

A read that fails for a reason the server may get over (a dropped connection, a timeout, a 5xx,
a 429) raises `Transient` inside the attempt; it is tried again with exponential backoff, capped,
and never sooner than the server's `Retry-After` (seconds or an HTTP date), at most
`RetryPolicy.attempts` times in all. The last `Transient` reaches the caller, which words it.

Waits go through the sleep a client was given; a client given none sleeps for real unless
`set_testing(True)` turned waits off (the test suite does, so retries cost no time there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import tenacity

T = TypeVar("T")

_waits_on = True


def set_testing(testing: bool) -> None:
    """Turn real waits off (True) or on again (False) for clients that were given no sleep."""
    global _waits_on
    _waits_on = not testing


def default_sleep(seconds: float) -> None:
    if _waits_on:
        time.sleep(seconds)


class Transient(Exception):
    """One attempt failed in a way worth trying again; `problem` says how, in words."""

    def __init__(self, problem: str, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    #: Requests in all (the first one included) before giving up.
    attempts: int = 5
    #: First pause; doubled after every failed attempt, capped at `backoff_cap_s`.
    backoff_s: float = 0.5
    backoff_cap_s: float = 30.0

    def pause_s(self, failed_attempts: int, retry_after_s: float | None) -> float:
        pause = min(self.backoff_s * 2 ** (failed_attempts - 1), self.backoff_cap_s)
        if retry_after_s is not None:
            pause = max(pause, min(retry_after_s, self.backoff_cap_s))
        return pause

    def call(self, attempt: Callable[[], T], *, sleep: Callable[[float], None] | None = None) -> T:
        """`attempt()` until it returns, raises something other than `Transient`, or has raised
        `Transient` `attempts` times (that last one is raised)."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            retry_after = error.retry_after_s if isinstance(error, Transient) else None
            return self.pause_s(state.attempt_number, retry_after)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(self.attempts, 1)),
            wait=wait,
            retry=tenacity.retry_if_exception_type(Transient),
            sleep=sleep or default_sleep,
            reraise=True,
        )
        return retrying(attempt)


def retry_after_s(headers: Mapping[str, str], *, now: Callable[[], datetime] | None = None) -> float | None:
    """The pause a `Retry-After` header asks for, in seconds: a number, or an HTTP date less the
    current time (never below zero); None when absent or unreadable."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now else datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)
