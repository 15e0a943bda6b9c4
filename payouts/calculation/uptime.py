"""Measured uptime of one node over one period: minting_v3's uptime and farmerbot rules.

A pure function over the node's events in processing order (shared spec, section 4.1). Each
branch names the clause it implements. This is the calculation's hot loop (about 1,100 reports
per node per month), so state lives in local variables and no object is allocated per event.

Which events are read, and which of them are "in period", is a `Window` over the node's event
list: by timestamp for `tfgrid-snapshot/1` (START <= t <= END, then up to END + 27 h), by block
for `/2` (the first block after START through the first block after END, then 27 hours of
blocks), as minting does. Values are the chain's: uptimes are u64 and minting casts them to i64
in its deltas. Uptimes below 2^62 cannot wrap, so the fast machine uses plain integers; a node
with a larger uptime (or sleep mark) goes through `_measure_wrapping`, which does minting's
wrapping i64 arithmetic step by step (u64::MAX behaves like -1).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import NamedTuple

from payouts.periods import POST_PERIOD_WINDOW_S, Period
from payouts.snapshot.schema import (
    EVENT_POWER_STATE,
    EVENT_POWER_TARGET,
    EVENT_UPTIME,
    NARROW_EVENT_LIMIT,
    Event,
    PowerAtStart,
    Twin,
)

GRACE_S = 60  # allowed drift between report interval and uptime increase
CLOCK_SKEW_S = 120  # allowed drift of the boot time between reports
MAX_CREDIT_S = 2460  # credit cap per report (41 min: reports come every 40 min)
FARMERBOT_MAX_SLEEP_S = 24 * 3600  # a sleeping node must wake within a day
FARMERBOT_MAX_BOOT_S = 30 * 60  # ... and boot within 30 min of the wake request
PUBLIC_KEY_BYTES = 33

UPTIME_TOO_HIGH = "UptimeTooHigh"
UPTIME_TOO_LOW = "UptimeTooLow"
CLOCK_SKEW = "ClockSkew"
INVALID_REBOOT = "InvalidReboot"
BOOT_REQUEST_EXPIRED = "BootRequestExpired"
MISSING_TWIN = "MissingTwin"
MISSING_RELAY = "MissingRelay"
INVALID_PUBLIC_KEY = "InvalidPublicKey"

# What the clauses made of one event (the node-month's event list; `_measure_wrapping` notes them)
OUTCOME_FIRST = "first"  # 3. the first report: credited from START, at most the cap
OUTCOME_COUNTED = "counted"  # 4b. uptime rose with the time since the last report
OUTCOME_CLOCK_SKEW = "clock_skew"  # 4b, counted, but the boot time moved by 2 minutes or more
OUTCOME_REBOOT = "reboot"  # 4c. the node restarted: its new uptime is credited
OUTCOME_TOO_EARLY = "too_early"  # 4a. more uptime than time since the last report (UptimeTooHigh)
OUTCOME_TOO_LOW = "too_low"  # 4d. less uptime than time passed, yet no reboot (UptimeTooLow)
OUTCOME_INVALID_REBOOT = "invalid_reboot"  # 4e. the uptime went down without a reboot
OUTCOME_POST_PERIOD = "post_period"  # the first report after END: credits up to END
OUTCOME_LATE = "late"  # after END and not the first report there: not read
OUTCOME_WOKE = "woke"  # 1. woke after a request in time: the sleep is credited
OUTCOME_WOKE_LATE = "woke_late"  # 1. booted more than 30 min after the request: a boot failure
OUTCOME_SLEPT_TOO_LONG = "slept_too_long"  # 1. asleep for more than a day: the sleep is not credited
OUTCOME_NOT_WOKEN = "not_woken"  # 1. a report from before the node slept: ignored
OUTCOME_ASLEEP_IGNORED = "asleep_ignored"  # 2. asleep without a request (or a request while up): ignored
OUTCOME_TARGET_UP = "target_up"  # farmerbot set the power target to Up
OUTCOME_TARGET_DOWN = "target_down"  # ... to Down
OUTCOME_WAKE_REQUEST = "wake_request"  # target Up while the node is down: the wake request
OUTCOME_STATE_UP = "state_up"  # the node's power state became Up
OUTCOME_STATE_DOWN = "state_down"  # ... Down
OUTCOME_ASLEEP = "asleep"  # Down while the target is Down: sleeping, credited until the wake

#: below this, no sum or difference of the machine's values leaves i64: no wrapping to do
NARROW_LIMIT = NARROW_EVENT_LIMIT
_I64_MIN = -(2**63)
_U64 = 2**64


def as_i64(value: int) -> int:
    """`value` wrapped into i64 (two's complement), as Rust's `as i64` and wrapping arithmetic
    give it: 2^64 - 1 -> -1, 2^63 -> -2^63."""
    return (value - _I64_MIN) % _U64 + _I64_MIN


_as_i64 = as_i64  # the wrapping machine's default; a local name there may skip it


class Window(NamedTuple):
    """The events read for a period: `events[start:split]` are in period, `events[split:stop]`
    post period."""

    start: int
    split: int
    stop: int


def timestamp_window(events: list[Event], period: Period) -> Window:
    """`/1` rules: START <= t <= END in period, END < t <= END + 27 h post period (events are in
    timestamp order)."""
    end = period.end_ts
    start = bisect_left(events, period.start_ts, key=_timestamp)
    split = bisect_right(events, end, lo=start, key=_timestamp)
    stop = bisect_right(events, end + POST_PERIOD_WINDOW_S, lo=split, key=_timestamp)
    return Window(start, split, stop)


def _timestamp(event: Event) -> int:
    return event[0]


def needs_wrapping(events: list[Event], power_at_start: PowerAtStart | None) -> bool:
    """Whether a value is large enough for minting's i64 arithmetic to wrap (u64 uptimes of
    2^62 and more, or such a sleep mark)."""
    if power_at_start is not None and (power_at_start.down_since or 0) >= NARROW_LIMIT:
        return True
    return any(kind == EVENT_UPTIME and value >= NARROW_LIMIT for _, kind, value in events)


@dataclass(frozen=True, slots=True)
class UptimeMeasurement:
    measured_uptime_s: int
    violation: str | None
    boot_failures: int
    has_report: bool  # an uptime report was credited as the node's first (a `last` exists)


def _public_key_is_valid(pk: str) -> bool:
    try:
        return len(bytes.fromhex(pk)) == PUBLIC_KEY_BYTES
    except ValueError:
        return False


def twin_violation(twin: Twin | None) -> str | None:
    """End-of-period twin checks for a node that reported: twin, relay, public key."""
    if twin is None:
        return MISSING_TWIN
    if not twin.relay:
        return MISSING_RELAY
    if twin.pk is not None and not _public_key_is_valid(twin.pk):
        return INVALID_PUBLIC_KEY
    return None


def _woke_in_time(t: int, u: int, asleep_since: int, wake_request: int) -> tuple[bool, bool]:
    """Farmerbot checks on the first report after a wake request: (sleep may be credited,
    the boot counts as a failure). Both apply independently."""
    boot_failed = (t - u) - wake_request > FARMERBOT_MAX_BOOT_S
    slept_too_long = t - asleep_since > FARMERBOT_MAX_SLEEP_S
    return not (boot_failed or slept_too_long), boot_failed


def power_state_at_start(
    power_at_start: PowerAtStart | None, start_ts: int, implied_wake_ts: int
) -> tuple[bool, bool, int | None, int | None]:
    """(state up, target up, asleep since, wake request) as the period starts. A node Down at the
    start is asleep since down_since (null means START); one whose target is Up was asked to wake
    at the implied wake-up."""
    if power_at_start is None:
        return True, True, None, None
    state_up = power_at_start.state == "Up"
    target_up = power_at_start.target == "Up"
    if state_up:
        return state_up, target_up, None, None
    asleep_since = start_ts if power_at_start.down_since is None else power_at_start.down_since
    return state_up, target_up, asleep_since, implied_wake_ts if target_up else None


def measure_uptime(
    events: list[Event],
    *,
    period: Period,
    power_at_start: PowerAtStart | None,
    twin: Twin | None,
    window: Window | None = None,
    wake_at_start_ts: int | None = None,
    wide: bool | None = None,
) -> UptimeMeasurement:
    """The node's measured uptime and first violation. `window` selects the events read (by
    timestamp when None); `wake_at_start_ts` is the implied wake-up request of a node asleep at
    the start (START when None; `/2` gives the start block's timestamp); `wide` says whether
    minting's i64 arithmetic can wrap (found from the values when None)."""
    if window is None:
        window = timestamp_window(events, period)
    if wide is None:
        wide = needs_wrapping(events, power_at_start)
    if wide:
        return _measure_wrapping(events, period, power_at_start, twin, window, wake_at_start_ts)
    start, end = period.start_ts, period.end_ts
    implied_wake = start if wake_at_start_ts is None else wake_at_start_ts

    # `last` = (t_last, u_last, total); has_last False means none yet
    has_last = False
    t_last = u_last = total = 0
    boot = 0
    violation: str | None = None
    boot_failures = 0
    state_up, target_up, asleep_since, wake_request = power_state_at_start(power_at_start, start, implied_wake)

    split = window.split
    for index in range(window.start, window.stop):
        t, kind, value = events[index]
        in_period = index < split

        if kind == EVENT_POWER_TARGET:
            # a target change to Up while Down records the first wake request
            if value and not state_up and wake_request is None:
                wake_request = t
            target_up = bool(value)
            continue
        if kind == EVENT_POWER_STATE:
            # Up -> Down while the target is Down: the node went to sleep
            if state_up and not value and not target_up and asleep_since is None:
                asleep_since = t
                if in_period and has_last:
                    total += t - t_last  # sleeping time until now counts, uncapped
                    t_last, u_last = t, 0
            state_up = bool(value)
            continue

        u = value
        if in_period:
            if asleep_since is not None and wake_request is not None:
                # 1. asleep with a wake request pending
                if t - u > asleep_since:
                    credit_ok, boot_failed = _woke_in_time(t, u, asleep_since, wake_request)
                    boot_failures += boot_failed
                    if credit_ok:
                        total += t - start if asleep_since < start else t - asleep_since
                    asleep_since = wake_request = None
                    has_last, t_last, u_last = True, t, u
                    boot = t - u
                # else: it did not boot since it slept; ignore, flags kept
                continue
            if asleep_since is not None or wake_request is not None:
                continue  # 2. asleep without a request, or a request while awake
            if not has_last:
                # 3. first report: credit at most the time since START, the uptime, the cap
                total = min(t - start, u, MAX_CREDIT_S)
                has_last, t_last, u_last = True, t, u
                boot = t - u
                continue
            # 4. a report after a report
            rd = t - t_last
            ud = u - u_last
            if ud > rd + GRACE_S:  # 4a
                if violation is None:
                    violation = UPTIME_TOO_HIGH
                t_last, u_last = t, u
                continue
            if rd - GRACE_S <= ud:  # 4b window (ud <= rd + GRACE_S holds here)
                skew = t - u - boot
                if (skew >= CLOCK_SKEW_S or skew <= -CLOCK_SKEW_S) and violation is None:
                    violation = CLOCK_SKEW
                if ud > 0:
                    total += min(MAX_CREDIT_S, ud)
                    t_last, u_last = t, u
                    continue
            if u <= rd:  # 4c reboot
                total += min(MAX_CREDIT_S, u)
                t_last, u_last = t, u
                boot = t - u
                continue
            if violation is None:  # 4d / 4e: `last` does not change
                violation = UPTIME_TOO_LOW if u > u_last else INVALID_REBOOT
            continue

        # post-period report (END < t <= END + 27 h): credits the last interval only
        if asleep_since is not None and wake_request is not None:
            # 1. asleep with a wake request pending
            if has_last and t_last > end:
                continue
            credit_ok, boot_failed = _woke_in_time(t, u, asleep_since, wake_request)
            boot_failures += boot_failed
            if credit_ok:
                slept_s = end - max(start, asleep_since)
                if slept_s >= 0:
                    total += slept_s
            asleep_since = wake_request = None
            has_last, t_last, u_last = True, t, u
            boot = t - u
            continue
        if asleep_since is not None or wake_request is not None:
            continue  # 2.
        if not has_last or t_last >= end:
            continue  # 3. only the first post-period report after an in-period one counts
        rd = t - t_last
        ud = u - u_last
        if ud > rd + GRACE_S:  # 4a
            if violation is None:
                violation = UPTIME_TOO_HIGH
            t_last, u_last = t, u
            continue
        if rd - GRACE_S <= ud:  # 4b
            skew = t - u - boot
            if (skew >= CLOCK_SKEW_S or skew <= -CLOCK_SKEW_S) and violation is None:
                violation = CLOCK_SKEW
            if ud > 0:
                credit = end - t_last
                total += min(MAX_CREDIT_S, credit)
                t_last, u_last = t, u
                continue
        if u <= rd:  # 4c reboot: only the part of the uptime that falls inside the period
            since_end = t - end
            if since_end < u:
                credit = u - since_end
                total += min(MAX_CREDIT_S, credit)
            t_last, u_last = t, u
            boot = t - u
            continue
        if u > u_last:  # 4d: `last` stays, so a later post-period report is still read
            if violation is None:
                violation = UPTIME_TOO_LOW
            continue
        # 4e: the reference crashes here when the node already has a violation; ignored
        if violation is None:
            violation = INVALID_REBOOT

    return _finish(total, has_last, violation, boot_failures, wake_request, implied_wake, end, twin)


def _finish(
    total: int,
    has_last: bool,
    violation: str | None,
    boot_failures: int,
    wake_request: int | None,
    implied_wake: int,
    end: int,
    twin: Twin | None,
) -> UptimeMeasurement:
    # end of period: a request still pending is one more boot failure
    if wake_request is not None and wake_request != implied_wake and wake_request <= end:
        boot_failures += 1
    if boot_failures > 1 and violation is None:
        violation = BOOT_REQUEST_EXPIRED
    if has_last and violation is None:
        violation = twin_violation(twin)
    return UptimeMeasurement(
        measured_uptime_s=total if has_last else 0,
        violation=violation,
        boot_failures=boot_failures,
        has_report=has_last,
    )


def _measure_wrapping(
    events: list[Event],
    period: Period,
    power_at_start: PowerAtStart | None,
    twin: Twin | None,
    window: Window,
    wake_at_start_ts: int | None,
    notes: list[tuple[int, str, int]] | None = None,
    wraps: bool = True,
) -> UptimeMeasurement:
    """The same machine with minting's integer semantics spelled out: timestamps and uptimes are
    u64, `current_time - reported_uptime` is a wrapping u64 difference read as i64, deltas are
    wrapping i64 (`reported_uptime as i64 - last_reported_uptime as i64`), the reboot test is
    `reported_uptime as i64 <= report_delta`, credits take the u64 value. Where minting asserts
    (a sleep mark after the report) the product's reading of the clause is kept.

    `notes`, when given, receives (event index, outcome, seconds credited) for each event read,
    outcome one of the `OUTCOME_*` words: what the clauses made of it (the node-month's event
    list). This machine is the one noted, not the fast one: it is off the calculation's path.
    `wraps=False` for a node whose values cannot wrap (`needs_wrapping`): i64 is then the
    identity and the noting pass skips the arithmetic."""
    as_i64 = _as_i64 if wraps else int
    start, end = period.start_ts, period.end_ts
    implied_wake = start if wake_at_start_ts is None else wake_at_start_ts

    has_last = False
    t_last = u_last = total = 0
    boot = 0
    violation: str | None = None
    boot_failures = 0
    asleep_since: int | None = None
    wake_request: int | None = None
    state_up = target_up = True
    if power_at_start is not None:
        state_up = power_at_start.state == "Up"
        target_up = power_at_start.target == "Up"
        if not state_up:
            down_since = power_at_start.down_since
            asleep_since = start if down_since is None else as_i64(down_since)
            if target_up:
                wake_request = implied_wake

    def skew_violation(t: int, u: int) -> bool:
        skew = as_i64(as_i64(t - u) - boot)
        # i64::MIN.abs() wraps to itself in minting's build: never "at least 120"
        return skew != _I64_MIN and abs(skew) >= CLOCK_SKEW_S

    noted = -1  # the event whose outcome is still to be noted
    outcome = ""
    before = 0
    for index in range(window.start, window.stop):
        if notes is not None:
            if noted >= 0:
                notes.append((noted, outcome, total - before))
            noted, before = index, total
        t, kind, value = events[index]
        in_period = index < window.split
        if kind == EVENT_POWER_TARGET:
            outcome = OUTCOME_TARGET_UP if value else OUTCOME_TARGET_DOWN
            if value and not state_up and wake_request is None:
                wake_request = t
                outcome = OUTCOME_WAKE_REQUEST
            target_up = bool(value)
            continue
        if kind == EVENT_POWER_STATE:
            outcome = OUTCOME_STATE_UP if value else OUTCOME_STATE_DOWN
            if state_up and not value and not target_up and asleep_since is None:
                asleep_since = t
                outcome = OUTCOME_ASLEEP
                if in_period and has_last:
                    total += t - t_last
                    t_last, u_last = t, 0
            state_up = bool(value)
            continue

        u = int(value)
        new_boot = as_i64(t - u)
        if asleep_since is not None and wake_request is not None:
            outcome = OUTCOME_NOT_WOKEN
            if in_period and not new_boot > asleep_since:
                continue  # 1. it did not boot since it slept (in period only)
            if not in_period and has_last and t_last > end:
                outcome = OUTCOME_LATE
                continue
            slept_too_long = as_i64(t - asleep_since) > FARMERBOT_MAX_SLEEP_S
            boot_failed = as_i64(new_boot - wake_request) > FARMERBOT_MAX_BOOT_S
            boot_failures += boot_failed
            outcome = OUTCOME_WOKE_LATE if boot_failed else OUTCOME_SLEPT_TOO_LONG if slept_too_long else OUTCOME_WOKE
            if not (boot_failed or slept_too_long):
                if in_period:
                    total += t - start if asleep_since < start else t - asleep_since
                else:
                    slept_s = end - max(start, asleep_since)
                    if slept_s >= 0:
                        total += slept_s
            asleep_since = wake_request = None
            has_last, t_last, u_last = True, t, u
            boot = new_boot
            continue
        if asleep_since is not None or wake_request is not None:
            outcome = OUTCOME_ASLEEP_IGNORED
            continue  # 2.
        if not has_last:
            outcome = OUTCOME_FIRST if in_period else OUTCOME_LATE
            if in_period:
                total = min(t - start, u, MAX_CREDIT_S)  # 3.
                has_last, t_last, u_last = True, t, u
                boot = new_boot
            continue
        if not in_period and t_last >= end:
            outcome = OUTCOME_LATE
            continue  # post 3.
        rd = as_i64(t - t_last)
        ud = as_i64(u - u_last)
        if ud > rd + GRACE_S:  # 4a
            outcome = OUTCOME_TOO_EARLY
            if violation is None:
                violation = UPTIME_TOO_HIGH
            t_last, u_last = t, u
            continue
        skewed = False
        if rd - GRACE_S <= ud:  # 4b
            skewed = skew_violation(t, u)
            if skewed and violation is None:
                violation = CLOCK_SKEW
            if ud > 0:
                outcome = OUTCOME_CLOCK_SKEW if skewed else OUTCOME_COUNTED if in_period else OUTCOME_POST_PERIOD
                total += min(MAX_CREDIT_S, ud if in_period else end - t_last)
                t_last, u_last = t, u
                continue
        if as_i64(u) <= rd:  # 4c reboot
            outcome = OUTCOME_REBOOT
            if in_period:
                total += min(MAX_CREDIT_S, u)
            else:
                since_end = t - end
                if since_end < u:
                    total += min(MAX_CREDIT_S, u - since_end)
            t_last, u_last = t, u
            boot = new_boot
            continue
        outcome = OUTCOME_TOO_LOW if u > u_last else OUTCOME_INVALID_REBOOT
        if violation is None:  # 4d / 4e: `last` does not change
            violation = UPTIME_TOO_LOW if u > u_last else INVALID_REBOOT

    if notes is not None and noted >= 0:
        notes.append((noted, outcome, total - before))
    return _finish(total, has_last, violation, boot_failures, wake_request, implied_wake, end, twin)


def note_uptime(
    events: list[Event],
    *,
    period: Period,
    power_at_start: PowerAtStart | None,
    twin: Twin | None,
    window: Window | None = None,
    wake_at_start_ts: int | None = None,
) -> tuple[UptimeMeasurement, list[tuple[int, str, int]]]:
    """The measurement and, per event read, (event index, outcome, seconds credited): minting's
    machine with its clauses noted, for telling a farmer what became of each report."""
    notes: list[tuple[int, str, int]] = []
    if window is None:
        window = timestamp_window(events, period)
    wraps = needs_wrapping(events, power_at_start)
    measurement = _measure_wrapping(events, period, power_at_start, twin, window, wake_at_start_ts, notes, wraps)
    return measurement, notes
