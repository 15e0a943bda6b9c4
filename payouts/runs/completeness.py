"""A period is calculated only once its inputs are complete (SPEC 10): after its post-period
window (the end + 27 h of uptime reports), judged by a handed-in clock (the chain's time in
production). A rehearsal may calculate earlier, on the sandbox network only."""

from __future__ import annotations

from datetime import UTC, datetime

from payouts.clock import Clock
from payouts.periods import Period
from payouts.runs.errors import RunsError

#: the only network on which a rehearsal may calculate a period before its inputs are complete
REHEARSAL_NETWORK = "dev"


class PeriodIncomplete(RunsError):
    """The period's post-period window has not closed: its inputs are not complete yet."""

    def __init__(self, period: Period, now: datetime, source: str) -> None:
        self.period = period
        self.now = now
        super().__init__(
            f"{due_text(period)}; it is now {_utc(now)} by {source}, so it cannot be calculated yet "
            "(a rehearsal on the sandbox network may: --rehearsal)"
        )


class RehearsalRefused(RunsError):
    """A rehearsal asked for on a network that moves real (or real-looking) money."""

    def __init__(self, network: str) -> None:
        self.network = network
        super().__init__(
            f"--rehearsal is for the sandbox network (dev) only; this is the {network} network, where a "
            "period is calculated only once its inputs are complete"
        )


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def inputs_complete_at(period: Period) -> datetime:
    """The moment the period's post-period window closes."""
    return datetime.fromtimestamp(period.window_end_ts, UTC)


def due_text(period: Period) -> str:
    """ "2026-12 ends 2026-12-31 18:56:40 UTC; its inputs are complete after 2027-01-01 21:56:40 UTC"."""
    return f"{period.label} ends {_utc(period.end)}; its inputs are complete after {_utc(inputs_complete_at(period))}"


def is_complete(period: Period, now: datetime) -> bool:
    """The same edge as the monthly job's due periods: the window's last second has come."""
    return period.window_end_ts <= int(now.timestamp())


def require_rehearsal_network(network: str) -> None:
    if network != REHEARSAL_NETWORK:
        raise RehearsalRefused(network)


def require_complete(period: Period, clock: Clock, *, network: str, rehearsal: bool = False) -> None:
    """Raise PeriodIncomplete unless the period's inputs are complete by `clock`; a rehearsal
    (sandbox network only, else RehearsalRefused) passes at any time."""
    if rehearsal:
        require_rehearsal_network(network)
        return
    now = clock.now()
    if not is_complete(period, now):
        raise PeriodIncomplete(period, now, clock.source)
