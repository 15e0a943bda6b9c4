"""Sending one of our own recorded transactions that is not a payment batch (a reclaim, a
sweep) until the chain decides it: the identical bytes only, looked up by hash on anything but
success, given up only on proof (SPEC 5, rules 4 and 5). The caller committed it as
`submitted` before the first byte went out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session

from payouts.ledger.models import StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import TransactionStatus, transition
from payouts.runs.payment.common import PayConfig
from payouts.runs.payment.resolve import ChainAnswer, chain_outcome
from payouts.stellar.horizon import HorizonClient, Outcome, SubmitResult
from payouts.stellar.submit import Verdict


class Sent(StrEnum):
    LANDED = "landed"  # confirmed on chain
    FAILED = "failed"  # provably never lands (failed, or expired before inclusion)
    WAITING = "waiting"  # may still land: look it up again later


@dataclass(frozen=True)
class SendOutcome:
    state: Sent
    #: the last submission's answer, and the chain's when it was asked
    result: SubmitResult
    answer: ChainAnswer | None = None


def send_recorded(
    session: Session, client: HorizonClient, tx: StellarTransaction, config: PayConfig, *, event_prefix: str
) -> SendOutcome:
    """Send the recorded bytes and record what the chain decides (`<event_prefix>.confirmed`,
    `<event_prefix>.not_landed`); waits while it may still land, up to twice the timeout."""
    deadline = time.monotonic() + 2 * config.tx_timeout_s
    result = client.submit(tx.envelope_xdr)
    answer: ChainAnswer | None = None
    while True:
        if result.outcome == Outcome.SUCCESS:
            ledger, closed_at = result.ledger, result.closed_at
            break
        answer = chain_outcome(session, client, tx)
        if answer.verdict is Verdict.LANDED and answer.info is not None:
            ledger, closed_at = answer.info.ledger, answer.info.closed_at
            break
        if answer.verdict in (Verdict.FAILED, Verdict.NEVER):
            transition(
                session,
                StellarTransaction,
                id_of(tx),
                TransactionStatus.SUBMITTED,
                TransactionStatus.FAILED if answer.verdict is Verdict.FAILED else TransactionStatus.DEAD,
                event=f"{event_prefix}.not_landed",
                run_id=tx.run_id,
                detail={"result_codes": result.result_codes},
            )
            return SendOutcome(Sent.FAILED, result, answer)
        if answer.verdict is Verdict.FOREIGN or time.monotonic() > deadline:
            return SendOutcome(Sent.WAITING, result, answer)
        time.sleep(config.poll_interval_s)
        result = client.submit(tx.envelope_xdr)  # the identical bytes only
    transition(
        session,
        StellarTransaction,
        id_of(tx),
        TransactionStatus.SUBMITTED,
        TransactionStatus.CONFIRMED,
        event=f"{event_prefix}.confirmed",
        run_id=tx.run_id,
        ledger=ledger,
        closed_at=closed_at,
    )
    return SendOutcome(Sent.LANDED, result, answer)
