"""The sandbox's ledger model: accounts, a transaction queue, and ledgers that close on a clock.

It follows stellar-core where the product can tell the difference:
- at submission a transaction is checked as core's `checkValid` does (sequence, signatures
  against the source's low threshold and each operation's threshold, time and ledger bounds,
  fee bid, fee balance, per-operation malformations); a rejected transaction never reaches a
  ledger and costs nothing;
- accepted transactions wait in a queue and are included in fee order, at most one per source
  account per ledger, up to the ledger's operation capacity; when demand exceeds capacity the
  ledger charges the lowest included bid (surge pricing) and a full queue turns away bids that
  do not beat the cheapest queued one (tx_insufficient_fee);
- an included transaction always pays its fee and consumes its sequence number, even when it
  fails at apply; every operation is applied and reported, and a failure rolls the whole
  transaction back (one result code per operation);
- an included transaction is found again by hash, so resubmitting the same bytes is harmless.

Amounts are integers of 10^-7 (stroops for XLM, units for credit assets) everywhere in here.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from stellar_sdk import (
    AllowTrust,
    Asset,
    ChangeTrust,
    CreateAccount,
    FeeBumpTransactionEnvelope,
    Operation,
    Payment,
    SetOptions,
    SetTrustLineFlags,
    StrKey,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.memo import HashMemo, IdMemo, NoneMemo, ReturnHashMemo, TextMemo
from stellar_sdk.signer_key import SignerKeyType

from payouts.sandbox.network import (
    BASE_FEE_STROOPS,
    BASE_RESERVE_STROOPS,
    INT64_MAX,
    MAX_OPS_PER_TX,
    MAX_SIGNERS,
    SANDBOX_NETWORK_PASSPHRASE,
    TOTAL_COINS_STROOPS,
    root_keypair,
)
from payouts.sandbox.results import OpResult, result_codes, transaction_result_xdr

# Account flags (AccountFlags) and trustline flags (TrustLineFlags), as in the XDR.
AUTH_REQUIRED = 1
AUTH_REVOCABLE = 2
AUTH_IMMUTABLE = 4
AUTH_CLAWBACK_ENABLED = 8
TL_AUTHORIZED = 1
TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES = 2
TL_CLAWBACK_ENABLED = 4

#: A queue that holds this many ledgers' worth of operations is full: newcomers must outbid.
QUEUE_LEDGERS = 4


def format_amount(amount_units: int) -> str:
    """Horizon's 7-decimal string for an integer of 10^-7."""
    sign = "-" if amount_units < 0 else ""
    whole, frac = divmod(abs(amount_units), 10**7)
    return f"{sign}{whole}.{frac:07d}"


def rfc3339(ts_s: int) -> str:
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def toid(ledger_seq: int, tx_order: int, op_index: int) -> int:
    """Horizon's total order id: paging tokens of transactions (op 0) and operations."""
    return (ledger_seq << 32) | (tx_order << 12) | op_index


# --------------------------------------------------------------------------------------------
# Ledger entries


@dataclass(slots=True)
class Trustline:
    asset_code: str
    asset_issuer: str
    balance_units: int = 0
    limit_units: int = INT64_MAX
    flags: int = TL_AUTHORIZED
    last_modified_ledger: int = 0

    def clone(self) -> Trustline:
        return Trustline(
            self.asset_code,
            self.asset_issuer,
            self.balance_units,
            self.limit_units,
            self.flags,
            self.last_modified_ledger,
        )

    @property
    def authorized(self) -> bool:
        return bool(self.flags & TL_AUTHORIZED)


@dataclass(slots=True)
class Account:
    account_id: str
    balance_stroops: int
    seq_num: int
    master_weight: int = 1
    low_threshold: int = 0
    med_threshold: int = 0
    high_threshold: int = 0
    flags: int = 0
    home_domain: str = ""
    #: ed25519 signer (G...) -> weight; the master key is `master_weight`, not listed here.
    signers: dict[str, int] = field(default_factory=dict)
    #: (asset code, issuer) -> trustline
    trustlines: dict[tuple[str, str], Trustline] = field(default_factory=dict)
    last_modified_ledger: int = 0
    last_modified_time_s: int = 0
    seq_ledger: int = 0
    seq_time_s: int = 0

    def clone(self) -> Account:
        return Account(
            self.account_id,
            self.balance_stroops,
            self.seq_num,
            self.master_weight,
            self.low_threshold,
            self.med_threshold,
            self.high_threshold,
            self.flags,
            self.home_domain,
            dict(self.signers),
            {key: line.clone() for key, line in self.trustlines.items()},
            self.last_modified_ledger,
            self.last_modified_time_s,
            self.seq_ledger,
            self.seq_time_s,
        )

    @property
    def num_subentries(self) -> int:
        return len(self.signers) + len(self.trustlines)

    def min_balance_stroops(self, extra_subentries: int = 0) -> int:
        return (2 + self.num_subentries + extra_subentries) * BASE_RESERVE_STROOPS

    def available_stroops(self) -> int:
        return self.balance_stroops - self.min_balance_stroops()

    def signer_weights(self) -> dict[str, int]:
        weights = dict(self.signers)
        if self.master_weight > 0:
            weights[self.account_id] = self.master_weight
        return weights

    def weight_of(self, signed_by: set[str]) -> int:
        # stellar-core caps the summed weight at 255 before comparing with a threshold.
        return min(255, sum(w for key, w in self.signer_weights().items() if key in signed_by))

    def meets(self, threshold: int, signed_by: set[str]) -> bool:
        # a threshold of 0 still needs some valid signature from the account
        return self.weight_of(signed_by) >= max(threshold, 1)

    def to_doc(self) -> dict:
        return {
            "account_id": self.account_id,
            "balance_stroops": self.balance_stroops,
            "seq_num": self.seq_num,
            "master_weight": self.master_weight,
            "thresholds": [self.low_threshold, self.med_threshold, self.high_threshold],
            "flags": self.flags,
            "home_domain": self.home_domain,
            "signers": self.signers,
            "trustlines": [
                [t.asset_code, t.asset_issuer, t.balance_units, t.limit_units, t.flags, t.last_modified_ledger]
                for t in self.trustlines.values()
            ],
            "last_modified": [self.last_modified_ledger, self.last_modified_time_s],
            "seq_at": [self.seq_ledger, self.seq_time_s],
        }

    @classmethod
    def from_doc(cls, doc: dict) -> Account:
        lines = {}
        for code, issuer, balance, limit, flags, modified in doc["trustlines"]:
            lines[(code, issuer)] = Trustline(code, issuer, balance, limit, flags, modified)
        low, med, high = doc["thresholds"]
        return cls(
            doc["account_id"],
            doc["balance_stroops"],
            doc["seq_num"],
            doc["master_weight"],
            low,
            med,
            high,
            doc["flags"],
            doc["home_domain"],
            dict(doc["signers"]),
            lines,
            *doc["last_modified"],
            *doc["seq_at"],
        )


@dataclass(slots=True)
class LedgerHeader:
    sequence: int
    closed_at_s: int
    base_fee_stroops: int
    successful_tx_count: int = 0
    failed_tx_count: int = 0
    operation_count: int = 0
    tx_set_operation_count: int = 0
    max_ops: int = 0
    hash_hex: str = ""
    prev_hash_hex: str = ""
    fee_pool_stroops: int = 0

    def to_doc(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_doc(cls, doc: dict) -> LedgerHeader:
        return cls(**doc)


# --------------------------------------------------------------------------------------------
# Transactions


class SubmissionRejected(Exception):
    """The transaction was refused before reaching a ledger (core's checkValid)."""

    def __init__(
        self,
        tx_code: str,
        ops: list[OpResult] | None = None,
        *,
        fee_charged_stroops: int = 0,
        fee_bump: bool = False,
        inner_hash: bytes | None = None,
        detail: str = "",
    ):
        super().__init__(tx_code)
        self.tx_code = tx_code
        self.ops = ops
        self.fee_bump = fee_bump
        self.result_xdr = transaction_result_xdr(
            fee_charged_stroops=fee_charged_stroops,
            tx_code=tx_code,
            ops=ops,
            inner_hash=inner_hash if fee_bump else None,
        )
        self.result_codes = result_codes(tx_code, ops, fee_bump=fee_bump)
        self.detail = detail


class EnvelopeMalformed(ValueError):
    """The bytes are not a transaction envelope this network accepts (Horizon's 400 malformed)."""


@dataclass(slots=True)
class PendingTx:
    hash_hex: str
    envelope: TransactionEnvelope | FeeBumpTransactionEnvelope
    envelope_xdr: str
    source_id: str
    fee_source_id: str
    sequence: int
    op_count: int
    fee_bid_stroops: int
    per_op_bid_stroops: int
    arrival: int
    #: keys whose signatures verified, on the inner transaction and on a fee bump's outer one
    inner_signed_by: set[str]
    outer_signed_by: set[str]
    inner_hash_hex: str | None
    not_before_ledger: int = 0

    @property
    def fee_bump(self) -> bool:
        return self.inner_hash_hex is not None

    @property
    def transaction(self):
        env = self.envelope
        if isinstance(env, FeeBumpTransactionEnvelope):
            return env.transaction.inner_transaction_envelope.transaction
        return env.transaction


@dataclass(slots=True)
class TxRecord:
    """A transaction in a closed ledger, with everything Horizon shows about it."""

    hash_hex: str
    ledger_seq: int
    application_order: int
    closed_at_s: int
    successful: bool
    tx_code: str
    op_results: list[OpResult]
    doc: dict  # Horizon's fields that do not change once written (see `_record_doc`)

    @property
    def paging_token(self) -> int:
        return toid(self.ledger_seq, self.application_order, 0)

    @property
    def result_codes(self) -> dict:
        return result_codes(self.tx_code, self.op_results, fee_bump="inner_transaction" in self.doc)

    def to_doc(self) -> dict:
        return {
            "hash": self.hash_hex,
            "ledger": self.ledger_seq,
            "order": self.application_order,
            "closed_at_s": self.closed_at_s,
            "successful": self.successful,
            "tx_code": self.tx_code,
            "ops": [[op.kind, op.code] for op in self.op_results],
            "doc": self.doc,
        }

    @classmethod
    def from_doc(cls, doc: dict) -> TxRecord:
        return cls(
            doc["hash"],
            doc["ledger"],
            doc["order"],
            doc["closed_at_s"],
            doc["successful"],
            doc["tx_code"],
            [OpResult(kind, code) for kind, code in doc["ops"]],
            doc["doc"],
        )


@dataclass(slots=True)
class OpRecord:
    """A payment-like operation as Horizon's /payments lists it (type, parties, amount)."""

    toid: int
    tx_hash_hex: str
    successful: bool
    closed_at_s: int
    doc: dict
    participants: tuple[str, ...]

    def to_doc(self) -> dict:
        return {
            "toid": self.toid,
            "tx": self.tx_hash_hex,
            "ok": self.successful,
            "at": self.closed_at_s,
            "doc": self.doc,
            "p": list(self.participants),
        }

    @classmethod
    def from_doc(cls, doc: dict) -> OpRecord:
        return cls(doc["toid"], doc["tx"], doc["ok"], doc["at"], doc["doc"], tuple(doc["p"]))


@dataclass
class ClosedLedger:
    """What one close produced, for persistence."""

    header: LedgerHeader
    transactions: list[TxRecord]
    operations: list[OpRecord]
    accounts: list[Account]


@dataclass(frozen=True, slots=True)
class Accepted:
    hash_hex: str
    duplicate: bool = False


# --------------------------------------------------------------------------------------------
# Signatures


def _verified_keys(tx_hash: bytes, signatures, candidates: Iterable[str]) -> tuple[set[str], int]:
    """Keys among `candidates` with a valid signature, and how many signatures matched none."""
    by_hint: dict[bytes, list[tuple[str, bytes]]] = {}
    for key in candidates:
        raw = StrKey.decode_ed25519_public_key(key)
        by_hint.setdefault(raw[-4:], []).append((key, raw))
    signed: set[str] = set()
    unused = 0
    for decorated in signatures:
        matched = False
        for key, raw in by_hint.get(decorated.signature_hint, ()):
            if key in signed:
                continue
            try:
                VerifyKey(raw).verify(tx_hash, decorated.signature)
            except (BadSignatureError, ValueError):
                continue
            signed.add(key)
            matched = True
            break
        if not matched:
            unused += 1
    return signed, unused


# --------------------------------------------------------------------------------------------
# Operations


def _asset_key(asset: Asset) -> tuple[str, str] | None:
    return None if asset.is_native() else (asset.code, asset.issuer)


def _op_kind(op: Operation) -> str:
    return {
        Payment: "payment",
        CreateAccount: "create_account",
        ChangeTrust: "change_trust",
        AllowTrust: "allow_trust",
        SetTrustLineFlags: "set_trust_line_flags",
        SetOptions: "set_options",
    }.get(type(op), "other")


def _op_threshold(op: Operation) -> str:
    """Which of the source's thresholds an operation needs (stellar-core's getThresholdLevel)."""
    if isinstance(op, (AllowTrust, SetTrustLineFlags)):
        return "low"
    if isinstance(op, SetOptions) and (
        op.master_weight is not None
        or op.low_threshold is not None
        or op.med_threshold is not None
        or op.high_threshold is not None
        or op.signer is not None
    ):
        return "high"
    return "med"


def _units(amount_text: str) -> int:
    """Back to the envelope's int64. The SDK turned it into a decimal string exactly, and the
    SDK's own `to_xdr_amount` refuses negatives, which a hostile envelope may carry."""
    return int(Decimal(amount_text).scaleb(7))


def _static_op_check(op: Operation, source_id: str) -> str | None:
    """Malformations core finds without looking at the ledger (doCheckValid)."""
    kind = _op_kind(op)
    if kind == "other":
        return "op_not_supported"
    if isinstance(op, Payment):
        if _units(op.amount) <= 0:
            return "op_malformed"
    elif isinstance(op, CreateAccount):
        if _units(op.starting_balance) < 0 or op.destination == source_id:
            return "op_malformed"
    elif isinstance(op, ChangeTrust):
        if not isinstance(op.asset, Asset) or op.asset.is_native() or _units(op.limit) < 0:
            return "op_malformed"
        if op.asset.issuer == source_id:
            return "op_malformed"
    elif isinstance(op, SetTrustLineFlags):
        if op.asset.is_native() or op.asset.issuer != source_id or op.trustor == source_id:
            return "op_malformed"
    elif isinstance(op, AllowTrust):
        if op.trustor == source_id:
            return "op_self_not_allowed"
    elif isinstance(op, SetOptions):
        for value in (op.master_weight, op.low_threshold, op.med_threshold, op.high_threshold):
            if value is not None and not 0 <= value <= 255:
                return "op_threshold_out_of_range"
        if op.signer is not None:
            key = op.signer.signer_key
            if key.signer_key_type != SignerKeyType.SIGNER_KEY_TYPE_ED25519 or op.signer.weight > 255:
                return "op_bad_signer"
            if key.encoded_signer_key == source_id:
                return "op_bad_signer"
        if (op.set_flags or 0) & (op.clear_flags or 0):
            return "op_bad_flags"
        if ((op.set_flags or 0) | (op.clear_flags or 0)) & ~0xF:
            return "op_unknown_flag"
    return None


# --------------------------------------------------------------------------------------------
# The ledger


class Ledger:
    """The whole sandbox network state. Thread-safe: one lock guards everything, and a
    condition wakes synchronous submitters when a ledger closes."""

    def __init__(
        self,
        *,
        network_passphrase: str = SANDBOX_NETWORK_PASSPHRASE,
        ops_per_ledger: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.network_passphrase = network_passphrase
        self.ops_per_ledger = ops_per_ledger
        self._clock = clock
        #: seconds added to the wall clock, so tests can make time bounds expire
        self.clock_offset_s = 0
        self.lock = threading.RLock()
        self.closed = threading.Condition(self.lock)
        self.accounts: dict[str, Account] = {}
        self.headers: list[LedgerHeader] = []
        self.transactions: dict[str, TxRecord] = {}
        self.tx_order: list[str] = []  # hashes in ledger order
        self.inner_to_outer: dict[str, str] = {}
        self.operations: list[OpRecord] = []
        self.ops_by_account: dict[str, list[int]] = {}
        self.txs_by_account: dict[str, list[str]] = {}
        self.queue: dict[str, PendingTx] = {}
        #: hashes dropped from the queue with the reason, for synchronous submitters
        self.dropped: dict[str, SubmissionRejected] = {}
        self._arrivals = 0
        self._genesis()

    # ---- clock and genesis ----

    def now_s(self) -> int:
        return int(self._clock()) + self.clock_offset_s

    def advance_clock(self, seconds: int) -> None:
        """Move the network clock forward (tests: make time bounds expire without waiting)."""
        with self.lock:
            self.clock_offset_s += seconds

    def _genesis(self) -> None:
        now = self.now_s()
        root = root_keypair(self.network_passphrase).public_key
        self.accounts[root] = Account(root, TOTAL_COINS_STROOPS, 0, last_modified_ledger=1, last_modified_time_s=now)
        self.headers.append(
            LedgerHeader(1, now, BASE_FEE_STROOPS, max_ops=self.ops_per_ledger, hash_hex=self._ledger_hash(1, now))
        )

    @staticmethod
    def _ledger_hash(seq: int, closed_at_s: int) -> str:
        return hashlib.sha256(f"sandbox-ledger:{seq}:{closed_at_s}".encode()).hexdigest()

    @property
    def latest(self) -> LedgerHeader:
        return self.headers[-1]

    # ---- reads ----

    def account(self, account_id: str) -> Account | None:
        with self.lock:
            found = self.accounts.get(account_id)
            return found.clone() if found else None

    def transaction(self, hash_hex: str) -> TxRecord | None:
        with self.lock:
            record = self.transactions.get(hash_hex)
            if record is None and hash_hex in self.inner_to_outer:
                record = self.transactions.get(self.inner_to_outer[hash_hex])
            return record

    def min_fee_per_op(self) -> int:
        """The bid a new transaction must reach now: the base fee, or more when the queue is
        full and the newcomer has to beat the cheapest queued transaction."""
        with self.lock:
            queued_ops = sum(p.op_count for p in self.queue.values())
            if queued_ops < QUEUE_LEDGERS * self.ops_per_ledger or not self.queue:
                return BASE_FEE_STROOPS
            return min(p.per_op_bid_stroops for p in self.queue.values()) + 1

    # ---- submission ----

    def decode(self, envelope_xdr: str) -> TransactionEnvelope | FeeBumpTransactionEnvelope:
        try:
            raw = stellar_xdr.TransactionEnvelope.from_xdr(envelope_xdr)
            if raw.type == stellar_xdr.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP:
                return FeeBumpTransactionEnvelope.from_xdr_object(raw, self.network_passphrase)
            return TransactionEnvelope.from_xdr_object(raw, self.network_passphrase)
        except Exception as exc:  # the SDK raises many types on hostile bytes
            raise EnvelopeMalformed(f"{type(exc).__name__}: {exc}"[:200]) from exc

    @staticmethod
    def hash_of(envelope) -> str:
        return envelope.hash_hex()

    def submit(self, envelope_xdr: str, *, delay_ledgers: int = 0) -> Accepted:
        """Check a signed envelope and queue it. Raises EnvelopeMalformed or SubmissionRejected;
        an already-included or already-queued hash is accepted again as a duplicate."""
        envelope = self.decode(envelope_xdr)
        hash_hex = envelope.hash_hex()
        with self.lock:
            if self.transaction(hash_hex) is not None or hash_hex in self.queue:
                return Accepted(hash_hex, duplicate=True)
            pending = self._check_valid(envelope, envelope_xdr, hash_hex)
            self._make_room(pending)
            pending.not_before_ledger = self.latest.sequence + 1 + delay_ledgers
            self.queue[hash_hex] = pending
            self.dropped.pop(hash_hex, None)
            return Accepted(hash_hex)

    def _check_valid(self, envelope, envelope_xdr: str, hash_hex: str) -> PendingTx:
        fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
        if fee_bump:
            outer = envelope.transaction
            inner_env = outer.inner_transaction_envelope
            tx = inner_env.transaction
            inner_hash = inner_env.hash()
            fee_source_id = outer.fee_source.account_id
            fee_bid = outer.fee
        else:
            inner_env = envelope
            tx = envelope.transaction
            inner_hash = None
            fee_source_id = tx.source.account_id
            fee_bid = tx.fee

        def reject(code: str, ops: list[OpResult] | None = None, fee: int = 0, detail: str = ""):
            return SubmissionRejected(
                code, ops, fee_charged_stroops=fee, fee_bump=fee_bump, inner_hash=inner_hash, detail=detail
            )

        op_count = len(tx.operations)
        if op_count == 0:
            raise reject("tx_missing_operation")
        if op_count > MAX_OPS_PER_TX:
            raise EnvelopeMalformed(f"more than {MAX_OPS_PER_TX} operations")
        if len(envelope.signatures) > MAX_SIGNERS or len(inner_env.signatures) > MAX_SIGNERS:
            raise EnvelopeMalformed(f"more than {MAX_SIGNERS} signatures")
        fee_ops = op_count + 1 if fee_bump else op_count
        per_op_bid = fee_bid // fee_ops
        min_fee = self.min_fee_per_op()
        if fee_bump and tx.fee > fee_bid:
            raise reject("tx_insufficient_fee", fee=tx.fee * fee_ops // op_count)
        if per_op_bid < BASE_FEE_STROOPS or (not fee_bump and tx.fee < BASE_FEE_STROOPS * op_count):
            raise reject("tx_insufficient_fee", fee=BASE_FEE_STROOPS * fee_ops)

        self._check_bounds(tx, reject)

        source_id = tx.source.account_id
        source = self.accounts.get(source_id)
        if source is None:
            raise reject("tx_no_source_account")
        expected_seq = source.seq_num + 1 + sum(1 for p in self.queue.values() if p.source_id == source_id)
        if tx.sequence != expected_seq:
            raise reject("tx_bad_seq", detail=f"expected sequence {expected_seq}")

        # Signatures: every account the transaction speaks for can have signed.
        op_sources = {op.source.account_id for op in tx.operations if op.source is not None}
        candidates: set[str] = set()
        for account_id in op_sources | {source_id}:
            holder = self.accounts.get(account_id)
            candidates.update(holder.signer_weights() if holder else ())
            candidates.add(account_id)
        inner_signed, unused = _verified_keys(inner_env.hash(), inner_env.signatures, candidates)
        if not source.meets(source.low_threshold, inner_signed):
            raise reject("tx_bad_auth")
        outer_signed: set[str] = set()
        fee_source = self.accounts.get(fee_source_id)
        if fee_bump:
            if fee_source is None:
                raise SubmissionRejected("tx_no_source_account", fee_bump=False)
            outer_signed, outer_unused = _verified_keys(
                envelope.hash(), envelope.signatures, set(fee_source.signer_weights()) | {fee_source_id}
            )
            if not fee_source.meets(fee_source.low_threshold, outer_signed):
                raise SubmissionRejected("tx_bad_auth", fee_bump=False)
            if outer_unused:
                raise SubmissionRejected("tx_bad_auth_extra", fee_bump=False)

        ops, failed = self._check_ops(tx, source_id, inner_signed)
        if failed:
            raise reject("tx_failed", ops)
        if unused:
            raise reject("tx_bad_auth_extra")
        if fee_source is None or fee_source.available_stroops() < fee_bid:
            raise reject("tx_insufficient_balance")
        if per_op_bid < min_fee:
            raise reject(
                "tx_insufficient_fee",
                fee=min_fee * fee_ops,
                detail="the transaction queue is full: bid above the cheapest queued fee",
            )
        self._arrivals += 1
        return PendingTx(
            hash_hex=hash_hex,
            envelope=envelope,
            envelope_xdr=envelope_xdr,
            source_id=source_id,
            fee_source_id=fee_source_id,
            sequence=tx.sequence,
            op_count=op_count,
            fee_bid_stroops=fee_bid,
            per_op_bid_stroops=per_op_bid,
            arrival=self._arrivals,
            inner_signed_by=inner_signed,
            outer_signed_by=outer_signed,
            inner_hash_hex=inner_hash.hex() if inner_hash else None,
        )

    def _check_bounds(self, tx, reject, *, ledger_seq: int | None = None, now_s: int | None = None) -> None:
        now_s = self.now_s() if now_s is None else now_s
        next_ledger = self.latest.sequence + 1 if ledger_seq is None else ledger_seq
        pre = tx.preconditions
        if pre is None:
            return
        if pre.time_bounds is not None:
            if pre.time_bounds.min_time and pre.time_bounds.min_time > now_s:
                raise reject("tx_too_early")
            if pre.time_bounds.max_time and pre.time_bounds.max_time < now_s:
                raise reject("tx_too_late")
        if pre.ledger_bounds is not None:
            if pre.ledger_bounds.min_ledger > next_ledger:
                raise reject("tx_too_early")
            # max_ledger is exclusive, as in CAP-21
            if pre.ledger_bounds.max_ledger and next_ledger >= pre.ledger_bounds.max_ledger:
                raise reject("tx_too_late")
        if (
            pre.min_sequence_number is not None
            or pre.min_sequence_age
            or pre.min_sequence_ledger_gap
            or pre.extra_signers
        ):
            raise reject("tx_not_supported", detail="only time and ledger bounds are supported")

    def _check_ops(self, tx, source_id: str, signed_by: set[str]) -> tuple[list[OpResult], bool]:
        ops: list[OpResult] = []
        failed = False
        for op in tx.operations:
            op_source_id = op.source.account_id if op.source is not None else source_id
            kind = _op_kind(op)
            code = _static_op_check(op, op_source_id)
            if code is None:
                holder = self.accounts.get(op_source_id)
                if holder is None:
                    code = "op_no_source_account"
                else:
                    level = _op_threshold(op)
                    threshold = {
                        "low": holder.low_threshold,
                        "med": holder.med_threshold,
                        "high": holder.high_threshold,
                    }[level]
                    if not holder.meets(threshold, signed_by):
                        code = "op_bad_auth"
            ops.append(OpResult(kind, code or "op_success"))
            failed = failed or code is not None
        return ops, failed

    def _make_room(self, pending: PendingTx) -> None:
        """A full queue evicts its cheapest transactions for a better bid (core's surge queue)."""
        limit = QUEUE_LEDGERS * self.ops_per_ledger
        queued = sum(p.op_count for p in self.queue.values())
        while queued + pending.op_count > limit and self.queue:
            cheapest = min(self.queue.values(), key=lambda p: (p.per_op_bid_stroops, -p.arrival))
            if cheapest.per_op_bid_stroops >= pending.per_op_bid_stroops:
                break
            del self.queue[cheapest.hash_hex]
            queued -= cheapest.op_count
            self.dropped[cheapest.hash_hex] = SubmissionRejected(
                "tx_insufficient_fee",
                fee_charged_stroops=(cheapest.per_op_bid_stroops + 1) * cheapest.op_count,
                detail="evicted from a full queue by a higher bid",
            )

    def drop_queue(self) -> list[str]:
        """Forget every queued transaction (a restart: core's queue is not persisted)."""
        with self.lock:
            hashes = list(self.queue)
            self.queue.clear()
            return hashes

    # ---- ledger close ----

    def close_ledger(self) -> ClosedLedger:
        """Close the next ledger: pick queued transactions in fee order and apply them."""
        with self.lock:
            seq = self.latest.sequence + 1
            now_s = max(self.now_s(), self.latest.closed_at_s)
            chosen: list[PendingTx] = []
            ops_used = 0
            sources_used: set[str] = set()
            surge = False
            for pending in sorted(self.queue.values(), key=lambda p: (-p.per_op_bid_stroops, p.arrival)):
                if pending.not_before_ledger > seq or pending.source_id in sources_used:
                    continue
                source = self.accounts.get(pending.source_id)
                if source is None or pending.sequence <= source.seq_num:
                    self._drop(pending, "tx_bad_seq")
                    continue
                if pending.sequence != source.seq_num + 1:
                    continue  # its predecessor from the same source goes first
                try:
                    self._check_bounds(
                        pending.transaction,
                        lambda code, _fee_bump=pending.fee_bump, **_: SubmissionRejected(code, fee_bump=_fee_bump),
                        ledger_seq=seq,
                        now_s=now_s,
                    )
                except SubmissionRejected as exc:
                    self._drop(pending, exc.tx_code)
                    continue
                if ops_used + pending.op_count > self.ops_per_ledger:
                    surge = True
                    continue
                chosen.append(pending)
                ops_used += pending.op_count
                sources_used.add(pending.source_id)
            for pending in chosen:
                del self.queue[pending.hash_hex]
            charged_per_op = BASE_FEE_STROOPS
            if surge and chosen:
                charged_per_op = max(BASE_FEE_STROOPS, min(p.per_op_bid_stroops for p in chosen))

            header = LedgerHeader(
                seq,
                now_s,
                charged_per_op,
                max_ops=self.ops_per_ledger,
                prev_hash_hex=self.latest.hash_hex,
                hash_hex=self._ledger_hash(seq, now_s),
                fee_pool_stroops=self.latest.fee_pool_stroops,
            )
            touched: set[str] = set()
            records: list[TxRecord] = []
            op_records: list[OpRecord] = []
            # Fees and sequence numbers first, for every transaction of the set (as core does),
            # so a transaction that fails later still pays and consumes its sequence.
            fees: dict[str, int] = {}
            for pending in chosen:
                fee_ops = pending.op_count + 1 if pending.fee_bump else pending.op_count
                fee_source = self.accounts[pending.fee_source_id]
                fee = min(charged_per_op * fee_ops, pending.fee_bid_stroops, fee_source.balance_stroops)
                fee_source.balance_stroops -= fee
                header.fee_pool_stroops += fee
                fees[pending.hash_hex] = fee
                source = self.accounts[pending.source_id]
                source.seq_num = pending.sequence
                source.seq_ledger, source.seq_time_s = seq, now_s
                for account in (fee_source, source):
                    account.last_modified_ledger, account.last_modified_time_s = seq, now_s
                    touched.add(account.account_id)
            for order, pending in enumerate(chosen, start=1):
                tx_code, op_results, op_docs, changed = self._apply(pending, seq, now_s)
                touched.update(changed)
                record = self._record(pending, seq, order, now_s, tx_code, op_results, fees[pending.hash_hex])
                records.append(record)
                for index, (doc, participants) in enumerate(op_docs, start=1):
                    if doc is None:
                        continue
                    op_records.append(
                        OpRecord(toid(seq, order, index), pending.hash_hex, record.successful, now_s, doc, participants)
                    )
                if record.successful:
                    header.successful_tx_count += 1
                    header.operation_count += pending.op_count
                else:
                    header.failed_tx_count += 1
                header.tx_set_operation_count += pending.op_count
            self._index(header, records, op_records)
            self.closed.notify_all()
            # rolled-back transactions replaced objects in self.accounts: read them back by id
            saved = [self.accounts[a].clone() for a in sorted(touched) if a in self.accounts]
            return ClosedLedger(header, records, op_records, saved)

    def _drop(self, pending: PendingTx, tx_code: str) -> None:
        del self.queue[pending.hash_hex]
        self.dropped[pending.hash_hex] = SubmissionRejected(tx_code, fee_bump=pending.fee_bump)

    def _index(self, header: LedgerHeader, records: list[TxRecord], op_records: list[OpRecord]) -> None:
        self.headers.append(header)
        for record in records:
            self.transactions[record.hash_hex] = record
            self.tx_order.append(record.hash_hex)
            inner = record.doc.get("inner_transaction")
            if inner:
                self.inner_to_outer[inner["hash"]] = record.hash_hex
            for account_id in record.doc["_participants"]:
                self.txs_by_account.setdefault(account_id, []).append(record.hash_hex)
        for op_record in op_records:
            position = len(self.operations)
            self.operations.append(op_record)
            for account_id in op_record.participants:
                self.ops_by_account.setdefault(account_id, []).append(position)

    # ---- apply ----

    def _apply(self, pending: PendingTx, seq: int, now_s: int):
        """Apply every operation; on any failure restore what the operations changed."""
        tx = pending.transaction
        originals: dict[str, Account | None] = {}

        def load(account_id: str) -> Account | None:
            return self.accounts.get(account_id)

        def touch(account: Account) -> Account:
            if account.account_id not in originals:
                originals[account.account_id] = account.clone()
            account.last_modified_ledger, account.last_modified_time_s = seq, now_s
            return account

        def create(account: Account) -> None:
            originals.setdefault(account.account_id, None)
            self.accounts[account.account_id] = account

        source = self.accounts[pending.source_id]
        # Signers may have changed since submission: weigh the verified keys again.
        if not source.meets(source.low_threshold, pending.inner_signed_by):
            ops = [OpResult(_op_kind(op), "op_success") for op in tx.operations]
            return "tx_bad_auth", ops, [(None, ())] * len(ops), set()
        op_results: list[OpResult] = []
        op_docs: list[tuple[dict | None, tuple[str, ...]]] = []
        apply_op = _OperationApplier(self, load, touch, create, seq, now_s)
        for op in tx.operations:
            op_source_id = op.source.account_id if op.source is not None else pending.source_id
            kind = _op_kind(op)
            code, doc, participants = apply_op(op, op_source_id, pending.inner_signed_by)
            op_results.append(OpResult(kind, code))
            if doc is not None:
                doc = {**doc, "source_account": op_source_id}
            op_docs.append((doc, participants))
        ok = all(result.code == "op_success" for result in op_results)
        if not ok:
            for account_id, original in originals.items():
                if original is None:
                    self.accounts.pop(account_id, None)
                else:
                    self.accounts[account_id] = original
            return "tx_failed", op_results, op_docs, set()
        return "tx_success", op_results, op_docs, set(originals)

    def _record(
        self,
        pending: PendingTx,
        seq: int,
        order: int,
        now_s: int,
        tx_code: str,
        op_results: list[OpResult],
        fee_stroops: int,
    ) -> TxRecord:
        tx = pending.transaction
        inner_hash = bytes.fromhex(pending.inner_hash_hex) if pending.inner_hash_hex else None
        result_xdr = transaction_result_xdr(
            fee_charged_stroops=fee_stroops, tx_code=tx_code, ops=op_results, inner_hash=inner_hash
        )
        participants = {pending.source_id, pending.fee_source_id}
        for op in tx.operations:
            if op.source is not None:
                participants.add(op.source.account_id)
            for attr in ("destination", "trustor"):
                value = getattr(op, attr, None)
                if value is not None:
                    participants.add(value if isinstance(value, str) else value.account_id)
        env = pending.envelope
        inner_env = env.transaction.inner_transaction_envelope if pending.fee_bump else env
        doc: dict = {
            "source_account": pending.source_id,
            "source_account_sequence": str(pending.sequence),
            "fee_account": pending.fee_source_id,
            "fee_charged": str(fee_stroops),
            "max_fee": str(pending.fee_bid_stroops),
            "operation_count": pending.op_count,
            "envelope_xdr": pending.envelope_xdr,
            "result_xdr": result_xdr,
            "signatures": [base64.b64encode(s.signature).decode() for s in env.signatures],
            **_memo_fields(tx.memo),
            "_participants": sorted(participants),
        }
        pre = tx.preconditions
        if pre is not None and (pre.time_bounds is not None or pre.ledger_bounds is not None):
            doc["preconditions"] = {}
            if pre.time_bounds is not None:
                doc["preconditions"]["timebounds"] = {
                    "min_time": str(pre.time_bounds.min_time),
                    "max_time": str(pre.time_bounds.max_time),
                }
            if pre.ledger_bounds is not None:
                doc["preconditions"]["ledgerbounds"] = {
                    "min_ledger": pre.ledger_bounds.min_ledger,
                    "max_ledger": pre.ledger_bounds.max_ledger,
                }
            if pre.time_bounds is not None:
                doc["valid_after"] = rfc3339(pre.time_bounds.min_time)
                if pre.time_bounds.max_time:
                    doc["valid_before"] = rfc3339(pre.time_bounds.max_time)
        if pending.fee_bump:
            doc["fee_bump_transaction"] = {"hash": pending.hash_hex, "signatures": doc["signatures"]}
            doc["inner_transaction"] = {
                "hash": pending.inner_hash_hex,
                "signatures": [base64.b64encode(s.signature).decode() for s in inner_env.signatures],
                "max_fee": str(tx.fee),
            }
        return TxRecord(pending.hash_hex, seq, order, now_s, tx_code == "tx_success", tx_code, op_results, doc)

    # ---- persistence hooks ----

    def load(
        self,
        *,
        accounts: list[Account],
        headers: list[LedgerHeader],
        transactions: list[TxRecord],
        operations: list[OpRecord],
        clock_offset_s: int,
    ) -> None:
        """Replace the state with a saved one (records in ledger order)."""
        with self.lock:
            self.accounts = {a.account_id: a for a in accounts}
            self.headers = []
            self.transactions, self.tx_order, self.inner_to_outer = {}, [], {}
            self.operations, self.ops_by_account, self.txs_by_account = [], {}, {}
            self.queue.clear()
            self.dropped.clear()
            self.clock_offset_s = clock_offset_s
            by_ledger: dict[int, tuple[list, list]] = {}
            for record in transactions:
                by_ledger.setdefault(record.ledger_seq, ([], []))[0].append(record)
            for op_record in operations:
                by_ledger.setdefault(op_record.toid >> 32, ([], []))[1].append(op_record)
            for header in headers:
                txs, ops = by_ledger.get(header.sequence, ([], []))
                self._index(header, txs, ops)


class _OperationApplier:
    """Applies one operation against the live state; returns (code, payment doc, participants)."""

    def __init__(self, ledger: Ledger, load, touch, create, seq: int, now_s: int):
        self.ledger, self.load, self.touch, self.create = ledger, load, touch, create
        self.seq, self.now_s = seq, now_s

    def __call__(self, op: Operation, source_id: str, signed_by: set[str]):
        source = self.load(source_id)
        if source is None:
            return "op_no_source_account", None, ()
        code = _static_op_check(op, source_id)
        if code is not None:
            return code, None, ()
        level = _op_threshold(op)
        threshold = {"low": source.low_threshold, "med": source.med_threshold, "high": source.high_threshold}[level]
        if not source.meets(threshold, signed_by):
            return "op_bad_auth", None, ()
        if isinstance(op, Payment):
            return self.payment(op, source)
        if isinstance(op, CreateAccount):
            return self.create_account(op, source)
        if isinstance(op, ChangeTrust):
            return self.change_trust(op, source), None, ()
        if isinstance(op, SetTrustLineFlags):
            set_flags = int(op.set_flags or 0)
            clear_flags = int(op.clear_flags or 0)
            return self.trust_flags(source, op.trustor, op.asset.code, set_flags, clear_flags), None, ()
        if isinstance(op, AllowTrust):
            authorize = int(op.authorize)
            code = self.trust_flags(
                source,
                op.trustor,
                op.asset_code,
                authorize,
                (TL_AUTHORIZED | TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES) & ~authorize,
                allow_trust=True,
            )
            return code, None, ()
        if isinstance(op, SetOptions):
            return self.set_options(op, source), None, ()
        return "op_not_supported", None, ()

    def payment(self, op: Payment, source: Account):
        amount_units = _units(op.amount)
        destination_id = op.destination.account_id
        asset = op.asset
        doc = {
            "type": "payment",
            "type_i": 1,
            "from": source.account_id,
            "to": destination_id,
            "amount": format_amount(amount_units),
            **_asset_fields(asset),
        }
        parties = (source.account_id, destination_id)
        destination = self.load(destination_id)
        key = _asset_key(asset)
        if key is None:
            if destination is None:
                return "op_no_destination", doc, parties
            if source.available_stroops() < amount_units:
                return "op_underfunded", doc, parties
            if destination.account_id != source.account_id and destination.balance_stroops > INT64_MAX - amount_units:
                return "op_line_full", doc, parties
            self.touch(source).balance_stroops -= amount_units
            self.touch(destination).balance_stroops += amount_units
            return "op_success", doc, parties
        _code, issuer_id = key
        if source.account_id != issuer_id:
            line = source.trustlines.get(key)
            if line is None:
                return "op_src_no_trust", doc, parties
            if not line.authorized:
                return "op_src_not_authorized", doc, parties
            if line.balance_units < amount_units:
                return "op_underfunded", doc, parties
        if destination is None:
            return "op_no_destination", doc, parties
        if destination.account_id != issuer_id:
            dest_line = destination.trustlines.get(key)
            if dest_line is None:
                return "op_no_trust", doc, parties
            if not dest_line.authorized:
                return "op_not_authorized", doc, parties
            if dest_line.balance_units + amount_units > dest_line.limit_units:
                return "op_line_full", doc, parties
        if self.load(issuer_id) is None:
            return "op_no_issuer", doc, parties
        if source.account_id != issuer_id:
            line = self.touch(source).trustlines[key]
            line.balance_units -= amount_units
            line.last_modified_ledger = self.seq
        if destination.account_id != issuer_id:
            dest_line = self.touch(destination).trustlines[key]
            dest_line.balance_units += amount_units
            dest_line.last_modified_ledger = self.seq
        return "op_success", doc, parties

    def create_account(self, op: CreateAccount, source: Account):
        starting_stroops = _units(op.starting_balance)
        doc = {
            "type": "create_account",
            "type_i": 0,
            "account": op.destination,
            "funder": source.account_id,
            "starting_balance": format_amount(starting_stroops),
        }
        parties = (source.account_id, op.destination)
        if self.load(op.destination) is not None:
            return "op_already_exists", doc, parties
        if starting_stroops < 2 * BASE_RESERVE_STROOPS:
            return "op_low_reserve", doc, parties
        if source.available_stroops() < starting_stroops:
            return "op_underfunded", doc, parties
        self.touch(source).balance_stroops -= starting_stroops
        # A new account's sequence starts at its creation ledger << 32, as on Stellar.
        self.create(
            Account(
                op.destination,
                starting_stroops,
                self.seq << 32,
                last_modified_ledger=self.seq,
                last_modified_time_s=self.now_s,
            )
        )
        return "op_success", doc, parties

    def change_trust(self, op: ChangeTrust, source: Account) -> str:
        key = (op.asset.code, op.asset.issuer)
        limit_units = _units(op.limit)
        line = source.trustlines.get(key)
        if limit_units == 0:
            if line is None:
                return "op_invalid_limit"
            if line.balance_units > 0:
                return "op_invalid_limit"
            del self.touch(source).trustlines[key]
            return "op_success"
        if line is not None:
            if limit_units < line.balance_units:
                return "op_invalid_limit"
            line = self.touch(source).trustlines[key]
            line.limit_units, line.last_modified_ledger = limit_units, self.seq
            return "op_success"
        issuer = self.load(op.asset.issuer)
        if issuer is None:
            return "op_no_issuer"
        if source.available_stroops() < BASE_RESERVE_STROOPS:
            return "op_low_reserve"
        flags = 0 if issuer.flags & AUTH_REQUIRED else TL_AUTHORIZED
        if issuer.flags & AUTH_CLAWBACK_ENABLED:
            flags |= TL_CLAWBACK_ENABLED
        self.touch(source).trustlines[key] = Trustline(op.asset.code, op.asset.issuer, 0, limit_units, flags, self.seq)
        return "op_success"

    def trust_flags(
        self,
        issuer: Account,
        trustor_id: str,
        asset_code: str,
        set_flags: int,
        clear_flags: int,
        *,
        allow_trust: bool = False,
    ) -> str:
        auth_bits = TL_AUTHORIZED | TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES
        if allow_trust and not issuer.flags & AUTH_REQUIRED and not issuer.flags & AUTH_REVOCABLE:
            return "op_not_required"
        trustor = self.load(trustor_id)
        line = trustor.trustlines.get((asset_code, issuer.account_id)) if trustor else None
        if line is None:
            return "op_no_trust"
        new_flags = (line.flags & ~clear_flags) | set_flags
        if new_flags & auth_bits == auth_bits:
            return "op_invalid_state" if not allow_trust else "op_malformed"
        revoking = (line.flags & TL_AUTHORIZED) and not new_flags & TL_AUTHORIZED
        if revoking and not issuer.flags & AUTH_REVOCABLE:
            return "op_cant_revoke"
        line = self.touch(trustor).trustlines[(asset_code, issuer.account_id)]
        line.flags, line.last_modified_ledger = new_flags, self.seq
        return "op_success"

    def set_options(self, op: SetOptions, source: Account) -> str:
        set_flags, clear_flags = int(op.set_flags or 0), int(op.clear_flags or 0)
        if (set_flags or clear_flags) and source.flags & AUTH_IMMUTABLE:
            return "op_cant_change"
        signers = dict(source.signers)
        if op.signer is not None:
            key = op.signer.signer_key.encoded_signer_key
            if op.signer.weight == 0:
                signers.pop(key, None)
            else:
                if key not in signers:
                    if len(signers) >= MAX_SIGNERS:
                        return "op_too_many_signers"
                    if source.available_stroops() < BASE_RESERVE_STROOPS:
                        return "op_low_reserve"
                signers[key] = op.signer.weight
        if op.home_domain is not None and len(op.home_domain.encode()) > 32:
            return "op_invalid_home_domain"
        account = self.touch(source)
        account.signers = signers
        account.flags = (account.flags & ~clear_flags) | set_flags
        if op.master_weight is not None:
            account.master_weight = op.master_weight
        if op.low_threshold is not None:
            account.low_threshold = op.low_threshold
        if op.med_threshold is not None:
            account.med_threshold = op.med_threshold
        if op.high_threshold is not None:
            account.high_threshold = op.high_threshold
        if op.home_domain is not None:
            account.home_domain = op.home_domain
        return "op_success"


def _asset_fields(asset: Asset) -> dict:
    if asset.is_native():
        return {"asset_type": "native"}
    return {"asset_type": asset.type, "asset_code": asset.code, "asset_issuer": asset.issuer}


def _memo_fields(memo) -> dict:
    """Memos as Horizon shows them: text decoded (bytes also in base64), id as a decimal
    string, hash and return as base64."""
    if memo is None or isinstance(memo, NoneMemo):
        return {"memo_type": "none"}
    if isinstance(memo, TextMemo):
        raw = memo.memo_text
        return {
            "memo_type": "text",
            "memo": raw.decode("utf-8", errors="replace"),
            "memo_bytes": base64.b64encode(raw).decode(),
        }
    if isinstance(memo, IdMemo):
        return {"memo_type": "id", "memo": str(memo.memo_id)}
    if isinstance(memo, HashMemo):
        return {"memo_type": "hash", "memo": base64.b64encode(memo.memo_hash).decode()}
    if isinstance(memo, ReturnHashMemo):
        return {"memo_type": "return", "memo": base64.b64encode(memo.memo_return).decode()}
    return {"memo_type": "none"}


__all__ = [
    "Accepted",
    "Account",
    "ClosedLedger",
    "EnvelopeMalformed",
    "Ledger",
    "LedgerHeader",
    "OpRecord",
    "PendingTx",
    "SubmissionRejected",
    "Trustline",
    "TxRecord",
    "format_amount",
    "rfc3339",
    "toid",
]
