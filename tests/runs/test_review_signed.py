"""The review shows what is signed: its sections (new receipts, retries, corrections) add up to
the manifest's total; it flags a repeated month, all-new addresses, outliers and nodes beyond
what one server holds; a run past a cap or bound is approved only with the exceedance accepted
inside the signed manifest."""

from __future__ import annotations

import orjson
import pytest
from sqlmodel import select
from stellar_sdk import Keypair

from payouts.export.corrections import record_correction
from payouts.ledger import repository
from payouts.ledger.models import Approval, Payment
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.exceedances import Exceedance, ExceedancesNotAccepted, record_acceptance
from payouts.runs.review import ReviewLimits, build_review
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories

FARMER = Keypair.random().public_key
OTHER = Keypair.random().public_key


def _farms(address_of_farm_2: str, farmer: str = FARMER) -> list[dict]:
    return [
        {"farm_id": 1, "name": "one", "twin_id": 7, "certification": "NotCertified", "stellar_address": farmer},
        {
            "farm_id": 2,
            "name": "two",
            "twin_id": 7,
            "certification": "NotCertified",
            "stellar_address": address_of_farm_2,
        },
    ]


def _month(tmp_path, offset: int, farms: list[dict], nodes: list[dict] | None = None):
    nodes = nodes or [factories.node(10, farm_id=1), factories.node(20, farm_id=2)]
    document = factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    return load_snapshot(factories.write(tmp_path / f"m{offset}-{len(nodes)}.json", document))


def test_the_sections_add_up_to_the_manifest_with_retries_and_corrections(session, tmp_path):
    first = calculate_run(session, _month(tmp_path, 91, _farms(""))).run  # farm 2 held: no address
    paid = session.exec(select(Payment).where(Payment.run_id == first.id, Payment.farm_id == 1)).one()
    record_correction(session, paid.receipt_hash, 12_345_678, "uptime under-counted")
    second = calculate_run(session, _month(tmp_path, 92, _farms(OTHER))).run
    session.commit()

    review = build_review(session, second)
    manifest = build_manifest(session, second)
    by_kind = {section.kind: section for section in review.sections}
    assert by_kind["retry"].payments == 1 and by_kind["correction"].payments == 1
    assert by_kind["retry"].entries[0]["of_period"] == "2025-11"
    assert by_kind["correction"].tft_units == 12_345_678
    assert sum(s.tft_units for s in review.sections) == manifest.total_tft_units == review.manifest_total_tft_units
    assert sum(s.payments for s in review.sections) == manifest.payment_count == review.manifest_payment_count
    # the receipts alone are less than what is signed: the retry and the correction are in it
    assert by_kind["receipt"].tft_units < manifest.total_tft_units
    assert review.period_month == "December 2025"
    assert review.period_start.startswith("2025-11-30T22:32:40") and review.period_end.startswith("2025-12-31")


def test_a_repeated_month_all_new_addresses_and_outliers_are_flagged(session, tmp_path):
    calculate_run(session, _month(tmp_path, 91, _farms(OTHER)))
    same = calculate_run(session, _month(tmp_path, 92, _farms(OTHER))).run
    review = build_review(session, same)
    assert review.identical_to_previous and not review.all_addresses_new and review.outliers == []

    big = factories.node(20, farm_id=2)
    big["resources"] = {k: v * 8 for k, v in big["resources"].items()}
    moved = calculate_run(
        session,
        _month(
            tmp_path,
            93,
            _farms(Keypair.random().public_key, Keypair.random().public_key),
            [factories.node(10, farm_id=1), big],
        ),
    ).run
    review = build_review(session, moved, limits=ReviewLimits(outlier_factor=3))
    assert not review.identical_to_previous and review.all_addresses_new
    assert {(o.scope, o.key) for o in review.outliers} == {("node", 20), ("farm", 2)}
    assert build_review(session, moved, limits=ReviewLimits(outlier_factor=100)).outliers == []


def test_nodes_beyond_one_server_are_exceedances(session, tmp_path):
    huge = factories.node(20, farm_id=2)
    huge["resources"]["cru"] = 4096
    run = calculate_run(session, _month(tmp_path, 91, _farms(OTHER), [factories.node(10, farm_id=1), huge])).run
    receipt = next(r for r in repository.receipts_of_run(session, run.id) if r.node_id == 20)
    assert receipt.reward_tft_units > 0
    review = build_review(session, run, limits=ReviewLimits(max_cores=1024))
    assert Exceedance("cores", 20, 4096, 1024) in review.exceedances
    assert build_review(session, run, limits=ReviewLimits(max_cores=8192)).exceedances == []


def test_a_run_past_a_cap_is_approved_only_with_the_exceedance_in_the_signed_manifest(session, tmp_path):
    approver = Keypair.random()
    run = calculate_run(session, _month(tmp_path, 91, _farms(OTHER))).run
    limits = ReviewLimits(cap_node_tft_units=1)
    review = build_review(session, run, limits=limits)
    assert {(e.kind, e.key) for e in review.exceedances} == {("node_cap", 10), ("node_cap", 20)}

    def approve():
        manifest = build_manifest(session, run)
        return approve_run(
            session,
            run,
            public_key=approver.public_key,
            signature_b64=sign_manifest(manifest, approver),
            approvers=[approver.public_key],
            required=1,
            exceedances=build_review(session, run, limits=limits).exceedances,
        )

    with pytest.raises(ExceedancesNotAccepted) as refused:
        approve()
    assert {e.key for e in refused.value.exceedances} == {10, 20}
    assert session.exec(select(Approval)).all() == []

    before = build_manifest(session, run).sha256
    assert record_acceptance(session, run, review.exceedances, "two big nodes, checked with the farmer", approved=0)
    manifest = build_manifest(session, run)
    assert manifest.sha256 != before  # the acceptance is part of what is signed
    assert approve() == 1
    (approval,) = session.exec(select(Approval)).all()
    signed = orjson.loads(approval.manifest_json)
    assert signed["accepted_exceedances"]["reason"] == "two big nodes, checked with the farmer"
    assert {item["key"] for item in signed["accepted_exceedances"]["items"]} == {10, 20}
    assert build_review(session, run, limits=limits, approvers=[approver.public_key]).approvals[0]["counts"] is True
