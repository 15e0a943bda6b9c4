"""A period's calculation through the real loader: one receipt per node, eligibility words,
odd records zeroed with a reason, address problems holding (not changing) the reward."""

from __future__ import annotations

import pytest

from payouts.calculation.engine import calculate_period
from payouts.calculation.receipts import receipt_hash
from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from tests import factories

GIB = factories.GIB
PERIOD = Period(81)


def calculate(tmp_path, document, **kwargs):
    return calculate_period(load_snapshot(factories.write(tmp_path / "s.json", document)), **kwargs)


def by_node(calculation):
    return {r.node_id: r for r in calculation.receipts}


def test_every_node_gets_one_receipt_sorted_by_node_id(tmp_path):
    nodes = [factories.node(n) for n in (30, 10, 20)]
    result = calculate(tmp_path, factories.snapshot(nodes=nodes, uptime_events=[]))
    assert [r.node_id for r in result.receipts] == [10, 20, 30]
    assert {r.eligibility for r in result.receipts} == {"no_uptime"}
    assert result.totals.tft == 0 and result.totals.nodes == 3
    for r in result.receipts:
        assert receipt_hash(r.receipt_bytes) == r.receipt_hash


def test_full_uptime_worked_example_is_ok_and_matches_the_spec(tmp_path):
    result = calculate(tmp_path, factories.snapshot())
    receipt = result.receipts[0]
    assert receipt.eligibility == "ok" and receipt.reason == ""
    assert (receipt.reward_musd, receipt.reward_tft_units) == (14_461, 1_807_625_000)
    assert receipt.uptime_permille == 1000
    assert result.totals.rewarded_nodes == 1


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"farm_id": 999}, "farm 999 is not in the snapshot"),
        ({"farming_policy_id": 9}, "farming policy 9"),
        ({"resources": {"cru": -1, "mru": 16 * GIB, "sru": 0, "hru": 0}}, "resources.cru is -1"),
        ({"resources": {"cru": 4, "mru": GIB - 1, "sru": 0, "hru": 0}}, "below 1 GiB"),
        ({"resources": {"cru": 4, "mru": 16 * GIB, "sru": 0, "hru": 2**80}}, "resources.hru"),
        ({"connection_price": 0}, "connection_price is 0"),
    ],
)
def test_odd_records_zero_only_that_node_with_a_reason(tmp_path, overrides, words):
    nodes = [factories.node(1), factories.node(2, **overrides)]
    result = by_node(calculate(tmp_path, factories.snapshot(nodes=nodes)))
    assert result[1].eligibility == "ok" and result[1].reward_tft_units > 0
    assert result[2].eligibility == "invalid_record"
    assert words in result[2].reason
    assert (result[2].reward_musd, result[2].reward_tft_units) == (0, 0)


def test_duplicate_node_id_is_one_invalid_receipt(tmp_path):
    nodes = [factories.node(1), factories.node(1)]
    result = calculate(tmp_path, factories.snapshot(nodes=nodes))
    assert len(result.receipts) == 1
    assert result.receipts[0].eligibility == "invalid_record"
    assert "appears 2 times" in result.receipts[0].reason
    assert 1 in result.report.invalid_records


def test_virtualized_violation_and_below_sla(tmp_path):
    nodes = [factories.node(1, virtualized=True), factories.node(2), factories.node(3)]
    events = factories.full_uptime_reports(1, PERIOD) + factories.full_uptime_reports(2, PERIOD)
    events[len(events) // 2 + 5]["uptime"] += 10_000  # node 2 jumps: UptimeTooHigh
    # node 3 reports for only 90 % of the period
    events += [
        e for e in factories.full_uptime_reports(3, PERIOD) if e["timestamp"] < PERIOD.start_ts + 0.9 * 2_630_880
    ]
    result = by_node(calculate(tmp_path, factories.snapshot(nodes=nodes, uptime_events=events)))
    assert result[1].eligibility == "virtualized" and result[1].reward_tft_units == 0
    assert (result[2].eligibility, result[2].violation) == ("violation", "UptimeTooHigh")
    assert result[2].reward_tft_units == 0 and result[2].measured_uptime_s > 0
    assert result[3].eligibility == "below_sla"
    assert "below the 95 % DIY minimum" in result[3].reason


@pytest.mark.parametrize(("address", "eligibility"), [("", "no_address"), ("GNOTAKEY", "invalid_address")])
def test_address_problems_hold_the_payment_but_keep_the_reward(tmp_path, address, eligibility):
    farms = [{"farm_id": 42, "name": "f", "twin_id": 7, "certification": "NotCertified", "stellar_address": address}]
    result = calculate(tmp_path, factories.snapshot(farms=farms)).receipts[0]
    assert result.eligibility == eligibility
    assert (result.reward_musd, result.reward_tft_units) == (14_461, 1_807_625_000)
    assert result.stellar_payout_address == address


def test_opted_out_node_receives_nothing_and_says_so(tmp_path):
    result = calculate(tmp_path, factories.snapshot(), opted_out_since={1234: PERIOD.start_ts + 10}).receipts[0]
    assert result.eligibility == "opted_out" and result.reward_tft_units == 0
    assert "revenue model" in result.reason


def test_report_counts_dropped_events_and_quirk_policies(tmp_path):
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2, farming_policy_id=7)])
    document["farming_policies"].append({**factories.POLICY_DIY, "id": 7, "name": "custom", "default": False})
    document["uptime_events"].append({"node_id": 555, "timestamp": PERIOD.start_ts + 5, "uptime": 5})
    result = calculate(tmp_path, document)
    assert result.report.quirk_policy_ids == [7]
    assert result.report.unknown_node_events == 1
    assert result.report.by_eligibility == {"ok": 2}


def test_ungrouped_file_gives_the_same_receipts_as_a_grouped_one(tmp_path):
    nodes = [factories.node(1), factories.node(2)]
    grouped = factories.snapshot(nodes=nodes)
    shuffled = dict(grouped)
    shuffled["uptime_events"] = sorted(grouped["uptime_events"], key=lambda e: e["timestamp"])
    a = calculate(tmp_path, grouped)
    b = calculate_period(load_snapshot(factories.write(tmp_path / "other.json", shuffled)))
    assert [r.receipt_hash for r in a.receipts] == [r.receipt_hash for r in b.receipts]


def test_progress_reaches_the_node_count(tmp_path):
    seen = []
    calculate(tmp_path, factories.snapshot(nodes=[factories.node(n) for n in range(1, 4)]), progress=seen.append)
    assert seen[-1] == 3
