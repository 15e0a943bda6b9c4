"""Sweeping back: what a run's funding left in the hot payout account returns to the treasury.

Two-tier funding brings exactly the run's total into the payout account. Once the run is
reconciled, what it did not pay (held payments included: their retries are funded again by the
run that pays them) goes back to the treasury in one payment whose MEMO_HASH is the manifest's
SHA-256, so the hot account holds only what is in flight. TFT that comes back later (a claimable
balance nobody claimed, reclaimed after its window) is that run's leftover again and goes back
the same way, in another sweep with the same memo. The sweep is one of our transactions
(purpose `sweep`) under the same exactly-once rules as payments and funding: committed before it
is sent, looked up by hash on an unknown outcome, rebuilt only once it provably never lands,
and a sweep the chain has but the ledger lost (a restored ledger) is adopted, never repeated.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select
from stellar_sdk import FeeBumpTransactionEnvelope
from stellar_sdk.operation import Payment as PaymentOperation

from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import SETTLED_PAYMENT_STATUSES, RunStatus, TransactionStatus, transition
from payouts.ledger.transactions import record_transaction
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.money import format_tft
from payouts.runs.errors import RunsError
from payouts.runs.payment.common import PayConfig
from payouts.runs.payment.send_own import Sent, send_recorded
from payouts.stellar.build import PaymentOp, build_payment_envelope, envelope_units, parse_envelope
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys

SWEEP_PURPOSE = TransactionPurpose.SWEEP
FUNDING_PURPOSE = TransactionPurpose.FUNDING

#: runs whose funding is still needed in the payout account (paid out, held or in flight)
OPEN_STATUSES = (RunStatus.FUNDED, RunStatus.PAYING, RunStatus.PAID, RunStatus.STOPPED)
#: runs whose leftover funding is swept back
SWEPT_STATUSES = (RunStatus.RECONCILED, RunStatus.EXPORTED)


@dataclass(frozen=True)
class SweepResult:
    run_id: int
    #: swept | already swept | adopted | nothing to sweep | not funded | waiting | not reconciled
    #: (| rebuild, inside sweep_run only: the last sweep provably never landed)
    state: str
    amount_tft_units: int = 0
    tx_hash: str | None = None
    message: str = ""


def funding_received_units(session: Session, run_id: int) -> int:
    """TFT the run's confirmed funding transactions brought into the payout account."""
    return sum(
        envelope_amount_units(tx.envelope_xdr)
        for tx in session.exec(
            select(StellarTransaction).where(
                StellarTransaction.run_id == run_id,
                StellarTransaction.purpose == FUNDING_PURPOSE,
                StellarTransaction.status == TransactionStatus.CONFIRMED,
            )
        ).all()
    )


def swept_units(session: Session, run_id: int) -> int:
    """TFT the run's confirmed sweeps returned to the treasury."""
    return sum(
        envelope_amount_units(tx.envelope_xdr)
        for tx in session.exec(
            select(StellarTransaction).where(
                StellarTransaction.run_id == run_id,
                StellarTransaction.purpose == SWEEP_PURPOSE,
                StellarTransaction.status == TransactionStatus.CONFIRMED,
            )
        ).all()
    )


def paid_units(session: Session, run_id: int) -> int:
    """TFT the run's payments moved out of the payout account (a paid entry stays paid out
    when a later correction supersedes it)."""
    total = session.exec(
        select(func.coalesce(func.sum(Payment.amount_tft_units), 0)).where(
            Payment.run_id == run_id,
            col(Payment.paid_at).is_not(None),
            col(Payment.status).in_(sorted(SETTLED_PAYMENT_STATUSES)),
        )
    ).one()
    return int(total)


def envelope_amount_units(envelope_xdr: str) -> int:
    """The sum of the TFT payment operations of a recorded (or adopted) envelope."""
    envelope = parse_envelope(envelope_xdr, "")  # the passphrase matters for hashes only
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        envelope = envelope.transaction.inner_transaction_envelope
    return sum(envelope_units(op.amount) for op in envelope.transaction.operations if isinstance(op, PaymentOperation))


def leftover_units(session: Session, run_id: int) -> int:
    """What the run's funding left in the payout account and has not been swept back."""
    return funding_received_units(session, run_id) - paid_units(session, run_id) - swept_units(session, run_id)


@dataclass(frozen=True)
class Surplus:
    balance_units: int
    needed_units: int

    @property
    def surplus_units(self) -> int:
        return max(self.balance_units - self.needed_units, 0)

    def describe(self) -> str:
        return (
            f"the payout account holds {format_tft(self.surplus_units)} TFT that no open run needs "
            f"(balance {format_tft(self.balance_units)} TFT, open runs need {format_tft(self.needed_units)} TFT); "
            "a reconciled run's leftover goes back with `payouts reconcile --period P`, anything else "
            "by a transfer an operator signs"
        )


def payout_surplus(session: Session, balance_units: int) -> Surplus:
    """The payout account's TFT against what open two-tier runs still need from it."""
    needed = 0
    for run_id in session.exec(select(Run.id).where(col(Run.status).in_(list(OPEN_STATUSES)))).all():
        assert run_id is not None
        needed += max(leftover_units(session, run_id), 0)
    return Surplus(balance_units, needed)


def _manifest_hex(session: Session, run_id: int) -> str | None:
    """The manifest hash the run was funded under (the funding memo)."""
    return session.exec(
        select(StellarTransaction.memo_hash).where(
            StellarTransaction.run_id == run_id,
            StellarTransaction.purpose == FUNDING_PURPOSE,
            StellarTransaction.status == TransactionStatus.CONFIRMED,
        )
    ).first()


def find_on_chain(
    client: HorizonClient,
    *,
    account: str,
    source: str,
    destination: str,
    memo_hex: str,
    asset_code: str,
    asset_issuer: str,
) -> list[dict]:
    """Successful TFT payments source -> destination carrying the memo, from `account`'s
    payment history (joined with their transactions)."""
    found = []
    seen: set[str] = set()
    for record in client.payments(account):
        if record.get("type") != "payment" or not record.get("transaction_successful", True):
            continue
        if (record.get("from"), record.get("to")) != (source, destination):
            continue
        if (record.get("asset_code"), record.get("asset_issuer")) != (asset_code, asset_issuer):
            continue
        transaction = record.get("transaction") or {}
        memo = transaction.get("memo")
        if not memo or base64.b64decode(memo).hex() != memo_hex:
            continue
        if record["transaction_hash"] in seen:
            continue
        seen.add(record["transaction_hash"])
        found.append(record)
    return found


def adopt_chain_transaction(
    session: Session, run_id: int, purpose: str, record: dict, memo_hex: str, event: str
) -> StellarTransaction:
    """Record a transaction of ours the chain has and the ledger lost, as confirmed."""
    transaction = record.get("transaction") or {}
    envelope_xdr = transaction.get("envelope_xdr") or record.get("envelope_xdr")
    if not envelope_xdr:
        # the amount and the memo are read from the signed envelope; a record without one cannot
        # be recorded as ours, and guessing would book TFT the chain may not show
        raise RunsError(
            f"run {run_id}: the chain has {purpose} transaction {record.get('transaction_hash', '?')} of ours, "
            "but Horizon served it without its envelope; point PAYOUTS_HORIZON_URL at a Horizon that "
            "serves transaction envelopes and run the command again (nothing was recorded)"
        )
    bounds = (transaction.get("preconditions") or {}).get("timebounds") or {}
    return record_transaction(
        session,
        run_id=run_id,
        purpose=purpose,
        source_account=transaction.get("source_account", record.get("from", "")),
        sequence=int(transaction.get("source_account_sequence", 0)),
        envelope_xdr=envelope_xdr,
        tx_hash=record["transaction_hash"],
        fee_stroops=int(transaction.get("max_fee") or transaction.get("fee_charged") or 0),
        memo_hash=memo_hex,
        min_time=int(bounds.get("min_time") or 0),
        max_time=int(bounds.get("max_time") or 0),
        ledger=int(transaction["ledger"]) if transaction.get("ledger") is not None else None,
        status=TransactionStatus.CONFIRMED,
        event=event,
        detail={"amount": record.get("amount")},
    )


#: a sweep that provably never landed (expired before inclusion) is rebuilt this often per call
SWEEP_ATTEMPTS = 5


def sweep_run(
    units: UnitOfWorkFactory,
    run_id: int,
    client: HorizonClient,
    keys: SigningKeys,
    config: PayConfig,
    *,
    treasury: str,
) -> SweepResult:
    """Return the reconciled run's leftover funding to the treasury, exactly once.

    A sweep that provably never landed is built again (after the chain is searched once more
    for one that did), up to SWEEP_ATTEMPTS times; anything still open waits for the next call."""
    result = _sweep_once(units, run_id, client, keys, config, treasury=treasury)
    for _ in range(SWEEP_ATTEMPTS - 1):
        if result.state != "rebuild":
            return result
        result = _sweep_once(units, run_id, client, keys, config, treasury=treasury)
    return result if result.state != "rebuild" else SweepResult(**{**result.__dict__, "state": "waiting"})


def _sweep_once(
    units: UnitOfWorkFactory,
    run_id: int,
    client: HorizonClient,
    keys: SigningKeys,
    config: PayConfig,
    *,
    treasury: str,
) -> SweepResult:
    payout = keys.payout_account
    with units() as uow:
        session = uow.session
        run = session.get(Run, run_id)
        if run is None:
            return SweepResult(run_id, "not funded", message=f"run {run_id} does not exist")
        memo_hex = _manifest_hex(session, run_id)
        if memo_hex is None:
            return SweepResult(run_id, "not funded", message=f"run {run_id} was not funded by the treasury")
        if RunStatus(run.status) not in SWEPT_STATUSES:
            return SweepResult(run_id, "not reconciled", message=f"run {run_id} is {run.status}; swept once reconciled")
        sweeps = session.exec(
            select(StellarTransaction)
            .where(StellarTransaction.run_id == run_id, StellarTransaction.purpose == SWEEP_PURPOSE)
            .order_by(col(StellarTransaction.id))
        ).all()
        done = [tx for tx in sweeps if tx.status == TransactionStatus.CONFIRMED]
        live = next((tx for tx in sweeps if TransactionStatus(tx.status).is_live), None)
        if live is None:
            # TFT a reclaimed claimable balance brought back makes a swept run's leftover again
            amount = leftover_units(session, run_id)
            if done and amount <= 0:
                swept = swept_units(session, run_id)
                return SweepResult(
                    run_id,
                    "already swept",
                    swept,
                    done[-1].tx_hash,
                    f"run {run_id}: swept already ({format_tft(swept)} TFT in {', '.join(tx.tx_hash for tx in done)})",
                )
            # a sweep the chain has but the ledger lost (a restored ledger) is adopted, never repeated
            known = {tx.tx_hash for tx in sweeps}
            landed = [
                record
                for record in find_on_chain(
                    client,
                    account=payout,
                    source=payout,
                    destination=treasury,
                    memo_hex=memo_hex,
                    asset_code=config.asset_code,
                    asset_issuer=config.asset_issuer,
                )
                if record["transaction_hash"] not in known
            ]
            if landed:
                adopted = [
                    adopt_chain_transaction(session, run_id, SWEEP_PURPOSE, record, memo_hex, "sweep.adopted")
                    for record in landed
                ]
                amount = sum(envelope_amount_units(tx.envelope_xdr) for tx in adopted)
                return SweepResult(
                    run_id,
                    "adopted",
                    amount,
                    adopted[0].tx_hash,
                    f"run {run_id}: the chain has its sweep ({format_tft(amount)} TFT in "
                    f"{', '.join(tx.tx_hash for tx in adopted)}) the ledger lacked; recorded, nothing sent",
                )
            if amount <= 0:
                return SweepResult(run_id, "nothing to sweep", 0, None, f"run {run_id}: its funding was all paid out")
            account = client.account(payout)
            line = account.trustline(config.asset_code, config.asset_issuer) if account is not None else None
            balance = line.balance_units if line is not None else 0
            if account is None or balance < amount:
                return SweepResult(
                    run_id,
                    "waiting",
                    amount,
                    None,
                    f"run {run_id}: {format_tft(amount)} TFT to sweep back, but the payout account holds "
                    f"{format_tft(balance)} TFT: find where it went before anything else moves",
                )
            live = _build(session, run, client, keys, config, treasury, account.sequence + 1, amount, memo_hex)
        if live.status == TransactionStatus.BUILT:
            transition(
                session,
                StellarTransaction,
                id_of(live),
                TransactionStatus.BUILT,
                TransactionStatus.SUBMITTED,
                event="sweep.submitted",
                run_id=run_id,
            )
            uow.commit_before_submit()
        return _submit(session, client, live, config)


def _build(
    session: Session,
    run: Run,
    client: HorizonClient,
    keys: SigningKeys,
    config: PayConfig,
    treasury: str,
    sequence: int,
    amount: int,
    memo_hex: str,
) -> StellarTransaction:
    latest = client.latest_ledger()
    # the network's clock, not this machine's (a sweep after a reclaim comes a window later)
    max_time = int(latest.closed_at.timestamp()) + config.tx_timeout_s
    max_ledger = latest.sequence + max(2, math.ceil(config.tx_timeout_s / config.ledger_close_s))
    envelope = build_payment_envelope(
        network_passphrase=config.network_passphrase,
        source_account=keys.payout_account,
        sequence=sequence,
        payout_account=keys.payout_account,
        asset_code=config.asset_code,
        asset_issuer=config.asset_issuer,
        operations=[PaymentOp(treasury, amount)],
        memo_hash=bytes.fromhex(memo_hex),
        fee_per_operation_stroops=config.base_fee_stroops,
        min_time=0,
        max_time=max_time,
        max_ledger=max_ledger,
    )
    keys.sign(envelope)
    return record_transaction(
        session,
        run_id=id_of(run),
        purpose=SWEEP_PURPOSE,
        source_account=keys.payout_account,
        sequence=sequence,
        envelope_xdr=envelope.to_xdr(),
        tx_hash=envelope.hash_hex(),
        fee_stroops=config.base_fee_stroops,
        memo_hash=memo_hex,
        max_time=max_time,
        built_ledger=latest.sequence,
        max_ledger=max_ledger,
        event="sweep.built",
        detail={"amount_tft_units": amount, "to": treasury},
    )


def _submit(session: Session, client: HorizonClient, tx: StellarTransaction, config: PayConfig) -> SweepResult:
    """Send the recorded bytes once; what the chain answers decides (never "failed" on doubt)."""
    run_id = tx.run_id
    amount = envelope_amount_units(tx.envelope_xdr)
    sent = send_recorded(session, client, tx, config, event_prefix="sweep")
    result, answer = sent.result, sent.answer
    if sent.state is Sent.FAILED:
        return SweepResult(
            run_id,
            "rebuild",
            amount,
            tx.tx_hash,
            f"run {run_id}: the sweep {tx.tx_hash} did not land ({result.result_codes or result.reason}); "
            "reconcile again to build a new one",
        )
    if sent.state is Sent.WAITING:
        why = (answer.reason if answer is not None else "") or result.reason
        return SweepResult(
            run_id,
            "waiting",
            amount,
            tx.tx_hash,
            f"run {run_id}: the sweep {tx.tx_hash} may still land ({why}); reconcile again to look it up",
        )
    return SweepResult(
        run_id,
        "swept",
        amount,
        tx.tx_hash,
        f"run {run_id}: {format_tft(amount)} TFT its funding left in the payout account went back to the "
        f"treasury ({tx.tx_hash})",
    )
