import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.stellar.merkle import inclusion_proof, merkle_root, verify_inclusion

hashes = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True)


def _h(i: int) -> bytes:
    return hashlib.sha256(bytes([i])).digest()


def test_rfc6962_shapes_for_small_trees():
    a, b, c = sorted([_h(1), _h(2), _h(3)])
    leaf = lambda x: hashlib.sha256(b"\x00" + x).digest()
    node = lambda l, r: hashlib.sha256(b"\x01" + l + r).digest()
    assert merkle_root([]) == hashlib.sha256(b"").digest()
    assert merkle_root([a]) == leaf(a)
    assert merkle_root([b, a]) == node(leaf(a), leaf(b))
    # three leaves split 2 + 1
    assert merkle_root([c, a, b]) == node(node(leaf(a), leaf(b)), leaf(c))


@given(hashes)
def test_every_leaf_proves_its_inclusion_and_order_does_not_matter(leaves):
    root = merkle_root(leaves)
    assert merkle_root(list(reversed(leaves))) == root
    for value in leaves:
        index, size, path = inclusion_proof(value, leaves)
        assert verify_inclusion(value, index, size, path, root)


@given(hashes, st.binary(min_size=32, max_size=32))
def test_a_tampered_leaf_or_root_fails(leaves, other):
    root = merkle_root(leaves)
    index, size, path = inclusion_proof(leaves[0], leaves)
    if other not in leaves:
        assert not verify_inclusion(other, index, size, path, root)
    assert not verify_inclusion(leaves[0], index, size, path, bytes(32) if root != bytes(32) else b"\x01" * 32)
    if path:
        bad = [bytes(32)] + path[1:] if path[0] != bytes(32) else [b"\x01" * 32] + path[1:]
        assert not verify_inclusion(leaves[0], index, size, bad, root)


def test_unknown_leaf_and_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        inclusion_proof(_h(9), [_h(1), _h(2)])
    with pytest.raises(ValueError):
        merkle_root([b"short"])
