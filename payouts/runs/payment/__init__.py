"""Paying an approved run (SPEC 5), one module per job: the gate before signing (gate), the
ledger reads (queries), building transactions (build), resolving their outcomes (resolve) and the
loop that drives them (engine)."""

from payouts.runs.payment.claim import ClaimLost
from payouts.runs.payment.common import (
    LeaseLost,
    LedgerMoved,
    PayConfig,
    PayReport,
    RunAlreadyPaid,
    RunBusy,
    RunNotPayable,
    RunStopped,
)
from payouts.runs.payment.engine import PaymentEngine

__all__ = [
    "ClaimLost",
    "LeaseLost",
    "LedgerMoved",
    "PayConfig",
    "PayReport",
    "PaymentEngine",
    "RunAlreadyPaid",
    "RunBusy",
    "RunNotPayable",
    "RunStopped",
]
