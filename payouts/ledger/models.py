"""The payout ledger's tables (SQLModel). Amounts are integers with their unit in the name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, LargeBinary, MetaData, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from payouts.ledger.kinds import PaymentDelivery, PayoutBasis, RunKind, TransactionPurpose
from payouts.ledger.types import UtcDateTime, WideInteger, utcnow

# Constraint names fixed by convention so migrations are the same on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

_LIVE_RUN = "status NOT IN ('replaced', 'rejected')"
#: the period's own run; off-cycle runs of retries (kind `off_cycle`) share its period freely
_LIVE_MONTHLY_RUN = _LIVE_RUN + " AND kind = 'monthly'"
_OPEN_OFF_CYCLE_RUN = "kind = 'off_cycle' AND status NOT IN ('reconciled', 'exported', 'replaced', 'rejected')"


def _created() -> Column:
    return Column(UtcDateTime(), nullable=False, default=utcnow)


class Run(SQLModel, table=True):
    """One calculation of one period from one frozen snapshot, and its way to payment."""

    __tablename__ = "runs"
    __table_args__ = (
        # at most one live monthly run per period: a second calculation is a no-op or a replacement
        Index(
            "uq_runs_live_period",
            "period_offset",
            unique=True,
            sqlite_where=text(_LIVE_MONTHLY_RUN),
            postgresql_where=text(_LIVE_MONTHLY_RUN),
        ),
        # at most one off-cycle run open at a time: two could otherwise retry the same payments
        Index(
            "uq_runs_open_off_cycle",
            "kind",
            unique=True,
            sqlite_where=text(_OPEN_OFF_CYCLE_RUN),
            postgresql_where=text(_OPEN_OFF_CYCLE_RUN),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    period_offset: int = Field(index=True)
    period_start_ts: int = Field(sa_type=BigInteger)
    period_end_ts: int = Field(sa_type=BigInteger)
    network: str
    snapshot_sha256: str = Field(max_length=64, index=True)
    snapshot_name: str = ""
    code_version: str
    status: str = Field(max_length=20, index=True)
    total_musd: int = Field(sa_type=WideInteger)
    total_tft_units: int = Field(sa_type=WideInteger)
    #: what the run would pay now: positive rewards with a usable address
    payable_tft_units: int = Field(sa_type=WideInteger)
    node_count: int
    rewarded_node_count: int
    #: CalculationReport as JSON (counts, invalid records, quirks, dropped events, notes)
    report_json: str = Field(sa_column=Column(Text, nullable=False))
    replaces_run_id: int | None = Field(default=None, sa_column=Column(ForeignKey("runs.id")))
    status_reason: str = ""
    created_at: datetime = Field(sa_column=_created())
    updated_at: datetime = Field(sa_column=_created())
    #: the worker driving the run's payments, until `lease_expires_at` (renewed while it works)
    lease_owner: str | None = Field(default=None, max_length=120)
    lease_expires_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    #: "monthly" (a period's calculation) or "off_cycle" (outstanding retries paid between months)
    kind: str = Field(default=RunKind.MONTHLY, max_length=12, sa_column_kwargs={"server_default": "monthly"})
    #: a sandbox rehearsal: calculated before its period's inputs were complete, on purpose
    rehearsal: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    #: what the approvers accepted past the review's caps and bounds (JSON: reason and items),
    #: written before the first signature and part of the signed manifest; "" when nothing
    accepted_exceedances_json: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    #: the claimable-balance policy the approvers sign (JSON: what it covers and the reclaim
    #: window in seconds), written before the first signature and part of the manifest; "" when off
    claimable_policy_json: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class Receipt(SQLModel, table=True):
    """One node's minting-compatible receipt for one run, with its canonical bytes and hash."""

    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("run_id", "node_id"),
        Index("ix_receipts_farm_id_run_id", "farm_id", "run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    node_id: int = Field(index=True)
    farm_id: int
    twin_id: int
    farm_name: str
    farming_policy_id: int
    node_type: str = Field(max_length=10)
    measured_uptime_s: int = Field(sa_type=WideInteger)
    uptime_permille: int
    violation: str | None = None
    eligibility: str = Field(max_length=20, index=True)
    reason: str = ""
    reward_musd: int = Field(sa_type=WideInteger)
    reward_tft_units: int = Field(sa_type=WideInteger)
    stellar_payout_address: str
    cu_pm: int = Field(sa_type=WideInteger)
    su_pm: int = Field(sa_type=WideInteger)
    nu_pm: int = Field(sa_type=WideInteger)
    receipt_bytes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    receipt_hash: str = Field(max_length=64, index=True)
    #: the node's connection price (mUSD per TFT) the reward was converted at; null on rows
    #: written before revision 0005
    connection_price_musd: int | None = Field(default=None, sa_type=BigInteger, nullable=True)


class LedgerEvent(SQLModel, table=True):
    """Append-only history of every state change (database triggers refuse edits)."""

    __tablename__ = "event_history"

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(sa_column=_created())
    run_id: int | None = Field(default=None, index=True)
    entity: str = Field(max_length=32)
    entity_id: int | None = None
    event: str = Field(max_length=80)
    from_status: str | None = None
    to_status: str | None = None
    detail_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))


class Payment(SQLModel, table=True):
    """One transfer of TFT for one receipt (or a retry or correction of one), paid at most once.

    `idempotency_key` is unique: a payment exists once however often a run is calculated or
    its tasks are redelivered. At most one live transaction holds a payment at a time.
    """

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_status_run_id", "status", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    receipt_id: int | None = Field(default=None, foreign_key="receipts.id", index=True)
    #: a PaymentKind: "receipt", "retry" or "correction"
    kind: str = Field(max_length=12)
    idempotency_key: str = Field(max_length=160, unique=True)
    #: the hash of the receipt this payment pays (a retry pays its retry receipt): the memo
    receipt_hash: str = Field(max_length=64, index=True)
    #: canonical bytes of a retry or correction receipt (the original's are on `receipts`)
    receipt_bytes: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    retry_of_payment_id: int | None = Field(default=None, foreign_key="payments.id")
    farm_id: int = Field(index=True)
    node_id: int | None = None
    destination: str
    amount_tft_units: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16)
    hold_reason: str = ""
    #: covered by the run's manifest (payable when the run was calculated); a payment held at
    #: calculation is not, and a hold found later at preflight does not change the manifest
    in_manifest: bool
    payout_basis: str = Field(default=PayoutBasis.POC_TREASURY, max_length=20)
    #: the live transaction that holds this payment (at most one at a time)
    transaction_id: int | None = Field(default=None, foreign_key="stellar_transactions.id", index=True)
    tx_hash: str | None = Field(default=None, max_length=64, index=True)
    ledger: int | None = None
    paid_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    created_at: datetime = Field(sa_column=_created())
    updated_at: datetime = Field(sa_column=_created())
    #: a correction entry points at the payment it corrects (history is never edited)
    correction_of_payment_id: int | None = Field(default=None, foreign_key="payments.id", index=True)
    #: a PaymentDelivery: a plain payment, or a claimable balance for a destination without a
    #: TFT trustline (chosen at preflight under the run's signed policy)
    delivery: str = Field(
        default=PaymentDelivery.PAYMENT, max_length=20, sa_column_kwargs={"server_default": "payment"}
    )
    #: the balance the live or landed transaction creates (hex with its type prefix, as Horizon
    #: shows it): computed from the transaction's source account, sequence and operation index
    claimable_balance_id: str | None = Field(default=None, max_length=72, index=True)
    #: when the payout account may take the balance back (its creation ledger's close time plus
    #: the signed window): the farmer claims before then
    claimable_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))


class Approval(SQLModel, table=True):
    """An approver's ed25519 signature over the SHA-256 of a run's manifest bytes."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("run_id", "approver_public_key", "manifest_sha256"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    approver_public_key: str = Field(max_length=56)
    manifest_sha256: str = Field(max_length=64)
    manifest_json: str = Field(sa_column=Column(Text, nullable=False))
    signature_b64: str
    created_at: datetime = Field(sa_column=_created())


class Control(SQLModel, table=True):
    """Operator switches, e.g. `paused`: a global kill switch for new submissions."""

    __tablename__ = "controls"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=40)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    updated_at: datetime = Field(sa_column=_created())


class StellarTransaction(SQLModel, table=True):
    """One signed envelope. Its XDR, hash, sequence and bounds are committed before the first
    submission, so a crash at any point can be resumed by looking the hash up."""

    __tablename__ = "stellar_transactions"
    __table_args__ = (
        Index("ix_stellar_transactions_status_run_id", "status", "run_id"),
        Index("ix_stellar_transactions_source_account_sequence", "source_account", "sequence"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    #: "payment" (pays receipts) or "funding" (treasury -> payout account, two-tier mode)
    purpose: str = Field(
        default=TransactionPurpose.PAYMENT, max_length=10, sa_column_kwargs={"server_default": "payment"}
    )
    source_account: str = Field(max_length=56)  # channel (or payout) account paying the fee
    sequence: int = Field(sa_type=BigInteger)
    min_time: int = Field(sa_type=BigInteger)  # unix seconds
    max_time: int = Field(sa_type=BigInteger)
    #: the network's latest ledger when it was built: the history a "not found" must cover
    built_ledger: int | None = Field(default=None, sa_type=BigInteger)
    #: valid in ledgers below this only (CAP-21 ledger bounds); None on rows built before bounds
    max_ledger: int | None = Field(default=None, sa_type=BigInteger)
    fee_stroops: int = Field(sa_type=BigInteger)  # maximum fee bid of the whole transaction
    memo_hash: str = Field(max_length=64)
    envelope_xdr: str = Field(sa_column=Column(Text, nullable=False))
    tx_hash: str = Field(max_length=64, unique=True)
    #: the fee bump that wraps it when the network asked for a higher fee: the hash on chain
    fee_bump_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)
    status: str = Field(max_length=16)
    attempts: int = 0
    result_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    ledger: int | None = None
    closed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    created_at: datetime = Field(sa_column=_created())
    updated_at: datetime = Field(sa_column=_created())


class TransactionHash(SQLModel, table=True):
    """Every hash a transaction of ours has: its own (the inner hash under a fee bump) and each
    fee bump that ever wrapped it. A chain transaction is ours when its hash, or its inner
    transaction's hash, is here."""

    __tablename__ = "transaction_hashes"

    tx_hash: str = Field(primary_key=True, max_length=64)
    transaction_id: int = Field(foreign_key="stellar_transactions.id", index=True)
    #: "inner" (the transaction's own hash) or "fee_bump"
    kind: str = Field(max_length=10)
    created_at: datetime = Field(sa_column=_created())


class ChainCursor(SQLModel, table=True):
    """How far the chain scan has read an account's transactions (Horizon's paging token), so
    later scans are incremental."""

    __tablename__ = "chain_cursors"

    account_id: str = Field(primary_key=True, max_length=56)
    cursor: str = Field(max_length=40)
    updated_at: datetime = Field(sa_column=_created())


class NodeTransition(SQLModel, table=True):
    """A node's move from v3 to v4, for the revenue model: when it opted out of v3 minting and
    which v4 account it receives on (either unknown until recorded)."""

    __tablename__ = "node_transitions"

    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(unique=True)
    v3_opted_out_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    v4_account: str | None = None
    updated_at: datetime = Field(sa_column=_created())


class FarmSignon(SQLModel, table=True):
    """A farm's sign-on to the revenue model, imported from the operators' CSV file."""

    __tablename__ = "farm_signons"

    id: int | None = Field(default=None, primary_key=True)
    farm_id: int = Field(unique=True)
    contact_confirmed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    sla_accepted_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    updated_at: datetime = Field(sa_column=_created())


class LedgerIdentity(SQLModel, table=True):
    """The one row that names this ledger in every run manifest: a random id and the payout
    account its runs are paid from (recorded once; a manifest names both)."""

    __tablename__ = "ledger_identity"

    id: int | None = Field(default=None, primary_key=True)
    ledger_id: str = Field(max_length=36, unique=True)
    payout_account: str | None = Field(default=None, max_length=56)
    created_at: datetime = Field(sa_column=_created())
    #: which database file or cluster database holds this ledger (SQLite file identity, or
    #: PostgreSQL system identifier and database oid): a restored or copied ledger differs
    database_fingerprint: str | None = Field(default=None, max_length=200)


class RejectedManifest(SQLModel, table=True):
    """A manifest an operator rejected: it never counts again, whatever signs it."""

    __tablename__ = "rejected_manifests"

    manifest_sha256: str = Field(primary_key=True, max_length=64)
    run_id: int = Field(foreign_key="runs.id", index=True)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    rejected_at: datetime = Field(sa_column=_created())


class ApproverSet(SQLModel, table=True):
    """The approvers whose signatures count, and how many a run needs. The first set is
    recorded as configured; each later one only with the signatures of `threshold` members of
    the set before it (over the new set's canonical bytes)."""

    __tablename__ = "approver_sets"

    id: int | None = Field(default=None, primary_key=True)
    #: JSON list of G... keys, sorted
    approvers_json: str = Field(sa_column=Column(Text, nullable=False))
    threshold: int
    previous_id: int | None = Field(default=None, sa_column=Column(ForeignKey("approver_sets.id"), nullable=True))
    #: JSON {public key: base64 signature} by members of the previous set
    signatures_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, server_default="{}"))
    created_at: datetime = Field(sa_column=_created())


class PayerClaim(SQLModel, table=True):
    """A claim this ledger wrote on chain: the payout account's data entry for a period, whose
    value (a fresh nonce per pay session and the approved manifest's hash prefix) names the one
    payer of the period. Written by a transaction on the account's current sequence number."""

    __tablename__ = "payer_claims"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    data_name: str = Field(max_length=64)
    #: base64 of the entry's value, as Horizon shows it
    value_b64: str = Field(max_length=100, index=True)
    transaction_id: int | None = Field(default=None, foreign_key="stellar_transactions.id")
    #: "submitted", "landed" or "lost" (another claim took the sequence number)
    status: str = Field(max_length=16)
    ledger: int | None = Field(default=None, sa_type=BigInteger)
    closed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    created_at: datetime = Field(sa_column=_created())
