"""`/2` edges: event ids of every layout, the timestamp inherent, and the first blocks after the
period's start and end from known blocks (the builds against a loopback node are in
test_indexer_build.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from payouts.sources.event_ids import event_position
from payouts.sources.indexer.edges import EdgePoints, resolve_edge
from payouts.sources.tfchain_rpc import decode_compact, encode_compact, timestamp_inherent, timestamp_ms_of
from tests.sources.test_indexer_build import OPTIONS, PERIOD, assert_same_receipts, build, expected, policies, synthetic  # noqa: F401 - module fixtures

heights = st.integers(min_value=0, max_value=10**10 - 1)
indexes = st.integers(min_value=0, max_value=10**6 - 1)
hash_prefixes = st.text(alphabet="0123456789abcdef", min_size=5, max_size=5)


@given(heights, indexes, hash_prefixes)
def test_firesquid_ids_give_height_and_index(height, index, prefix):
    assert event_position(f"{height:010d}-{index:06d}-{prefix}") == (height, index)


@given(heights, indexes, hash_prefixes)
def test_arrowsquid_ids_give_height_and_index(height, index, prefix):
    assert event_position(f"{height:010d}-{prefix}-{index:06d}") == (height, index)


@given(st.lists(st.tuples(heights, indexes, hash_prefixes, st.booleans()), min_size=2, max_size=30))
def test_id_order_is_chain_order_in_either_layout(events):
    ids = [f"{h:010d}-{i:06d}-{p}" if fire else f"{h:010d}-{p}-{i:06d}" for h, i, p, fire in events]
    # within one layout string order is chain order; across layouts the height decides
    assert [event_position(i)[0] for i in sorted(ids)] == sorted(h for h, *_ in events)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_compact_integers_round_trip(value):
    encoded = encode_compact(value)
    assert decode_compact(encoded + b"\xff", 0) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=2**64 - 1), st.lists(st.binary(max_size=40), max_size=4))
def test_the_timestamp_inherent_is_found_among_other_extrinsics(now_ms, others):
    extrinsics = ["0x" + (encode_compact(len(o)) + o).hex() for o in others]
    assert timestamp_ms_of([*extrinsics, timestamp_inherent(now_ms)]) == now_ms


def test_a_block_without_a_timestamp_inherent_has_none():
    signed_transfer = "0x" + (encode_compact(4) + bytes([0x84, 20, 0, 1])).hex()  # signed: 0x84
    assert timestamp_ms_of([signed_transfer, "0xzz", "0x"]) is None


def test_consecutive_blocks_at_an_edge_need_no_node():
    points = EdgePoints(1000)
    points.see_all([(40, 994), (41, 1000), (42, 1006), (43, 1012)])
    edge = resolve_edge("start", points, None)
    assert (edge.height, edge.timestamp, edge.unsure_from) == (42, 1006, None)


def test_a_gap_at_an_edge_is_searched_on_the_node_or_left_unsure():
    points = EdgePoints(1000)
    points.see_all([(10, 940), (20, 1060)])  # blocks 11..19 hold no event
    stamps = {h: 940 + 12 * (h - 10) for h in range(10, 21)}  # 15 is 1000, 16 is 1012
    asked: list[int] = []

    def block_ts(height: int) -> int:
        asked.append(height)
        return stamps[height]

    edge = resolve_edge("start", points, block_ts)
    assert (edge.height, edge.timestamp, edge.unsure_from) == (16, 1012, None)
    assert len(asked) <= 4 and all(10 < h < 20 for h in asked)
    unsure = resolve_edge("start", points, None)
    assert (unsure.height, unsure.timestamp, unsure.unsure_from) == (20, 1060, 11)
