"""`payouts status`: one farmer's answer, per period, in plain words.

Built from the export's entries (the same words, the same states), reduced to what a farmer
asks: was my node eligible and why, how much, is it paid, when, in which transaction, and if it
is not paid, why and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlmodel import Session

from payouts.export.rows import HOLD_WORDS, ExportFilter, iter_entries
from payouts.export.wording import HOLD_REASON_STATUSES

STATUS_FIELDS = (
    "period",
    "entry_kind",
    "node_id",
    "farm_id",
    "farm_name",
    "uptime_percent",
    "eligible",
    "eligibility",
    "why",
    "reward_tft_units",
    "reward_tft",
    "amount_tft_units",
    "amount_tft",
    "owed_tft_units",
    "status",
    "note",
    "what_to_fix",
    "stellar_tx_hash",
    "paid_at",
    "payout_address",
    "receipt_hash",
    "retry_of",
    "retried_by_period",
    "correction_of",
    "memo",
    "merkle_leaf_index",
    "merkle_tree_size",
    "merkle_proof",
)


def _why(entry: dict) -> str:
    """The eligibility in words: the receipt's reason, or the hold's when it is held."""
    if entry["status"] in HOLD_REASON_STATUSES and entry["hold_reason"]:
        return HOLD_WORDS.get(entry["hold_reason"], entry["hold_reason"])
    if entry["reason"]:
        return entry["reason"]
    if entry["eligibility"] == "ok":
        return f"uptime {entry['uptime_percent']} %; eligible"
    return entry["eligibility"]


def status_rows(session: Session, filters: ExportFilter) -> Iterator[dict]:
    for entry in iter_entries(session, filters):
        yield {
            "period": entry["period"],
            "entry_kind": entry["entry_kind"],
            "node_id": entry["node_id"],
            "farm_id": entry["farm_id"],
            "farm_name": entry["farm_name"],
            "uptime_percent": entry["uptime_percent"],
            "eligible": entry["eligibility"] in ("ok", "no_address", "invalid_address")
            and entry["reward_tft_units"] > 0,
            "eligibility": entry["eligibility"],
            "why": _why(entry),
            "reward_tft_units": entry["reward_tft_units"],
            "reward_tft": entry["reward_tft"],
            "amount_tft_units": entry["amount_tft_units"],
            "amount_tft": entry["amount_tft"],
            "owed_tft_units": entry["owed_tft_units"],
            "status": entry["status"],
            "note": entry["status_note"],
            "what_to_fix": entry["what_to_fix"],
            "stellar_tx_hash": entry["stellar_tx_hash"],
            "paid_at": entry["paid_at"],
            "payout_address": entry["payout_address"],
            "receipt_hash": entry["receipt_hash"],
            "retry_of": entry["retry_of"],
            "retried_by_period": entry["retried_by_period"],
            "correction_of": entry["correction_of"],
            "memo": entry["memo"],
            "merkle_leaf_index": entry["merkle_leaf_index"],
            "merkle_tree_size": entry["merkle_tree_size"],
            "merkle_proof": entry["merkle_proof"],
        }
