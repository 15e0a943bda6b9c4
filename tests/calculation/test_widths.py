"""The chain's integer widths (SPEC 10), one row per rule, and the deliberate differences.

Values inside their chain type are computed as minting_v3 computes them (u64 and u128 values,
its i64 casts of uptimes); values outside are `invalid_record` naming the field; where minting's
u64 money arithmetic would wrap, the node is `invalid_record`, never a wrapped amount.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.calculation.engine import calculate_period
from payouts.calculation.receipts import receipt_hash
from payouts.calculation.uptime import _measure_wrapping, as_i64, measure_uptime, timestamp_window
from payouts.periods import Period
from payouts.snapshot.load import SnapshotError, load_snapshot
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME, PowerAtStart, Twin
from tests import factories

GIB = 2**30
U64_MAX = 2**64 - 1
P = Period(81)
S, E = P.start_ts, P.end_ts
D = E - S
OVERFLOW = "reward overflows minting's u64 arithmetic"


def _write(tmp_path, document, name="month.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))  # the standard library writes big integers exactly
    return path


def _calculate(tmp_path, document):
    return {r.node_id: r for r in calculate_period(load_snapshot(_write(tmp_path, document))).receipts}


def _node(node_id=1, *, resources=None, consumption=None, **overrides):
    record = factories.node(node_id, **overrides)
    if resources:
        record["resources"] = {**record["resources"], **resources}
    if consumption:
        record["consumption"] = {**record["consumption"], **consumption}
    return record


# (rule, node overrides, expected eligibility, words in the reason or None)
WIDTH_ROWS = [
    ("resources are u64: 2^64 - 1 cores is a value", {"resources": {"cru": U64_MAX}}, "ok", None),
    ("resources are u64: 2^64 is not", {"resources": {"hru": 2**64}}, "invalid_record", "resources.hru"),
    ("resources are not negative", {"resources": {"sru": -1}}, "invalid_record", "resources.sru is -1"),
    ("nru is u64", {"consumption": {"nru": 2**64}}, "invalid_record", "consumption.nru"),
    ("ip_seconds is u64", {"consumption": {"ip_seconds": 2**64}}, "invalid_record", "consumption.ip_seconds"),
    ("resource-seconds are u128: 2^64 pays", {"consumption": {"hru_seconds": 2**64}}, "ok", None),
    ("resource-seconds are u128: 2^128 - 1 pays", {"consumption": {"cru_seconds": 2**128 - 1}}, "ok", None),
    ("resource-seconds past u128", {"consumption": {"mru_seconds": 2**128}}, "invalid_record", "u128"),
    ("connection price is u32", {"connection_price": 2**32}, "invalid_record", "connection_price"),
    ("created is u64", {"created": 2**64}, "invalid_record", "created"),
    # minting's u64 money arithmetic would wrap: refused, never a wrapped amount
    ("ip_seconds x ipv4 wraps", {"consumption": {"ip_seconds": 2**63}}, "invalid_record", OVERFLOW),
    ("nru near 2^64: tft x permille wraps", {"consumption": {"nru": U64_MAX}}, "invalid_record", OVERFLOW),
    ("price 1 mUSD: musd x 10^7 still fits", {"connection_price": 1}, "ok", None),
]


@pytest.mark.parametrize(("rule", "overrides", "eligibility", "words"), WIDTH_ROWS, ids=[r[0] for r in WIDTH_ROWS])
def test_node_value_widths(tmp_path, rule, overrides, eligibility, words):
    nodes = [factories.node(1234), _node(1, **overrides)]
    receipts = _calculate(tmp_path, factories.snapshot(nodes=nodes))
    assert receipts[1234].eligibility == "ok"  # the rest of the month is untouched
    receipt = receipts[1]
    assert receipt.eligibility == eligibility, receipt.reason
    if words is not None:
        assert words in receipt.reason
    if eligibility == "invalid_record":
        assert receipt.reward_tft_units == 0 and receipt.reward_musd == 0
    else:
        assert receipt.reward_tft_units > 0


def test_large_rented_storage_pays_like_minting(tmp_path):
    """10 TiB of HDD rented all month: the u128 total passes and only the utilization shows it."""
    rented = {"hru_seconds": 10 * 2**40 * D}
    assert rented["hru_seconds"] > U64_MAX
    nodes = [_node(1, resources={"hru": 16 * 2**40}), _node(2, resources={"hru": 16 * 2**40}, consumption=rented)]
    receipts = _calculate(tmp_path, factories.snapshot(nodes=nodes))
    assert receipts[2].eligibility == "ok"
    assert receipts[2].reward_musd == receipts[1].reward_musd > 0
    assert b'"hru":62.5,' in receipts[2].receipt_bytes  # 10 TiB of 16 TiB used: 62.5 %


def test_utilization_truncates_to_u64_as_minting_casts(tmp_path):
    """`(r_seconds / D) as u64` keeps the low 64 bits; the receipt shows what minting shows."""
    seconds = (2**64 + 7) * D
    node = _node(1, resources={"cru": 4}, consumption={"cru_seconds": seconds})
    receipt = _calculate(tmp_path, factories.snapshot(nodes=[node]))[1]
    assert receipt.eligibility == "ok"
    assert b'"resource_utilization":{"cru":175.0,' in receipt.receipt_bytes  # 7 * 100 / 4


@pytest.mark.parametrize(
    ("policy_field", "value", "words"),
    [("cu", 2**32, "farming policy 1's cu"), ("ipv4", -1, "ipv4"), ("minimal_uptime", 2**16, "u16")],
)
def test_policy_values_are_u32_and_minimal_uptime_u16(tmp_path, policy_field, value, words):
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2, farming_policy_id=2)])
    document["farming_policies"][0][policy_field] = value
    receipts = _calculate(tmp_path, document)
    assert receipts[1].eligibility == "invalid_record" and words in receipts[1].reason
    assert receipts[2].eligibility == "ok"  # nodes on another policy are untouched


def test_policy_values_at_their_limits_are_values(tmp_path):
    document = factories.snapshot(nodes=[factories.node(1)])
    document["farming_policies"][0].update(minimal_uptime=2**16 - 1)
    document["farming_policies"][0].update(id=7)
    document["nodes"][0]["farming_policy_id"] = 7
    receipt = _calculate(tmp_path, document)[1]
    assert receipt.eligibility == "below_sla"  # a quirk policy: permille < 65535


def test_sleep_mark_is_u64(tmp_path):
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2)])
    document["power_at_start"] = [{"node_id": 2, "state": "Down", "down_since": 2**64, "target": "Down"}]
    receipts = _calculate(tmp_path, document)
    assert receipts[2].eligibility == "invalid_record" and "power_at_start.down_since" in receipts[2].reason


@pytest.mark.parametrize("path", [("nodes", 0, "node_id"), ("farms", 0, "farm_id"), ("twins", 0, "twin_id")])
def test_ids_past_u32_refuse_the_file_naming_the_path(tmp_path, path):
    document = factories.snapshot()
    document[path[0]][path[1]][path[2]] = 2**32
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(_write(tmp_path, document))
    assert caught.value.json_path == f"$.{path[0]}[{path[1]}].{path[2]}"
    assert "4294967295" in caught.value.problem


def test_reward_beyond_a_stellar_payment_is_invalid(tmp_path):
    """A quirk policy (no uptime scaling) at 1 mUSD per TFT can reach more TFT units than one
    Stellar payment carries (2^63 - 1): refused rather than recorded as unpayable."""
    document = factories.snapshot(
        nodes=[_node(1, farming_policy_id=7, connection_price=1, consumption={"ip_seconds": 720 * 10**12})]
    )
    policy = copy.deepcopy(factories.POLICY_DIY)
    policy.update(id=7, ipv4=5, minimal_uptime=0, default=False)
    document["farming_policies"].append(policy)
    receipt = _calculate(tmp_path, document)[1]
    assert receipt.eligibility == "invalid_record" and "largest Stellar payment" in receipt.reason


# -- uptimes are u64, cast to i64 in minting's deltas ----------------------------------------


def U(t, u):
    return (t, EVENT_UPTIME, u)


TWIN = Twin(twin_id=1, relay="relay.grid.tf", pk=None)


def _measure(events, power=None):
    return measure_uptime(events, period=P, power_at_start=power, twin=TWIN)


# (rule, events, measured uptime, violation)
UPTIME_ROWS = [
    (
        "u64::MAX behaves like -1: the reboot branch credits the cap",
        [U(S + 100, 10**5), U(S + 2500, U64_MAX)],
        2560,
        None,
    ),
    (
        "2^63 is i64::MIN: the delta wraps to i64::MAX - 99,999",
        [U(S + 100, 10**5), U(S + 2500, 2**63)],
        100,
        "UptimeTooHigh",
    ),
    (
        "2^63 + 10^5: the delta is exactly i64::MIN, the reboot branch",
        [U(S + 100, 10**5), U(S + 2500, 2**63 + 10**5)],
        2560,
        None,
    ),
    ("2^62 is a real (too high) uptime", [U(S + 100, 10**5), U(S + 2500, 2**62)], 100, "UptimeTooHigh"),
    ("a first report of u64::MAX credits min(t - START, u, cap)", [U(S + 1000, U64_MAX)], 1000, None),
    (
        "after a u64::MAX reboot the next report follows on",
        [U(S + 100, 10**5), U(S + 2500, U64_MAX), U(S + 4900, 2399)],
        2560 + 2400,
        None,
    ),
]


@pytest.mark.parametrize(("rule", "events", "uptime_s", "violation"), UPTIME_ROWS, ids=[r[0] for r in UPTIME_ROWS])
def test_uptime_widths(rule, events, uptime_s, violation):
    result = _measure(events)
    assert (result.measured_uptime_s, result.violation) == (uptime_s, violation)


def test_as_i64_wraps_like_rust():
    assert [as_i64(v) for v in (U64_MAX, 2**63, 2**63 - 1, 0, -1, 2**64)] == [-1, -(2**63), 2**63 - 1, 0, -1, 0]


def test_hostile_uptimes_in_a_file_are_measured_or_invalid(tmp_path):
    reports = [
        {"node_id": 1, "timestamp": S + 100, "uptime": 10**5},
        {"node_id": 1, "timestamp": S + 2500, "uptime": U64_MAX},
    ]
    reports += [{"node_id": 2, "timestamp": S + 100, "uptime": 2**64}]
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2)], uptime_events=reports)
    receipts = _calculate(tmp_path, document)
    assert receipts[1].measured_uptime_s == 2560 and receipts[1].violation is None
    assert receipts[2].eligibility == "invalid_record" and "uptime 18446744073709551616" in receipts[2].reason


_narrow_uptime = st.integers(min_value=0, max_value=10**7)


@st.composite
def _machines_inputs(draw):
    """Events of one node with narrow values: reports, reboots, farmerbot sleeps."""
    t = S - 3000
    events = []
    for _ in range(draw(st.integers(min_value=0, max_value=30))):
        t += draw(st.integers(min_value=0, max_value=3000))
        choice = draw(st.integers(min_value=0, max_value=9))
        if choice == 0:
            events.append((t, EVENT_POWER_TARGET, draw(st.booleans())))
        elif choice == 1:
            events.append((t, EVENT_POWER_STATE, draw(st.booleans())))
        else:
            events.append((t, EVENT_UPTIME, draw(_narrow_uptime)))
    if draw(st.booleans()):  # reach the post-period window too
        events = [(ts - S + E - 40_000, kind, value) for ts, kind, value in events]
    power = None
    if draw(st.booleans()):
        power = PowerAtStart(
            node_id=1,
            state=draw(st.sampled_from(["Up", "Down"])),
            down_since=draw(st.one_of(st.none(), st.integers(min_value=S - 10**5, max_value=S + 10**5))),
            target=draw(st.sampled_from(["Up", "Down"])),
        )
    return events, power


@settings(max_examples=300, deadline=None)
@given(_machines_inputs())
def test_the_wrapping_machine_equals_the_fast_one_on_narrow_values(inputs):
    events, power = inputs
    fast = measure_uptime(events, period=P, power_at_start=power, twin=TWIN, wide=False)
    exact = _measure_wrapping(events, P, power, TWIN, timestamp_window(events, P), None)
    assert fast == exact


# -- a missing twin: real units, MissingTwin, reward 0 ---------------------------------------

MISSING_TWIN_RECEIPT = (
    b'{"period":{"start":1735602280,"end":1738233160},"node_id":1234,"twin_id":999,"farm_id":42,'
    b'"farm_name":"my_farm","stellar_payout_address":"GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAWHF",'
    b'"measured_uptime":1000,"tft_connection_price":80,"cloud_units":{"cu":3.75,"su":5.461333,"nu":0.0},'
    b'"resource_units":{"cru":4.0,"mru":16.0,"hru":4096.0,"sru":512.0},'
    b'"resource_utilization":{"cru":0.0,"mru":0.0,"hru":0.0,"sru":0.0,"ip":0.0},'
    b'"reward":{"musd":0,"tft":0},"carbon_offset":null,"node_type":"DIY","farming_policy_id":1,'
    b'"resource_rewards":{"cu":2400,"su":1000,"nu":30,"ipv4":5}}'
)


def test_a_missing_twin_keeps_the_real_units_and_records_missing_twin(tmp_path):
    reports = [{"node_id": 1234, "timestamp": S + 1000, "uptime": 5000}]
    document = factories.snapshot(nodes=[factories.node(1234, twin_id=999)], uptime_events=reports)
    receipt = _calculate(tmp_path, document)[1234]
    assert receipt.violation == "MissingTwin" and receipt.eligibility == "violation"
    assert (receipt.reward_musd, receipt.reward_tft_units) == (0, 0)
    assert (receipt.cu_pm, receipt.su_pm) == (3_750_000, 5_461_333)
    assert receipt.receipt_bytes == MISSING_TWIN_RECEIPT
    assert receipt.receipt_hash == receipt_hash(MISSING_TWIN_RECEIPT)


def test_a_missing_twin_without_uptime_has_no_violation(tmp_path):
    document = factories.snapshot(nodes=[factories.node(1234, twin_id=999)], uptime_events=[])
    receipt = _calculate(tmp_path, document)[1234]
    assert receipt.violation is None and receipt.eligibility == "no_uptime"
    assert receipt.cu_pm == 3_750_000 and b'"mru":16.0' in receipt.receipt_bytes


# -- deliberate differences: minting would abort the whole month ----------------------------

# (difference, node overrides, words)
DIFFERENCE_ROWS = [
    ("unknown farm (minting unwraps a missing farm)", {"farm_id": 999}, "farm 999 is not in the snapshot"),
    ("unknown policy (minting unwraps a missing policy)", {"farming_policy_id": 9}, "farming policy 9"),
    ("connection price 0 (minting divides by it)", {"connection_price": 0}, "connection_price is 0"),
    ("mru below 1 GiB (minting's u128 subtraction underflows)", {"resources": {"mru": GIB - 1}}, "below 1 GiB"),
]


@pytest.mark.parametrize(("difference", "overrides", "words"), DIFFERENCE_ROWS, ids=[r[0] for r in DIFFERENCE_ROWS])
def test_deliberate_differences_give_invalid_record(tmp_path, difference, overrides, words):
    receipts = _calculate(tmp_path, factories.snapshot(nodes=[factories.node(1), _node(2, **overrides)]))
    assert receipts[1].eligibility == "ok"
    assert receipts[2].eligibility == "invalid_record" and words in receipts[2].reason


def test_post_period_invalid_reboot_after_a_violation_is_ignored():
    """minting reaches `unreachable!()` here; the product ignores the report."""
    events = [
        U(S + 100, 10**5),
        U(S + 2500, 10**6),
        U(E - 100, 10**5 + E - S - 200),
        U(E + 600, 10**5 + E - S - 200 - 50),
    ]
    first = _measure(events[:3])
    assert first.violation == "UptimeTooHigh"
    result = _measure(events)
    assert result.violation == "UptimeTooHigh" and result.measured_uptime_s == first.measured_uptime_s


def test_a_power_event_past_u64_makes_its_node_invalid(tmp_path):
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2)])
    document["power_events"] = [
        {"node_id": 2, "timestamp": 2**64 + 1, "kind": "target", "value": "Down"},
        {"node_id": 1, "timestamp": S + 10, "kind": "target", "value": "Up"},
    ]
    receipts = _calculate(tmp_path, document)
    assert receipts[1].eligibility == "ok"
    assert receipts[2].eligibility == "invalid_record" and str(2**64 + 1) in receipts[2].reason
