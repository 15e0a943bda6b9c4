"""A period's statement: what was owed, paid, held, funded and swept back, balanced to the unit.

Two identities, every term an integer (TFT units of 10^-7, fees in stroops):

    owed_in + new + retries + corrections - paid - held_out = 0
    funding_in - paid - swept_back - payout_change = 0

- owed carried in: what runs of earlier periods still owed at this period's start (every
  unpaid entry no run up to then had retried or corrected). `owed_in` is the part of it that
  this period's runs do not pay again (the rest comes back as this period's retries and
  corrections, whose own amounts are counted in `retries` and `corrections`; an entry of this
  period retried or corrected within it is subtracted the same way);
- new, retries, corrections: this period's payments by kind (live runs only);
- paid: this period's payments that landed;
- held_out (held carried forward): every entry unpaid at the period's end that no run up to
  the period's end retried or corrected: this period's unpaid entries and `owed_in`;
- funding_in / swept_back: the treasury's confirmed funding of this period's runs, and the
  confirmed sweeps of what it left (two-tier; zero in single tier);
- payout_change: the payout account's TFT balance change from this period's transactions, read
  from the chain's payment history (None when the chain was not read).

A retry paid twice, a retry whose amount differs from what it retries, or an entry both paid and
carried forward shows up as a difference: nothing is forced to balance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlmodel import Session, col, select
from stellar_sdk import FeeBumpTransactionEnvelope
from stellar_sdk.operation import Payment as PaymentOperation

from payouts.ledger.kinds import PaymentKind, TransactionPurpose
from payouts.ledger.models import Payment, Run, StellarTransaction, TransactionHash
from payouts.ledger.states import DEAD_RUN_STATUSES, PaymentStatus, TransactionStatus
from payouts.money import parse_tft
from payouts.periods import Period
from payouts.runs.sweep import funding_received_units, swept_units
from payouts.stellar.build import parse_envelope
from payouts.stellar.horizon import HorizonClient


@dataclass
class Statement:
    period: str
    period_offset: int
    run_ids: list[int]
    owed_carried_in_units: int = 0
    #: the entries this period's runs retried or corrected (carried in, or this period's own
    #: superseded within it): owed once, as the retry or correction that replaced them
    paid_again_units: int = 0
    new_units: int = 0
    retries_units: int = 0
    corrections_units: int = 0
    paid_units: int = 0
    held_out_units: int = 0
    funding_in_units: int = 0
    swept_back_units: int = 0
    payout_change_units: int | None = None
    fees_stroops: int | None = None
    #: this period's retries less the amounts of the entries they retry (must be 0)
    retries_mismatch_units: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def owed_in_units(self) -> int:
        return self.owed_carried_in_units - self.paid_again_units

    @property
    def owed_difference_units(self) -> int:
        return (
            self.owed_in_units
            + self.new_units
            + self.retries_units
            + self.corrections_units
            - self.paid_units
            - self.held_out_units
        )

    @property
    def tft_difference_units(self) -> int | None:
        if self.payout_change_units is None:
            return None
        return self.funding_in_units - self.paid_units - self.swept_back_units - self.payout_change_units

    @property
    def balances(self) -> bool:
        return (
            self.owed_difference_units == 0
            and self.tft_difference_units in (0, None)
            and self.retries_mismatch_units == 0
        )

    def document(self) -> dict:
        return asdict(self) | {
            "owed_in_units": self.owed_in_units,
            "owed_difference_units": self.owed_difference_units,
            "tft_difference_units": self.tft_difference_units,
            "balances": self.balances,
        }


def _unpaid(payment: Payment) -> bool:
    return payment.paid_at is None and payment.status != PaymentStatus.PAID


def period_statement(session: Session, period_offset: int, client: HorizonClient | None = None) -> Statement:
    """The statement of one period from the ledger (and the chain, when `client` is given)."""
    runs = session.exec(
        select(Run).where(Run.period_offset <= period_offset, col(Run.status).not_in(DEAD_RUN_STATUSES))
    ).all()
    period_of = {run.id: run.period_offset for run in runs}
    here = sorted(run_id for run_id, offset in period_of.items() if offset == period_offset and run_id is not None)
    statement = Statement(Period(period_offset).label, period_offset, here)
    payments = session.exec(select(Payment).where(col(Payment.run_id).in_(list(period_of)))).all()
    by_id = {payment.id: payment for payment in payments}
    # when each entry was retried, or (unpaid) corrected, by the earliest period that did it
    retried_at: dict[int, int] = {}
    superseded_at: dict[int, int] = {}
    for payment in payments:
        offset = period_of[payment.run_id]
        for earlier, retried in ((payment.retry_of_payment_id, True), (payment.correction_of_payment_id, False)):
            if earlier is None:
                continue
            if retried:
                retried_at[earlier] = min(retried_at.get(earlier, offset), offset)
            superseded_at[earlier] = min(superseded_at.get(earlier, offset), offset)
    for payment in payments:
        assert payment.id is not None
        offset = period_of[payment.run_id]
        unpaid = _unpaid(payment)
        gone_at = superseded_at.get(payment.id)
        if offset < period_offset:
            if unpaid and (gone_at is None or gone_at >= period_offset):
                statement.owed_carried_in_units += payment.amount_tft_units
                if gone_at is None or gone_at > period_offset:
                    statement.held_out_units += payment.amount_tft_units
            if gone_at == period_offset and (unpaid or retried_at.get(payment.id) == period_offset):
                # a retry of what is no longer owed (paid already) shows up as a difference
                statement.paid_again_units += payment.amount_tft_units
            continue
        if payment.kind == PaymentKind.RETRY:
            statement.retries_units += payment.amount_tft_units
            original = by_id.get(payment.retry_of_payment_id or -1)
            statement.retries_mismatch_units += payment.amount_tft_units - (
                original.amount_tft_units if original else 0
            )
        elif payment.kind == PaymentKind.CORRECTION:
            statement.corrections_units += payment.amount_tft_units
        else:
            statement.new_units += payment.amount_tft_units
        if not unpaid:
            statement.paid_units += payment.amount_tft_units
        elif gone_at is None or gone_at > period_offset:
            statement.held_out_units += payment.amount_tft_units
        if gone_at == period_offset and (unpaid or retried_at.get(payment.id) == period_offset):
            # retried or corrected within the period (an off-cycle run)
            statement.paid_again_units += payment.amount_tft_units
    for run_id in here:
        statement.funding_in_units += funding_received_units(session, run_id)
        statement.swept_back_units += swept_units(session, run_id)
    if client is not None:
        _read_chain(session, client, statement)
    return statement


def _read_chain(session: Session, client: HorizonClient, statement: Statement) -> None:
    """The payout account's TFT change and the XLM fees, from this period's landed transactions."""
    landed = session.exec(
        select(StellarTransaction).where(
            col(StellarTransaction.run_id).in_(statement.run_ids),
            StellarTransaction.status == TransactionStatus.CONFIRMED,
        )
    ).all()
    if not landed:
        statement.payout_change_units, statement.fees_stroops = 0, 0
        return
    hashes = {h for tx in landed for h in (tx.tx_hash, tx.fee_bump_hash) if h}
    ids = [tx.id for tx in landed]
    hashes |= set(session.exec(select(TransactionHash.tx_hash).where(col(TransactionHash.transaction_id).in_(ids))))
    # payments a chain scan adopted carry their chain hash without a transaction row of ours
    hashes |= {
        h
        for h in session.exec(
            select(Payment.tx_hash).where(col(Payment.run_id).in_(statement.run_ids), col(Payment.tx_hash).is_not(None))
        )
        if h
    }
    payout = _payout_account(landed[0])
    change = 0
    fees: dict[str, int] = {}
    seen: set[str] = set()
    for record in client.payments(payout):
        operation_id = str(record.get("id") or record.get("paging_token") or "")
        if operation_id in seen:
            continue
        seen.add(operation_id)
        tx_hash = record.get("transaction_hash")
        if tx_hash not in hashes or record.get("type") != "payment":
            continue
        if not record.get("transaction_successful", True):
            continue
        amount = parse_tft(record["amount"])
        if record.get("to") == payout:
            change += amount
        if record.get("from") == payout:
            change -= amount
        transaction = record.get("transaction") or {}
        if "fee_charged" in transaction:
            fees[tx_hash] = int(transaction["fee_charged"])
    change += _claimable_change(session, client, statement.run_ids, payout)
    statement.payout_change_units = change
    missing = [tx.tx_hash for tx in landed if not ({tx.tx_hash, tx.fee_bump_hash} & fees.keys())]
    for tx_hash in missing:  # a transaction whose payments did not carry the fee: ask for it
        lookup = client.lookup(tx_hash)
        if lookup.info is not None and lookup.info.fee_charged_stroops is not None:
            fees[tx_hash] = lookup.info.fee_charged_stroops
        else:
            statement.notes.append(f"fee of {tx_hash} unknown")
    statement.fees_stroops = sum(fees.values())


def _claimable_change(session: Session, client: HorizonClient, run_ids: list[int], payout: str) -> int:
    """What claimable balances moved: out when the period's payments created them, back in when
    the payout account took one back (Horizon's payment history lists neither)."""
    change = 0
    balance_ids = [
        b
        for b in session.exec(
            select(Payment.claimable_balance_id).where(
                col(Payment.run_id).in_(run_ids), col(Payment.claimable_balance_id).is_not(None)
            )
        )
        if b
    ]
    for balance_id in balance_ids:
        created = None
        for op in client.claimable_balance_operations(balance_id):
            if not op.get("transaction_successful", True):
                continue
            if op.get("type") == "create_claimable_balance" and op.get("source_account") == payout:
                created = parse_tft(op["amount"])
                change -= created
            elif op.get("type") == "claim_claimable_balance" and op.get("claimant") == payout and created is not None:
                change += created
    return change


def _payout_account(tx: StellarTransaction) -> str:
    """The payout account a transaction of ours moves TFT to or from: a funding pays it; a
    payment's operations (and a sweep) come from it."""
    envelope = parse_envelope(tx.envelope_xdr, "")  # the passphrase matters for hashes only
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        envelope = envelope.transaction.inner_transaction_envelope
    operation = envelope.transaction.operations[0]
    if tx.purpose == TransactionPurpose.FUNDING and isinstance(operation, PaymentOperation):
        return operation.destination.account_id
    if operation.source is not None:
        return operation.source.account_id
    return envelope.transaction.source.account_id
