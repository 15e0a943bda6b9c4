"""The uptime machine over event columns, with runs of ordinary reports taken in one step.

A node's month is mostly one report every 40 minutes whose uptime grew by about the time that
passed (clause 4b with a positive delta). For such a run the machine does the same thing at
every report: it credits `min(MAX_CREDIT_S, uptime delta)`, may record ClockSkew, and moves
`last` on. `measure_uptime_columns` finds these runs with numpy (exact int64 arithmetic: the
columns hold narrow values only, below 2^62, so no difference leaves int64) and steps over each
run at once; every other event (power events, reboots, violations, sleep and wake, the first
report, post-period reports) goes through the same clauses as `uptime.measure_uptime`, one at a
time. Both give identical results (tests/calculation/test_columns.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from payouts.calculation.uptime import (
    CLOCK_SKEW,
    CLOCK_SKEW_S,
    GRACE_S,
    INVALID_REBOOT,
    MAX_CREDIT_S,
    UPTIME_TOO_HIGH,
    UPTIME_TOO_LOW,
    UptimeMeasurement,
    _finish,
    _woke_in_time,
    power_state_at_start,
)
from payouts.periods import Period
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME, Event, PowerAtStart, Twin

Int64s = npt.NDArray[np.int64]


class EventColumns(NamedTuple):
    """A node's events read for the period, in processing order, as int64 columns: timestamp,
    kind, value (uptime for kind 2, 1 = Up / 0 = Down for power events). Every value is below
    2^62. `timestamp[:split]` are in period, the rest post period."""

    timestamp: Int64s
    kind: Int64s
    value: Int64s
    split: int

    def events(self) -> list[Event]:
        """The same events as tuples, as the list readers give them."""
        return [
            (ts, kind, value) if kind == EVENT_UPTIME else (ts, kind, value == 1)
            for ts, kind, value in zip(self.timestamp.tolist(), self.kind.tolist(), self.value.tolist(), strict=True)
        ]


def _never(_index: int) -> bool:
    return False


def _never_credited(_index: int) -> int:
    raise AssertionError("credits are read only inside runs")


def measure_uptime_columns(
    columns: EventColumns,
    *,
    period: Period,
    power_at_start: PowerAtStart | None,
    twin: Twin | None,
    wake_at_start_ts: int | None = None,
) -> UptimeMeasurement:
    """`uptime.measure_uptime(columns.events(), window=Window(0, split, len), wide=False, ...)`,
    with runs of ordinary in-period reports taken in one step."""
    stamps, kinds, values, split = columns
    stop = len(stamps)
    # the loop visits only the events outside runs (a few dozen of a month's ~1,100): it reads
    # single values (`item`, Python ints) instead of converting whole columns to lists
    ts_at = stamps.item
    kind_at = kinds.item
    value_at = values.item

    # ordinary(i) (0 < i < split): events i-1 and i are in-period reports and, taken from `last`
    # at report i-1, report i is clause 4b with a positive uptime delta.
    ordinary: Callable[[int], bool] = _never
    run_ends: Int64s = np.zeros(0, dtype=np.int64)
    credit_at: Callable[[int], int] = _never_credited
    boots: Int64s = np.zeros(0, dtype=np.int64)
    if split >= 2:
        times, kinds_in, uptimes = stamps[:split], kinds[:split], values[:split]
        time_steps = times[1:] - times[:-1]
        uptime_steps = uptimes[1:] - uptimes[:-1]
        step = (
            (kinds_in[1:] == EVENT_UPTIME)
            & (kinds_in[:-1] == EVENT_UPTIME)
            & (uptime_steps > 0)
            & (uptime_steps <= time_steps + GRACE_S)
            & (uptime_steps >= time_steps - GRACE_S)
        )
        marks = np.zeros(stop + 1, dtype=np.bool_)
        marks[1:split] = step
        ordinary = marks.item
        # run_ends: the indexes that are not ordinary (a run starting at i ends before the first one after i)
        run_ends = np.flatnonzero(~marks)
        # credit_at(i): the credit of reports 1..i-1 (prefix sums)
        credit_at = np.concatenate(([0, 0], np.cumsum(np.minimum(uptime_steps, MAX_CREDIT_S)))).item
        boots = times - uptimes

    start, end = period.start_ts, period.end_ts
    implied_wake = start if wake_at_start_ts is None else wake_at_start_ts

    has_last = False
    t_last = u_last = total = 0
    boot = 0
    violation: str | None = None
    boot_failures = 0
    state_up, target_up, asleep_since, wake_request = power_state_at_start(power_at_start, start, implied_wake)

    index = 0
    while index < stop:
        t = ts_at(index)
        kind = kind_at(index)
        value = value_at(index)
        in_period = index < split
        index += 1

        if kind == EVENT_POWER_TARGET:
            if value and not state_up and wake_request is None:
                wake_request = t
            target_up = bool(value)
            continue
        if kind == EVENT_POWER_STATE:
            if state_up and not value and not target_up and asleep_since is None:
                asleep_since = t
                if in_period and has_last:
                    total += t - t_last
                    t_last, u_last = t, 0
            state_up = bool(value)
            continue

        u = value
        if in_period:
            if asleep_since is not None and wake_request is not None:
                if t - u > asleep_since:
                    credit_ok, boot_failed = _woke_in_time(t, u, asleep_since, wake_request)
                    boot_failures += boot_failed
                    if credit_ok:
                        total += t - start if asleep_since < start else t - asleep_since
                    asleep_since = wake_request = None
                    has_last, t_last, u_last = True, t, u
                    boot = t - u
                continue
            if asleep_since is not None or wake_request is not None:
                continue
            if not has_last:
                total = min(t - start, u, MAX_CREDIT_S)
                has_last, t_last, u_last = True, t, u
                boot = t - u
                continue
            here = index - 1
            if ordinary(here) and t_last == ts_at(here - 1) and u_last == value_at(here - 1):
                # a run of ordinary reports from `last`: here .. after - 1
                after = int(run_ends[np.searchsorted(run_ends, here)])
                total += credit_at(after) - credit_at(here)
                if violation is None:
                    drifts = boots[here:after] - boot
                    if bool(((drifts >= CLOCK_SKEW_S) | (drifts <= -CLOCK_SKEW_S)).any()):
                        violation = CLOCK_SKEW
                t_last, u_last = ts_at(after - 1), value_at(after - 1)
                index = after
                continue
            rd = t - t_last
            ud = u - u_last
            if ud > rd + GRACE_S:
                if violation is None:
                    violation = UPTIME_TOO_HIGH
                t_last, u_last = t, u
                continue
            if rd - GRACE_S <= ud:
                skew = t - u - boot
                if (skew >= CLOCK_SKEW_S or skew <= -CLOCK_SKEW_S) and violation is None:
                    violation = CLOCK_SKEW
                if ud > 0:
                    total += min(MAX_CREDIT_S, ud)
                    t_last, u_last = t, u
                    continue
            if u <= rd:
                total += min(MAX_CREDIT_S, u)
                t_last, u_last = t, u
                boot = t - u
                continue
            if violation is None:
                violation = UPTIME_TOO_LOW if u > u_last else INVALID_REBOOT
            continue

        # post period: as uptime.measure_uptime
        if has_last and t_last > end:
            # every later report leaves the measurement as it is (each branch below skips it,
            # and none moves `last`): only the power events left can still change it
            rest = np.flatnonzero(kinds[index:] != EVENT_UPTIME)
            if not rest.size:
                break
            index += int(rest[0])
            continue
        if asleep_since is not None and wake_request is not None:
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
            continue
        if not has_last or t_last >= end:
            continue
        rd = t - t_last
        ud = u - u_last
        if ud > rd + GRACE_S:
            if violation is None:
                violation = UPTIME_TOO_HIGH
            t_last, u_last = t, u
            continue
        if rd - GRACE_S <= ud:
            skew = t - u - boot
            if (skew >= CLOCK_SKEW_S or skew <= -CLOCK_SKEW_S) and violation is None:
                violation = CLOCK_SKEW
            if ud > 0:
                credit = end - t_last
                total += min(MAX_CREDIT_S, credit)
                t_last, u_last = t, u
                continue
        if u <= rd:
            since_end = t - end
            if since_end < u:
                credit = u - since_end
                total += min(MAX_CREDIT_S, credit)
            t_last, u_last = t, u
            boot = t - u
            continue
        if u > u_last:
            if violation is None:
                violation = UPTIME_TOO_LOW
            continue
        if violation is None:
            violation = INVALID_REBOOT

    return _finish(total, has_last, violation, boot_failures, wake_request, implied_wake, end, twin)
