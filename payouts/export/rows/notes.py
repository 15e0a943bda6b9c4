"""What an export entry's status means for the farmer, in the farmer's words (SPEC section 7)."""

from __future__ import annotations

from datetime import UTC
from functools import lru_cache

import orjson

from payouts.export.wording import EntryStatus, claimable_note, not_paid_waiting
from payouts.ledger.kinds import PaymentKind
from payouts.ledger.outstanding import RetriedBy
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.periods import Period

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


def uptime_percent(permille: int) -> str:
    """994 -> "99.4" (from the integer permille, no float)."""
    return f"{permille // 10}.{permille % 10}"


def farmer_status(
    payment_status: str | None, run_status: str, *, corrected: bool, kind: str | None, in_manifest: bool
) -> EntryStatus:
    """The SPEC 7 word for an entry, from its payment's and run's states.

    A correction entry does not change the corrected payment's row (history is never edited,
    and reconciliation matches paid rows with the chain); the original reads "corrected".
    """
    if corrected:
        return EntryStatus.CORRECTED
    if payment_status is None:
        return EntryStatus.CALCULATED  # no payment: nothing to pay for this receipt
    status = PaymentStatus(payment_status)
    if status is PaymentStatus.PENDING:
        if kind == PaymentKind.CORRECTION and not in_manifest:
            return EntryStatus.CALCULATED  # recorded, joins the manifest of the next run
        return EntryStatus.APPROVED if RunStatus(run_status) in _APPROVED_RUN else EntryStatus.CALCULATED
    return EntryStatus(status.value)


@lru_cache(maxsize=1024)
def _label(period_offset: int) -> str:
    return Period(period_offset).label


def _note(row, status: EntryStatus, retry_label: str, retried_by: RetriedBy | None = None) -> tuple[str, str, str]:
    """What the status means for the farmer, what to fix, and when the next retry runs."""
    why = HOLD_WORDS.get(row["hold_reason"], row["hold_reason"])
    fix = HOLD_FIX.get(row["hold_reason"], "")
    if status == EntryStatus.CLAIMABLE:
        return claimable_note(row["claimable_until"]), HOLD_FIX["no_trustline"] + " and claim the balance", ""
    if status == EntryStatus.PAID:
        day = row["paid_at"].astimezone(UTC).date().isoformat()
        return f"paid on {day} (Stellar ledger {row['ledger']})", "", ""
    if status == EntryStatus.HELD:
        return (f"held: {why}; the next period's run ({retry_label}) retries it once that is fixed", fix, retry_label)
    if status == EntryStatus.FAILED:
        return (f"refused by the destination: {why}; a later run retries it once that is fixed", fix, retry_label)
    if status == EntryStatus.RETRIED:
        held = f" ({why})" if why else ""
        if retried_by is None:
            return f"held{held}, then paid again by a retry in a later run (see the retry entry)", "", ""
        by = f"held{held}; retried by the {_label(retried_by.next_period_offset)} run"
        if retried_by.settled:
            return f"{by}; paid by the retry of the {_label(retried_by.newest_period_offset)} run", "", ""
        if retried_by.newest_status == PaymentStatus.CLAIMABLE:
            return f"{by}; the retry was sent as a claimable balance (see the retry entry)", "", ""
        return f"{by}; not paid yet (see the retry entry)", "", ""
    if status == EntryStatus.CORRECTED:
        return "superseded by a correction entry (see the correction)", "", ""
    if status == EntryStatus.SUBMITTED:
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
