"""The approver's review: comparisons with the previous period, address changes, caps."""

from __future__ import annotations

from payouts.runs.review import build_review
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories

OTHER_ADDRESS = "GBOVQKJYHXRR3DX6NOX2RRYFRCUMSADGDESTDNBDS6CDVLGVESRTAC47"


def _month(tmp_path, offset, address, nodes):
    farms = [
        {"farm_id": 42, "name": "my_farm", "twin_id": 7, "certification": "NotCertified", "stellar_address": address},
        {"farm_id": 43, "name": "no address", "twin_id": 7, "certification": "NotCertified", "stellar_address": ""},
    ]
    document = factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    return load_snapshot(factories.write(tmp_path / f"{offset}.json", document))


def test_review_compares_with_the_previous_period(session, tmp_path):
    first_nodes = [factories.node(1), factories.node(2), factories.node(3, farm_id=43)]
    calculate_run(session, _month(tmp_path, 81, factories.EXAMPLE_ADDRESS, first_nodes))
    session.commit()
    second_nodes = [
        factories.node(1),
        factories.node(2, virtualized=True),
        factories.node(3, farm_id=43),
        factories.node(4),
    ]
    run = calculate_run(session, _month(tmp_path, 82, OTHER_ADDRESS, second_nodes)).run
    session.commit()
    one_node_units = 1_807_625_000

    review = build_review(
        session,
        run,
        cap_node_tft_units=one_node_units - 1,
        cap_farm_tft_units=2 * one_node_units - 1,
        cap_run_tft_units=10 * one_node_units,
    )
    assert review.previous_run_id is not None
    assert review.previous_total_tft_units == 3 * one_node_units
    assert review.total_tft_units == 3 * one_node_units  # node 2 lost, node 4 gained
    assert review.by_eligibility == {"no_address": 1, "ok": 2, "virtualized": 1}
    assert review.previous_by_eligibility == {"no_address": 1, "ok": 2}
    node_changes = {c.key: c.delta_tft_units for c in review.node_changes}
    assert node_changes == {2: -one_node_units, 4: one_node_units}
    assert [(c.farm_id, c.previous_address, c.current_address) for c in review.address_changes] == [
        (42, factories.EXAMPLE_ADDRESS, OTHER_ADDRESS)
    ]
    assert review.held_for_address == [
        {
            "farm_id": 43,
            "farm_name": "no address",
            "eligibility": "no_address",
            "address": "",
            "nodes": 1,
            "held_tft_units": one_node_units,
        }
    ]
    assert {(b.scope, b.key) for b in review.cap_breaches} == {("node", 1), ("node", 3), ("node", 4), ("farm", 42)}
    document = review.to_document()
    assert document["node_changes"][0]["delta_tft_units"] in (one_node_units, -one_node_units)
