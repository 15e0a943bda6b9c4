"""Merkle inclusion proofs of the receipts a batch transaction pays."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlmodel import Session, col

from payouts.ledger.models import (
    Payment,
)
from payouts.stellar.merkle import leaf_hash, node_hash, sorted_leaves


@dataclass
class ProofSource:
    """Merkle inclusion proofs for batch transactions, a few transactions at a time.

    The proof of a receipt needs the receipt hashes of every payment in its transaction; those
    are read once per transaction and kept in a small LRU (rows of one transaction are mostly
    neighbours in the export's order), so memory stays flat however many rows are exported.
    """

    session: Session
    capacity: int = 64
    _trees: OrderedDict = field(default_factory=OrderedDict)

    def proof(self, tx_hash: str, receipt_hash: str) -> tuple[int, int, list[str]] | None:
        tree = self._trees.get(tx_hash)
        if tree is None:
            hashes = (
                self.session.execute(select(col(Payment.receipt_hash)).where(col(Payment.tx_hash) == tx_hash))
                .scalars()
                .all()
            )
            tree = self._build(hashes)
            self._trees[tx_hash] = tree
            if len(self._trees) > self.capacity:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(tx_hash)
        return tree.get(receipt_hash)

    @staticmethod
    def _build(hashes: Sequence[str]) -> dict[str, tuple[int, int, list[str]]]:
        return all_inclusion_proofs(hashes)


def all_inclusion_proofs(receipt_hashes: Sequence[str]) -> dict[str, tuple[int, int, list[str]]]:
    """Every leaf's (index, tree size, audit path) in one walk of the tree: the same proofs as
    `merkle.inclusion_proof`, which recomputes subtrees per leaf (n^2 hashes for a batch)."""
    leaves = sorted_leaves(sorted(set(receipt_hashes)))
    paths: list[list[bytes]] = [[] for _ in leaves]

    def subtree(low: int, high: int) -> bytes:
        count = high - low
        if count == 1:
            return leaf_hash(leaves[low])
        k = 1 << ((count - 1).bit_length() - 1)  # RFC 6962: largest power of two below count
        left, right = subtree(low, low + k), subtree(low + k, high)
        # deeper siblings were appended first: a path runs from the leaf up to the root
        for index in range(low, low + k):
            paths[index].append(right)
        for index in range(low + k, high):
            paths[index].append(left)
        return node_hash(left, right)

    if leaves:
        subtree(0, len(leaves))
    size = len(leaves)
    return {leaf.hex(): (index, size, [node.hex() for node in paths[index]]) for index, leaf in enumerate(leaves)}
