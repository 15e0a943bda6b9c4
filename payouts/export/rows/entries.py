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
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache

import orjson
from sqlalchemy import select
from sqlmodel import Session, col

from payouts.export.rows.columns import CURRENCY
from payouts.export.rows.notes import _label, _note, farmer_status, uptime_percent
from payouts.export.rows.proofs import ProofSource
from payouts.export.rows.query import ExportFilter, _statement, next_retry_period
from payouts.export.wording import EntryStatus
from payouts.ledger.kinds import PaymentKind, PayoutBasis
from payouts.ledger.models import (
    Approval,
    Run,
)
from payouts.ledger.outstanding import Chains, owed_units, retry_chains
from payouts.ledger.states import LIVE_RUN_STATUSES, TransactionStatus
from payouts.money import format_tft
from payouts.periods import Period


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
        "status": EntryStatus.CALCULATED,
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
    if retried_by is not None and status != EntryStatus.CORRECTED:
        status = EntryStatus.RETRIED  # a later run's retry carries it: where it stands is on the retry
    entry.update(
        {
            "amount_tft_units": row["amount_tft_units"],
            "amount_tft": format_tft(row["amount_tft_units"]),
            "payout_basis": row["payout_basis"],
            "payout_address": row["destination"],
            "receipt_hash": row["payment_receipt_hash"],
            "status": status,
            "hold_reason": row["hold_reason"] if status.shows_hold_reason else "",
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
