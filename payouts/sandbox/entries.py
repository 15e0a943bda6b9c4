"""The sandbox ledger's entries and records: accounts with their trustlines, ledger headers,
and the transactions and operations of closed ledgers as Horizon shows them.

Amounts are integers of 10^-7 (stroops for XLM, units for credit assets) everywhere in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from payouts.sandbox.network import (
    BASE_RESERVE_STROOPS,
    INT64_MAX,
)
from payouts.sandbox.results import OpResult, result_codes

# Account flags (AccountFlags) and trustline flags (TrustLineFlags), as in the XDR.
AUTH_REQUIRED = 1
AUTH_REVOCABLE = 2
AUTH_IMMUTABLE = 4
AUTH_CLAWBACK_ENABLED = 8
TL_AUTHORIZED = 1
TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES = 2
TL_CLAWBACK_ENABLED = 4


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
class ClaimableBalance:
    """A claimable balance, kept on the account that sponsors it (its creator), which holds
    one base reserve per claimant while it exists. Predicates are stored as evaluated:
    `{"unconditional": True}`, `{"and": [p, q]}`, `{"or": [p, q]}`, `{"not": p}`, or
    `{"abs_before": epoch seconds}` (a relative time is made absolute at creation, as core does)."""

    balance_id: str  # Horizon's hex: the 00000000 type prefix, then the sha256 of the op id
    asset_code: str  # "" for XLM
    asset_issuer: str  # "" for XLM
    amount_units: int
    claimants: list[tuple[str, dict]]
    last_modified_ledger: int = 0
    last_modified_time_s: int = 0

    def clone(self) -> ClaimableBalance:
        return ClaimableBalance(
            self.balance_id,
            self.asset_code,
            self.asset_issuer,
            self.amount_units,
            list(self.claimants),
            self.last_modified_ledger,
            self.last_modified_time_s,
        )

    def to_doc(self) -> list:
        return [
            self.balance_id,
            self.asset_code,
            self.asset_issuer,
            self.amount_units,
            [[destination, predicate] for destination, predicate in self.claimants],
            self.last_modified_ledger,
            self.last_modified_time_s,
        ]

    @classmethod
    def from_doc(cls, doc: list) -> ClaimableBalance:
        balance_id, code, issuer, amount, claimants, modified_ledger, modified_time_s = doc
        return cls(balance_id, code, issuer, amount, [(d, p) for d, p in claimants], modified_ledger, modified_time_s)


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
    #: data entries (ManageData): name -> value, up to 64 bytes each; one base reserve each
    data: dict[str, bytes] = field(default_factory=dict)
    #: claimable balances this account created and sponsors: balance id -> balance
    claimable: dict[str, ClaimableBalance] = field(default_factory=dict)

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
            dict(self.data),
            {key: balance.clone() for key, balance in self.claimable.items()},
        )

    @property
    def num_subentries(self) -> int:
        return len(self.signers) + len(self.trustlines) + len(self.data)

    @property
    def num_sponsoring(self) -> int:
        """Reserves this account holds for entries it sponsors: one per claimant of each balance."""
        return sum(len(balance.claimants) for balance in self.claimable.values())

    def min_balance_stroops(self, extra_subentries: int = 0) -> int:
        return (2 + self.num_subentries + self.num_sponsoring + extra_subentries) * BASE_RESERVE_STROOPS

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
            "data": {name: value.hex() for name, value in self.data.items()},
            "claimable": [balance.to_doc() for balance in self.claimable.values()],
        }

    @classmethod
    def from_doc(cls, doc: dict) -> Account:
        lines = {}
        for code, issuer, balance, limit, flags, modified in doc["trustlines"]:
            lines[(code, issuer)] = Trustline(code, issuer, balance, limit, flags, modified)
        low, med, high = doc["thresholds"]
        modified_ledger, modified_time_s = doc["last_modified"]
        seq_ledger, seq_time_s = doc["seq_at"]
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
            modified_ledger,
            modified_time_s,
            seq_ledger,
            seq_time_s,
            {name: bytes.fromhex(value) for name, value in doc.get("data", {}).items()},
            {item[0]: ClaimableBalance.from_doc(item) for item in doc.get("claimable", [])},
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
    tx_set_hash_hex: str = ""

    def to_doc(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_doc(cls, doc: dict) -> LedgerHeader:
        return cls(**doc)


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


#: Operation types Horizon's /payments lists.
PAYMENT_TYPES = frozenset({"create_account", "payment", "path_payment_strict_receive", "path_payment_strict_send"})


@dataclass(slots=True)
class OpRecord:
    """An operation as Horizon's /operations lists it (type, parties, fields), with the effects
    it had (none when its transaction failed)."""

    toid: int
    tx_hash_hex: str
    successful: bool
    closed_at_s: int
    doc: dict
    participants: tuple[str, ...]
    #: Horizon's effect fields (`account`, `type`, `type_i`, ...), in the order they happened
    effects: list[dict] = field(default_factory=list)

    @property
    def is_payment(self) -> bool:
        return self.doc["type"] in PAYMENT_TYPES

    def to_doc(self) -> dict:
        return {
            "toid": self.toid,
            "tx": self.tx_hash_hex,
            "ok": self.successful,
            "at": self.closed_at_s,
            "doc": self.doc,
            "p": list(self.participants),
            "e": self.effects,
        }

    @classmethod
    def from_doc(cls, doc: dict) -> OpRecord:
        return cls(doc["toid"], doc["tx"], doc["ok"], doc["at"], doc["doc"], tuple(doc["p"]), doc.get("e", []))


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
