"""RFC 6962 Merkle Tree Hash over receipt hashes (SHA-256), with inclusion proofs.

Used for batch memos (MEMO_HASH = root of the receipt hashes in the transaction), run manifests
and the proofs in the farmer export. Leaves are the receipt hashes in ascending order;
leaf = SHA-256(0x00 || receipt hash bytes), node = SHA-256(0x01 || left || right), and the
RFC's split (largest power of two below n) for uneven counts. SHA-256 lets a browser check a
proof with WebCrypto alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_LEAF = b"\x00"
_NODE = b"\x01"


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(receipt_hash: bytes) -> bytes:
    return _sha256(_LEAF + receipt_hash)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(_NODE + left + right)


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def sorted_leaves(receipt_hashes: Sequence[str | bytes]) -> list[bytes]:
    """Receipt hashes (hex or bytes) as bytes, in the tree's ascending order."""
    as_bytes = [bytes.fromhex(h) if isinstance(h, str) else bytes(h) for h in receipt_hashes]
    for value in as_bytes:
        if len(value) != 32:
            raise ValueError(f"a receipt hash is 32 bytes, got {len(value)}")
    return sorted(as_bytes)


def _root(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = _split(n)
    return node_hash(_root(leaves[:k]), _root(leaves[k:]))


def merkle_root(receipt_hashes: Sequence[str | bytes]) -> bytes:
    """The Merkle Tree Hash of the receipt hashes (order of the input does not matter)."""
    return _root(sorted_leaves(receipt_hashes))


def _path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = _split(n)
    if index < k:
        return _path(index, leaves[:k]) + [_root(leaves[k:])]
    return _path(index - k, leaves[k:]) + [_root(leaves[:k])]


def inclusion_proof(receipt_hash: str | bytes, receipt_hashes: Sequence[str | bytes]) -> tuple[int, int, list[bytes]]:
    """(leaf index, tree size, audit path) proving `receipt_hash` is in the tree."""
    leaves = sorted_leaves(receipt_hashes)
    target = bytes.fromhex(receipt_hash) if isinstance(receipt_hash, str) else bytes(receipt_hash)
    try:
        index = leaves.index(target)
    except ValueError:
        raise ValueError("the receipt hash is not among the tree's leaves") from None
    return index, len(leaves), _path(index, leaves)


def verify_inclusion(receipt_hash: str | bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: recompute the root from the leaf and its audit path."""
    if not 0 <= index < tree_size:
        return False
    target = bytes.fromhex(receipt_hash) if isinstance(receipt_hash, str) else bytes(receipt_hash)
    fn, sn = index, tree_size - 1
    result = leaf_hash(target)
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root
