"""Event ids of both Subsquid layouts give the block height and the index in the block."""

from __future__ import annotations

import pytest

from payouts.sources.event_ids import event_position


@pytest.mark.parametrize(
    ("event_id", "position"),
    [
        ("0001234567-000012-ab3f9", (1234567, 12)),  # FireSquid: height, index, hash prefix
        ("0001234567-ab3f9-000012", (1234567, 12)),  # ArrowSquid: height, hash prefix, index
        ("0000000000-000000-00000", (0, 0)),
        ("0014215046-000999-0a0b0", (14215046, 999)),
    ],
)
def test_both_layouts_give_height_and_index(event_id, position):
    assert event_position(event_id) == position


@pytest.mark.parametrize(
    "event_id",
    ["", "1234567-000012-ab3f9", "0001234567-12-ab3f9", "0001234567-000012", "contract-5", "0001234567-ABCDE-000012"],
)
def test_other_ids_are_refused(event_id):
    assert event_position(event_id) is None


def test_string_order_is_chain_order():
    ids = ["0000000010-000002-fffff", "0000000009-000100-00000", "0000000010-000001-aaaaa", "0000000100-000000-11111"]
    assert sorted(ids) == sorted(ids, key=event_position)
