"""The farmer export's rows (SPEC section 7): one entry per receipt, retry and correction.

Entries are read with one streaming query (`yield_per`: a server-side cursor on PostgreSQL, a
stepped cursor on SQLite) and turned into flat dicts one at a time, so memory does not grow with
the number of rows. Amounts stay integers until `format_tft` writes them at this edge; times are
ISO 8601 in UTC.

Which entries: every receipt of a live run (replaced and rejected runs are left out), each with
the payment that pays it, and after it the retries and corrections of that receipt as entries of
their own (a retry is paid by a later period's run; the entry keeps the period the reward was
earned in and names the paying run). A receipt that never became a payment (a zero reward) is
still an entry: the farmer sees why it is zero.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from payouts.export.wording import claimable_note, not_paid_waiting
from payouts.ledger.kinds import PaymentKind, PayoutBasis
from payouts.ledger.models import (
    Approval,
    FarmSignon,
    NodeTransition,
    Payment,
    Receipt,
    Run,
    StellarTransaction,
)
from payouts.ledger.outstanding import Chains, RetriedBy, owed_units, retry_chains
from payouts.ledger.states import LIVE_RUN_STATUSES, PaymentStatus, RunStatus, TransactionStatus
from payouts.money import format_tft
from payouts.periods import Period
from payouts.stellar.merkle import leaf_hash, node_hash, sorted_leaves

CURRENCY = "TFT"

#: why a payment is held, in the farmer's words
HOLD_WORDS = {
    "no_address": "no payout address set on the farm",
    "invalid_address": "the farm's payout address is not a valid Stellar address",
    "no_trustline": "the address has no TFT trustline",
    "no_account": "the payout address does not exist on Stellar (not funded)",
    "not_authorized": "the TFT trustline of the address is not authorized by the issuer",
    "line_full": "the TFT trustline of the address is full",
    "not_claimed": "a claimable balance sent to the address was not claimed in time and went back",
}
#: what the farmer does about it
HOLD_FIX = {
    "no_address": "set a valid Stellar payout address (G...) on the farm",
    "invalid_address": "set a valid Stellar payout address (G...) on the farm",
    "no_trustline": "add a TFT trustline to the payout address",
    "no_account": "create (fund) the payout account on Stellar and add a TFT trustline",
    "not_authorized": "ask the TFT issuer to authorize the trustline",
    "line_full": "raise the TFT trustline limit of the payout address",
    "not_claimed": "add a TFT trustline to the payout address; the next run pays it again",
}

#: run states in which a pending payment is approved but not sent yet
_APPROVED_RUN = {
    RunStatus.APPROVED,
    RunStatus.FUNDING,
    RunStatus.FUNDED,
    RunStatus.PAYING,
    RunStatus.STOPPED,
    RunStatus.PAID,
    RunStatus.RECONCILED,
    RunStatus.EXPORTED,
}

#: the export's columns, in order (the CSV header; JSON entries have the same keys)
FIELDS = (
    "period",
    "period_start",
    "period_end",
    "run_id",
    "run_status",
    "code_version",
    "entry_kind",
    "node_id",
    "farm_id",
    "farm_name",
    "twin_id",
    "node_type",
    "farming_policy_id",
    "cu_pm",
    "su_pm",
    "nu_pm",
    "cru",
    "mru_gib",
    "sru_gib",
    "hru_gib",
    "measured_uptime_s",
    "uptime_percent",
    "eligibility",
    "violation",
    "reason",
    "reward_musd",
    "reward_tft_units",
    "reward_tft",
    "amount_tft_units",
    "amount_tft",
    "owed_tft_units",
    "currency",
    "reference_price_musd",
    "payout_basis",
    "payout_address",
    "receipt_hash",
    "status",
    "hold_reason",
    "status_note",
    "what_to_fix",
    "next_retry_period",
    "stellar_tx_hash",
    "stellar_ledger",
    "paid_at",
    "paying_run_id",
    "paying_period",
    "retried_by_run_id",
    "retried_by_period",
    "retry_of",
    "correction_of",
    "in_manifest",
    "memo",
    "merkle_leaf_index",
    "merkle_tree_size",
    "merkle_proof",
    "v3_opted_out_at",
    "v4_account",
    "farm_contact_confirmed_at",
    "farm_sla_accepted_at",
)

#: the farmer CSV's default columns (`payouts export --columns farmer`, the site's CSV download)
FARMER_FIELDS = (
    "period",
    "entry_kind",
    "node_id",
    "farm_id",
    "farm_name",
    "uptime_percent",
    "eligibility",
    "reward_tft",
    "amount_tft",
    "status",
    "status_note",
    "what_to_fix",
    "payout_address",
    "stellar_tx_hash",
    "paid_at",
    "receipt_hash",
)


@dataclass(frozen=True)
class ExportFilter:
    """What a farmer searches by; every given criterion must match."""

    period_offset: int | None = None
    farm_id: int | None = None
    node_id: int | None = None
    addresses: tuple[str, ...] = ()
    #: a receipt hash, a retry or correction receipt hash, or a batch memo (Merkle root)
    receipt_hash: str | None = None

    def document(self) -> dict:
        return {
            "period": Period(self.period_offset).label if self.period_offset is not None else None,
            "farm_id": self.farm_id,
            "node_id": self.node_id,
            "addresses": list(self.addresses),
            "receipt_hash": self.receipt_hash,
        }


@lru_cache(maxsize=256)  # rows of one transaction or period share their times
def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (the ledger stores aware UTC times)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=1024)
def _ts_iso(ts: int) -> str:
    # iso_utc of a time that is never None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def uptime_percent(permille: int) -> str:
    """994 -> "99.4" (from the integer permille, no float)."""
    return f"{permille // 10}.{permille % 10}"


def farmer_status(
    payment_status: str | None, run_status: str, *, corrected: bool, kind: str | None, in_manifest: bool
) -> str:
    """The SPEC 7 word for an entry, from its payment's and run's states.

    A correction entry does not change the corrected payment's row (history is never edited,
    and reconciliation matches paid rows with the chain); the original reads "corrected".
    """
    if corrected:
        return "corrected"
    if payment_status is None:
        return "calculated"  # no payment: nothing to pay for this receipt
    status = PaymentStatus(payment_status)
    if status is PaymentStatus.PENDING:
        if kind == PaymentKind.CORRECTION and not in_manifest:
            return "calculated"  # recorded, joins the manifest of the next run
        return "approved" if RunStatus(run_status) in _APPROVED_RUN else "calculated"
    return status.value


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


def next_retry_period(session: Session) -> str:
    """The period whose run retries what is held now: the one after the newest live run."""
    newest = session.execute(
        select(func.max(col(Run.period_offset))).where(col(Run.status).in_(LIVE_RUN_STATUSES))
    ).scalar()
    return Period(newest + 1).label if newest is not None else ""


def periods_of_run_entries(session: Session, run_id: int) -> list[int]:
    """The periods whose export entries a run's payments belong to: its own, and the periods
    the receipts it retries or corrects were earned in (their entries change when it pays)."""
    receipt_run = aliased(Run, name="receipt_run")
    offsets = session.execute(
        select(col(receipt_run.period_offset))
        .select_from(Payment)
        .join(Receipt, col(Receipt.id) == col(Payment.receipt_id))
        .join(receipt_run, col(receipt_run.id) == col(Receipt.run_id))
        .where(col(Payment.run_id) == run_id)
        .distinct()
    ).scalars()
    return sorted(set(offsets))


def _statement(filters: ExportFilter, order: str):
    receipt_run = aliased(Run, name="receipt_run")
    paying_run = aliased(Run, name="paying_run")
    retried = aliased(Payment, name="retried")
    corrected = aliased(Payment, name="corrected")
    correction = aliased(Payment, name="correction")
    correction_run = aliased(Run, name="correction_run")
    has_correction = exists(
        select(col(correction.id))
        .join(correction_run, col(correction_run.id) == col(correction.run_id))
        .where(
            col(correction.correction_of_payment_id) == col(Payment.id),
            col(correction.kind) == PaymentKind.CORRECTION,
            col(correction_run.status).in_(LIVE_RUN_STATUSES),
        )
    )
    own_payment = aliased(Payment, name="own_payment")
    has_own_payment = exists(
        select(col(own_payment.id)).where(
            col(own_payment.receipt_id) == col(Receipt.id), col(own_payment.kind) == PaymentKind.RECEIPT
        )
    )
    columns = [
        col(receipt_run.period_offset),
        col(receipt_run.period_start_ts),
        col(receipt_run.period_end_ts),
        col(receipt_run.id).label("receipt_run_id"),
        col(receipt_run.status).label("receipt_run_status"),
        col(receipt_run.code_version),
        col(Receipt.id).label("receipt_id"),
        col(Receipt.node_id),
        col(Receipt.farm_id),
        col(Receipt.farm_name),
        col(Receipt.twin_id),
        col(Receipt.node_type),
        col(Receipt.farming_policy_id),
        col(Receipt.cu_pm),
        col(Receipt.su_pm),
        col(Receipt.nu_pm),
        col(Receipt.measured_uptime_s),
        col(Receipt.uptime_permille),
        col(Receipt.eligibility),
        col(Receipt.violation),
        col(Receipt.reason),
        col(Receipt.reward_musd),
        col(Receipt.reward_tft_units),
        col(Receipt.stellar_payout_address),
        col(Receipt.receipt_hash),
        col(Receipt.receipt_bytes),
        col(Receipt.connection_price_musd),
        col(Payment.id).label("payment_id"),
        col(Payment.kind),
        col(Payment.receipt_hash).label("payment_receipt_hash"),
        col(Payment.receipt_bytes).label("payment_receipt_bytes"),
        col(Payment.destination),
        col(Payment.amount_tft_units),
        col(Payment.status).label("payment_status"),
        col(Payment.hold_reason),
        col(Payment.in_manifest),
        col(Payment.payout_basis),
        col(Payment.tx_hash),
        col(Payment.ledger),
        col(Payment.paid_at),
        col(Payment.claimable_until),
        col(paying_run.id).label("paying_run_id"),
        col(paying_run.period_offset).label("paying_period_offset"),
        col(paying_run.status).label("paying_run_status"),
        col(retried.receipt_hash).label("retry_of"),
        col(corrected.receipt_hash).label("correction_of"),
        has_correction.label("is_corrected"),
        has_own_payment.label("has_own_payment"),
        col(StellarTransaction.memo_hash),
        col(StellarTransaction.status).label("tx_status"),
        col(NodeTransition.v3_opted_out_at),
        col(NodeTransition.v4_account),
        col(FarmSignon.contact_confirmed_at),
        col(FarmSignon.sla_accepted_at),
    ]
    statement = (
        select(*columns)
        .select_from(Receipt)
        .join(receipt_run, col(receipt_run.id) == col(Receipt.run_id))
        .outerjoin(Payment, col(Payment.receipt_id) == col(Receipt.id))
        .outerjoin(paying_run, col(paying_run.id) == col(Payment.run_id))
        .outerjoin(retried, col(retried.id) == col(Payment.retry_of_payment_id))
        .outerjoin(corrected, col(corrected.id) == col(Payment.correction_of_payment_id))
        .outerjoin(StellarTransaction, col(StellarTransaction.tx_hash) == col(Payment.tx_hash))
        .outerjoin(NodeTransition, col(NodeTransition.node_id) == col(Receipt.node_id))
        .outerjoin(FarmSignon, col(FarmSignon.farm_id) == col(Receipt.farm_id))
        .where(
            col(receipt_run.status).in_(LIVE_RUN_STATUSES),
            # a retry or correction in a replaced or rejected run never happened
            or_(col(Payment.id).is_(None), col(paying_run.status).in_(LIVE_RUN_STATUSES)),
        )
    )
    if filters.period_offset is not None:
        statement = statement.where(col(receipt_run.period_offset) == filters.period_offset)
    if filters.farm_id is not None:
        statement = statement.where(col(Receipt.farm_id) == filters.farm_id)
    if filters.node_id is not None:
        statement = statement.where(col(Receipt.node_id) == filters.node_id)
    if filters.addresses:
        addresses = list(filters.addresses)
        statement = statement.where(
            or_(col(Receipt.stellar_payout_address).in_(addresses), col(Payment.destination).in_(addresses))
        )
    if filters.receipt_hash is not None:
        wanted = filters.receipt_hash.lower()
        statement = statement.where(
            or_(
                col(Receipt.receipt_hash) == wanted,
                col(Payment.receipt_hash) == wanted,
                col(StellarTransaction.memo_hash) == wanted,
                col(retried.receipt_hash) == wanted,
                col(corrected.receipt_hash) == wanted,
            )
        )
    keys: tuple[Any, ...]
    if order == "farm":  # the static site groups by farm, then node
        keys = (col(Receipt.farm_id), col(Receipt.node_id), col(receipt_run.period_offset))
    else:
        keys = (col(receipt_run.period_offset), col(Receipt.node_id))
    return statement.order_by(*keys, col(Receipt.id), col(Payment.id))


def iter_entries(
    session: Session,
    filters: ExportFilter = ExportFilter(),
    *,
    order: str = "period",
    batch_size: int = 1000,
) -> Iterator[dict]:
    """Export entries in order (by period then node, or `order="farm"`), streamed."""
    proofs = ProofSource(session)
    retry_label = next_retry_period(session)
    chains = retry_chains(session)
    result = session.execute(
        _statement(filters, order), execution_options={"yield_per": batch_size, "stream_results": True}
    )
    previous_receipt_id = None
    try:
        for result_row in result:
            row = result_row._asdict()  # dict lookups: Row attribute access costs more than the rest
            first_of_receipt = row["receipt_id"] != previous_receipt_id
            previous_receipt_id = row["receipt_id"]
            if first_of_receipt and row["payment_id"] is not None and not row["has_own_payment"]:
                # a receipt without a payment of its own, corrected later: show both
                yield _entry(row, proofs, retry_label, chains, own=True)
            yield _entry(row, proofs, retry_label, chains, own=row["payment_id"] is None)
    finally:
        result.close()


#: the receipt's own text of its resource units (canonical bytes: fixed key order, ryu floats)
_RESOURCE_UNITS = re.compile(
    rb'"resource_units":\{"cru":([-0-9.e]+),"mru":([-0-9.e]+),"hru":([-0-9.e]+),"sru":([-0-9.e]+)\}'
)


def _resource_units(receipt_bytes: bytes) -> dict:
    """cru (count) and mru/sru/hru (GiB) exactly as the receipt writes them; read from the bytes
    rather than parsed and re-formatted, which costs more than the rest of the row."""
    match = _RESOURCE_UNITS.search(receipt_bytes)
    if match is None:
        return {"cru": None, "mru_gib": None, "sru_gib": None, "hru_gib": None}
    cru, mru, hru, sru = (value.decode() for value in match.groups())
    return {"cru": cru, "mru_gib": mru, "sru_gib": sru, "hru_gib": hru}


@lru_cache(maxsize=1024)
def _label(period_offset: int) -> str:
    return Period(period_offset).label


def _entry(row, proofs: ProofSource, retry_label: str, chains: Chains, *, own: bool) -> dict:
    """One flat entry. `own`: the receipt's own line with no payment (nothing to pay).

    `owed_tft_units` is what the entry adds to what is still owed (ledger/outstanding.py): an
    entry that a later run retries owes nothing itself, its chain's newest entry carries it."""
    entry = {
        "period": _label(row["period_offset"]),
        "period_start": _ts_iso(row["period_start_ts"]),
        "period_end": _ts_iso(row["period_end_ts"]),
        "run_id": row["receipt_run_id"],
        "run_status": row["receipt_run_status"],
        "code_version": row["code_version"],
        "entry_kind": PaymentKind.RECEIPT if own else row["kind"],
        "node_id": row["node_id"],
        "farm_id": row["farm_id"],
        "farm_name": row["farm_name"],
        "twin_id": row["twin_id"],
        "node_type": row["node_type"],
        "farming_policy_id": row["farming_policy_id"],
        "cu_pm": row["cu_pm"],
        "su_pm": row["su_pm"],
        "nu_pm": row["nu_pm"],
        **_resource_units(row["receipt_bytes"]),
        "measured_uptime_s": row["measured_uptime_s"],
        "uptime_percent": uptime_percent(row["uptime_permille"]),
        "eligibility": row["eligibility"],
        "violation": row["violation"],
        "reason": row["reason"],
        "reward_musd": row["reward_musd"],
        "reward_tft_units": row["reward_tft_units"],
        "reward_tft": format_tft(row["reward_tft_units"]),
        "amount_tft_units": 0,
        "amount_tft": format_tft(0),
        "owed_tft_units": 0,
        "currency": CURRENCY,
        # proof-of-capacity entries are priced at the node's connection price (mUSD per TFT)
        "reference_price_musd": row["connection_price_musd"],
        "payout_basis": PayoutBasis.POC_TREASURY,
        "payout_address": row["stellar_payout_address"],
        "receipt_hash": row["receipt_hash"],
        "status": "calculated",
        "hold_reason": "",
        "status_note": "",
        "what_to_fix": "",
        "next_retry_period": "",
        "stellar_tx_hash": None,
        "stellar_ledger": None,
        "paid_at": None,
        "paying_run_id": None,
        "paying_period": None,
        "retried_by_run_id": None,
        "retried_by_period": None,
        "retry_of": None,
        "correction_of": None,
        "in_manifest": False,
        "memo": None,
        "merkle_leaf_index": None,
        "merkle_tree_size": None,
        "merkle_proof": None,
        "v3_opted_out_at": iso_utc(row["v3_opted_out_at"]),
        "v4_account": row["v4_account"],
        "farm_contact_confirmed_at": iso_utc(row["contact_confirmed_at"]),
        "farm_sla_accepted_at": iso_utc(row["sla_accepted_at"]),
    }
    if own:
        words = row["reason"] or ("the reward is 0" if row["reward_tft_units"] == 0 else row["eligibility"])
        entry["status_note"] = f"nothing to pay: {words}"
        return entry

    status = farmer_status(
        row["payment_status"],
        row["paying_run_status"],
        corrected=bool(row["is_corrected"]),
        kind=row["kind"],
        in_manifest=bool(row["in_manifest"]),
    )
    retried_by = chains.retried_by.get(row["payment_id"])
    if retried_by is not None and status != "corrected":
        status = "retried"  # a later run's retry carries it: where it stands is on the retry
    entry.update(
        {
            "amount_tft_units": row["amount_tft_units"],
            "amount_tft": format_tft(row["amount_tft_units"]),
            "payout_basis": row["payout_basis"],
            "payout_address": row["destination"],
            "receipt_hash": row["payment_receipt_hash"],
            "status": status,
            "hold_reason": row["hold_reason"] if status in ("held", "failed", "retried") else "",
            "paying_run_id": row["paying_run_id"],
            "paying_period": _label(row["paying_period_offset"]),
            "owed_tft_units": owed_units(
                chains, row["payment_id"], row["payment_status"], row["amount_tft_units"], run_live=True
            ),
            "retried_by_run_id": retried_by.next_run_id if retried_by else None,
            "retried_by_period": _label(retried_by.next_period_offset) if retried_by else None,
            "retry_of": row["retry_of"],
            "correction_of": row["correction_of"] if row["kind"] == PaymentKind.CORRECTION else None,
            "in_manifest": bool(row["in_manifest"]),
        }
    )
    if row["kind"] == PaymentKind.CORRECTION and entry["correction_of"] is None:
        entry["correction_of"] = row["receipt_hash"]  # corrects a receipt that had no payment
    if row["tx_hash"] is not None and row["paid_at"] is not None:
        entry.update(
            {
                "stellar_tx_hash": row["tx_hash"],
                "stellar_ledger": row["ledger"],
                "paid_at": iso_utc(row["paid_at"]),
                "memo": row["memo_hash"],
            }
        )
        if (
            row["memo_hash"]
            and row["memo_hash"] != row["payment_receipt_hash"]
            and row["tx_status"] == TransactionStatus.CONFIRMED
        ):
            # batch memo mode: the memo is the Merkle root of the transaction's receipt hashes
            proof = proofs.proof(row["tx_hash"], row["payment_receipt_hash"])
            if proof is not None:
                entry["merkle_leaf_index"], entry["merkle_tree_size"], entry["merkle_proof"] = proof
    entry["status_note"], entry["what_to_fix"], entry["next_retry_period"] = _note(row, status, retry_label, retried_by)
    return entry


def _note(row, status: str, retry_label: str, retried_by: RetriedBy | None = None) -> tuple[str, str, str]:
    """What the status means for the farmer, what to fix, and when the next retry runs."""
    why = HOLD_WORDS.get(row["hold_reason"], row["hold_reason"])
    fix = HOLD_FIX.get(row["hold_reason"], "")
    if status == "claimable":
        return claimable_note(row["claimable_until"]), HOLD_FIX["no_trustline"] + " and claim the balance", ""
    if status == "paid":
        day = row["paid_at"].astimezone(UTC).date().isoformat()
        return f"paid on {day} (Stellar ledger {row['ledger']})", "", ""
    if status == "held":
        return (f"held: {why}; the next period's run ({retry_label}) retries it once that is fixed", fix, retry_label)
    if status == "failed":
        return (f"refused by the destination: {why}; a later run retries it once that is fixed", fix, retry_label)
    if status == "retried":
        held = f" ({why})" if why else ""
        if retried_by is None:
            return f"held{held}, then paid again by a retry in a later run (see the retry entry)", "", ""
        by = f"held{held}; retried by the {_label(retried_by.next_period_offset)} run"
        if retried_by.settled:
            return f"{by}; paid by the retry of the {_label(retried_by.newest_period_offset)} run", "", ""
        if retried_by.newest_status == PaymentStatus.CLAIMABLE:
            return f"{by}; the retry was sent as a claimable balance (see the retry entry)", "", ""
        return f"{by}; not paid yet (see the retry entry)", "", ""
    if status == "corrected":
        return "superseded by a correction entry (see the correction)", "", ""
    if status == "submitted":
        return "sent to Stellar; not paid yet: waiting for the ledger to confirm it", "", ""
    if row["kind"] == PaymentKind.CORRECTION and not row["in_manifest"]:
        reason = _correction_reason(row["payment_receipt_bytes"])
        return f"correction recorded ({reason}); not paid yet: it joins the next run", "", ""
    waits_for = RunStatus(row["paying_run_status"]).waits_for
    return not_paid_waiting(waits_for), "", ""


def _correction_reason(receipt_bytes: bytes | None) -> str:
    if not receipt_bytes:
        return ""
    try:
        return str(orjson.loads(receipt_bytes).get("reason", ""))
    except orjson.JSONDecodeError:
        return ""


def runs_document(session: Session, filters: ExportFilter = ExportFilter()) -> list[dict]:
    """Each live run with the manifest its approvers signed and their signatures.

    Anyone can check: SHA-256 of `manifest_json` (UTF-8) is `manifest_sha256`, each signature is
    the approver's ed25519 signature over that digest, and `receipts_merkle_root` is the RFC 6962
    root of the receipt hashes of the entries with `in_manifest` true.
    """
    statement = select(Run).where(col(Run.status).in_(LIVE_RUN_STATUSES)).order_by(col(Run.period_offset), col(Run.id))
    if filters.period_offset is not None:
        statement = statement.where(col(Run.period_offset) == filters.period_offset)
    runs = []
    for run in session.execute(statement).scalars():
        approvals = (
            session.execute(select(Approval).where(col(Approval.run_id) == run.id).order_by(col(Approval.id)))
            .scalars()
            .all()
        )
        # the manifest that gathered approvals last (an approval of an earlier state does not count)
        signed = approvals[-1] if approvals else None
        runs.append(
            {
                "run_id": run.id,
                "period": Period(run.period_offset).label,
                "period_offset": run.period_offset,
                "status": run.status,
                "code_version": run.code_version,
                "snapshot_sha256": run.snapshot_sha256,
                "total_tft_units": run.total_tft_units,
                "total_tft": format_tft(run.total_tft_units),
                "manifest": orjson.loads(signed.manifest_json) if signed else None,
                "manifest_json": signed.manifest_json if signed else None,
                "manifest_sha256": signed.manifest_sha256 if signed else None,
                "approvals": [
                    {
                        "approver_public_key": a.approver_public_key,
                        "signature_b64": a.signature_b64,
                        "manifest_sha256": a.manifest_sha256,
                        "approved_at": iso_utc(a.created_at),
                    }
                    for a in approvals
                    if signed and a.manifest_sha256 == signed.manifest_sha256
                ],
            }
        )
    return runs
