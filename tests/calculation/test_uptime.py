"""The uptime and farmerbot rules, one row per clause of the SPEC (section 4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.calculation.uptime import measure_uptime
from payouts.periods import PERIOD_LENGTH_S, Period
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME, PowerAtStart, Twin

P = Period(81)
S, E = P.start_ts, P.end_ts
H = 3600
TWIN = Twin(twin_id=1, relay="relay.grid.tf", pk=None)


def U(t, u):
    return (t, EVENT_UPTIME, u)


def TARGET(t, up):
    return (t, EVENT_POWER_TARGET, up)


def STATE(t, up):
    return (t, EVENT_POWER_STATE, up)


def measure(events, power=None, twin=TWIN):
    return measure_uptime(events, period=P, power_at_start=power, twin=twin)


# (clause, events, expected measured uptime, expected violation)
ROWS = [
    ("no report at all", [], 0, None),
    ("3 first report credits the time since START", [U(S + 1000, 5000)], 1000, None),
    ("3 first report credits at most the uptime", [U(S + 5000, 300)], 300, None),
    ("3 first report credits at most 2460 s", [U(S + 10000, 100000)], 2460, None),
    ("4b uptime follows time: credit ud", [U(S + 100, 100000), U(S + 2500, 102400)], 100 + 2400, None),
    ("4b credit capped at 2460 s", [U(S + 100, 100000), U(S + 3100, 103000)], 100 + 2460, None),
    ("4b within the 60 s grace", [U(S + 100, 100000), U(S + 2500, 102459)], 100 + 2459, None),
    ("4a uptime too high: no credit", [U(S + 100, 100000), U(S + 2500, 102461)], 100, "UptimeTooHigh"),
    (
        "4a then last moves: later reports credit again",
        [U(S + 100, 100000), U(S + 2500, 110000), U(S + 4900, 112400)],
        100 + 2400,
        "UptimeTooHigh",
    ),
    (
        "4b clock skew accumulates to 120 s; credit still given",
        [U(S + 100, 100000), U(S + 2500, 102450), U(S + 4900, 104900), U(S + 7300, 107350)],
        100 + 2450 + 2450 + 2450,
        "ClockSkew",
    ),
    ("4c reboot credits the new uptime", [U(S + 100, 100000), U(S + 2500, 600)], 100 + 600, None),
    ("4c reboot credit capped", [U(S + 100, 100000), U(S + 9100, 3000)], 100 + 2460, None),
    (
        "4d uptime too low: last does not change",
        [U(S + 100, 100000), U(S + 2500, 101000), U(S + 4900, 104800)],
        100 + 2460,
        "UptimeTooLow",
    ),
    (
        "4e invalid reboot: last does not change",
        [U(S + 100, 100000), U(S + 2500, 90000), U(S + 4900, 104800)],
        100 + 2460,
        "InvalidReboot",
    ),
    ("4b with ud <= 0 falls through to 4e", [U(S + 100, 100000), U(S + 130, 100000)], 100, "InvalidReboot"),
    (
        "first violation is the one kept",
        [U(S + 100, 100000), U(S + 2500, 110000), U(S + 4900, 90000)],
        100,
        "UptimeTooHigh",
    ),
    ("events before START are not read", [U(S - 10, 5000), U(S + 1000, 6010)], 1000, None),
    ("a report exactly at END is in the period", [U(E - 2400, 100000), U(E, 102400)], 2460 + 2400, None),
    ("post 4b credits only up to END", [U(E - 1000, 100000), U(E + 1400, 102400)], 2460 + 1000, None),
    (
        "post 3 only the first post-period report counts",
        [U(E - 1000, 100000), U(E + 1400, 102400), U(E + 3800, 104800)],
        2460 + 1000,
        None,
    ),
    (
        "post 4c reboot credits the part of the uptime inside the period",
        [U(E - 1000, 100000), U(E + 500, 800)],
        2460 + 300,
        None,
    ),
    ("post 4c reboot after END credits nothing", [U(E - 1000, 100000), U(E + 500, 400)], 2460, None),
    (
        "post 4d keeps last, so a later post report is read",
        [U(E - 1000, 100000), U(E + 1400, 100500), U(E + 2000, 103000)],
        2460 + 1000,
        "UptimeTooLow",
    ),
    (
        "post reports after END + 27 h are not read",
        [U(E - 1000, 100000), U(E + 27 * H + 1, 100000 + 27 * H + 1001)],
        2460,
        None,
    ),
    ("post report with no in-period report is ignored", [U(E + 100, 5000)], 0, None),
]


@pytest.mark.parametrize(("clause", "events", "uptime_s", "violation"), ROWS, ids=[r[0] for r in ROWS])
def test_uptime_rules(clause, events, uptime_s, violation):
    result = measure(events)
    assert (result.measured_uptime_s, result.violation) == (uptime_s, violation)


def _sleep(t):
    return [TARGET(t, False), STATE(t, False)]


FARMERBOT_ROWS = [
    (
        "sleep credits the time since the last report, uncapped",
        [U(S + 100, 100000), *_sleep(S + 9100)],
        None,
        100 + 9000,
        None,
        0,
    ),
    (
        "wake and boot in time credits the sleep (from asleep_since)",
        [U(S + 100, 100000), *_sleep(S + 10000), TARGET(S + 20000, True), STATE(S + 20100, True), U(S + 20700, 600)],
        None,
        100 + 9900 + 10700,
        None,
        0,
    ),
    (
        "report while asleep without a request is ignored",
        [U(S + 100, 100000), *_sleep(S + 10000), U(S + 12400, 500)],
        None,
        100 + 9900,
        None,
        0,
    ),
    (
        "report that did not boot since the sleep is ignored, flags kept",
        [U(S + 100, 100000), *_sleep(S + 10000), TARGET(S + 20000, True), U(S + 20100, 110000), U(S + 20700, 600)],
        None,
        100 + 9900 + 10700,
        None,
        0,
    ),
    (
        "boot later than 30 min after the request: no credit, one boot failure",
        [U(S + 100, 100000), *_sleep(S + 10000), TARGET(S + 20000, True), U(S + 22000, 100)],
        None,
        100 + 9900,
        None,
        1,
    ),
    (
        "asleep longer than 24 h: no credit and no failure",
        [U(S + 100, 100000), *_sleep(S + 10000), TARGET(S + 10000 + 25 * H, True), U(S + 10000 + 25 * H + 600, 500)],
        None,
        100 + 9900,
        None,
        0,
    ),
    (
        "two boot failures: BootRequestExpired",
        [
            U(S + 100, 100000),
            *_sleep(S + 10000),
            TARGET(S + 20000, True),
            STATE(S + 21900, True),
            U(S + 22000, 100),
            *_sleep(S + 30000),
            TARGET(S + 40000, True),
            U(S + 42000, 100),
        ],
        None,
        100 + 9900 + (30000 - 22000),
        "BootRequestExpired",
        2,
    ),
    (
        "a request pending at the end counts one more failure",
        [
            U(S + 100, 100000),
            *_sleep(S + 10000),
            TARGET(S + 20000, True),
            STATE(S + 21900, True),
            U(S + 22000, 100),
            *_sleep(S + 30000),
            TARGET(S + 40000, True),
        ],
        None,
        100 + 9900 + 8000,
        "BootRequestExpired",
        2,
    ),
    (
        "Down at START since before START with target Up: wake_request = START, credit t - START",
        [U(S + 900, 600)],
        PowerAtStart(node_id=1, state="Down", down_since=S - 5000, target="Up"),
        900,
        None,
        0,
    ),
    (
        "Down at START with down_since null sleeps since START; no request: reports ignored",
        [U(S + 900, 600)],
        PowerAtStart(node_id=1, state="Down", down_since=None, target="Down"),
        0,
        None,
        0,
    ),
    (
        "post-period wake credits END - max(START, asleep_since)",
        [U(S + 100, 100000), *_sleep(E - 5000), TARGET(E - 1000, True), U(E + 300, 600)],
        None,
        100 + (E - 5000 - S - 100) + 5000,
        None,
        0,
    ),
    (
        "a pending request equal to START is not a failure",
        [],
        PowerAtStart(node_id=1, state="Down", down_since=S - 10, target="Up"),
        0,
        None,
        0,
    ),
]


@pytest.mark.parametrize(
    ("clause", "events", "power", "uptime_s", "violation", "failures"),
    FARMERBOT_ROWS,
    ids=[r[0] for r in FARMERBOT_ROWS],
)
def test_farmerbot_rules(clause, events, power, uptime_s, violation, failures):
    result = measure(events, power)
    assert (result.measured_uptime_s, result.violation, result.boot_failures) == (uptime_s, violation, failures)


@pytest.mark.parametrize(
    ("twin", "violation"),
    [
        (None, "MissingTwin"),
        (Twin(twin_id=1, relay=None, pk=None), "MissingRelay"),
        (Twin(twin_id=1, relay="", pk=None), "MissingRelay"),
        (Twin(twin_id=1, relay="r", pk="zz" * 33), "InvalidPublicKey"),
        (Twin(twin_id=1, relay="r", pk="ab" * 32), "InvalidPublicKey"),
        (Twin(twin_id=1, relay="r", pk=""), "InvalidPublicKey"),
        (Twin(twin_id=1, relay="r", pk="ab" * 33), None),
        (Twin(twin_id=1, relay="r", pk=None), None),
    ],
)
def test_twin_checks_for_nodes_that_reported(twin, violation):
    assert measure([U(S + 100, 1000)], twin=twin).violation == violation
    assert measure([], twin=twin).violation is None  # no `last`: the twin is not checked


@st.composite
def report_streams(draw):
    """Random report streams: steady runs, reboots, gaps, jitter (sorted by time)."""
    t = S - 3600 + draw(st.integers(0, 7200))
    boot = t - draw(st.integers(0, 10**6))
    events = []
    for _ in range(draw(st.integers(0, 120))):
        t += draw(st.integers(1, 30000))
        if draw(st.integers(0, 20)) == 0:
            boot = t - draw(st.integers(0, 3000))  # reboot
        jitter = draw(st.integers(-90, 90))
        events.append(U(t, max(t - boot + jitter, 0)))
    return events


@settings(max_examples=300, deadline=None)
@given(report_streams())
def test_measured_uptime_exceeds_the_period_by_at_most_the_grace_per_report(events):
    result = measure(events)
    in_window = sum(1 for t, _, _ in events if S <= t <= E + 27 * H)
    assert 0 <= result.measured_uptime_s <= PERIOD_LENGTH_S + 60 * in_window
    assert isinstance(result.measured_uptime_s, int)


def test_a_steady_node_gets_the_whole_period_within_a_report():
    events = [U(t, t - (S - 600)) for t in range(S + 60, E + 2400 + 1, 2400)]
    result = measure(events)
    assert result.violation is None
    assert PERIOD_LENGTH_S - 2460 <= result.measured_uptime_s <= PERIOD_LENGTH_S
