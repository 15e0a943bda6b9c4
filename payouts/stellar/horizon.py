"""A Horizon client for the payment engine (real Horizon or the sandbox, same code).

Submission never guesses: a timeout, a 5xx, a 429 or a dropped connection is an *unknown*
outcome, to be resolved by looking the transaction hash up (SPEC section 5, rule 4). Reads
honour 429 with Retry-After and are paced by a configurable request rate, since public Horizon
servers rate-limit clients.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Self

import httpx

from payouts.money import parse_tft
from payouts.retry import RetryPolicy, Transient, default_sleep, retry_after_s
from payouts.tls import tls_context

MAX_READ_ATTEMPTS = 5


class StellarError(Exception):
    """Base error of the Stellar edge."""


class HorizonUnavailable(StellarError):
    """Horizon could not answer a read after bounded retries."""


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"  # the network answered: included and failed, or refused
    UNKNOWN = "unknown"  # no answer we can trust: look the hash up before anything else


class CodeBucket(StrEnum):
    RETRY = "retry"  # try again: same bytes, a higher fee, or a reloaded sequence
    DESTINATION = "destination"  # this destination cannot receive; hold it, rebuild the rest
    RUN = "run"  # stop the run and alert an operator
    EXPIRED = "expired"  # tx_too_late: acted on only through the "can never land" rule
    OTHER = "other"


RETRY_CODES = frozenset({"tx_insufficient_fee", "tx_bad_seq"})
DESTINATION_CODES = frozenset({"op_no_trust", "op_no_destination", "op_not_authorized", "op_line_full"})
RUN_CODES = frozenset({"op_underfunded", "tx_insufficient_balance", "tx_bad_auth", "tx_bad_auth_extra"})


def classify(result_codes: dict) -> CodeBucket:
    """The bucket of a failed submission's result codes; run-level codes win."""
    tx_code = result_codes.get("transaction", "")
    if tx_code == "tx_fee_bump_inner_failed":
        tx_code = result_codes.get("inner_transaction", tx_code)
    op_codes = set(result_codes.get("operations") or [])
    if tx_code in RUN_CODES or op_codes & RUN_CODES:
        return CodeBucket.RUN
    if tx_code == "tx_too_late":
        return CodeBucket.EXPIRED
    if tx_code in RETRY_CODES:
        return CodeBucket.RETRY
    if op_codes & DESTINATION_CODES:
        return CodeBucket.DESTINATION
    return CodeBucket.OTHER


@dataclass(frozen=True)
class TrustLine:
    asset_code: str
    asset_issuer: str
    balance_units: int
    limit_units: int
    is_authorized: bool

    @property
    def room_units(self) -> int:
        return self.limit_units - self.balance_units


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    sequence: int
    native_balance_stroops: int
    trustlines: dict[tuple[str, str], TrustLine] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)
    signers: list[dict] = field(default_factory=list)
    #: the account's data entries, values base64 as Horizon gives them
    data: dict[str, str] = field(default_factory=dict)
    #: Horizon's count of trustlines, offers, data entries and extra signers (None: not given)
    subentry_count: int | None = None

    def trustline(self, code: str, issuer: str) -> TrustLine | None:
        return self.trustlines.get((code, issuer))

    @property
    def subentries(self) -> int:
        """Entries each holding a base reserve: trustlines, data entries and signers besides the
        master key (or Horizon's own count, when it says more, e.g. with offers)."""
        counted = (
            len(self.trustlines) + len(self.data) + sum(1 for s in self.signers if s.get("key") != self.account_id)
        )
        return max(counted, self.subentry_count or 0)

    @property
    def memo_required(self) -> bool:
        """SEP-29: the account asks every payment to carry its memo (an exchange's deposit
        address): the data entry `config.memo_required` with value "1"."""
        value = self.data.get("config.memo_required")
        if value is None:
            return False
        try:
            return base64.b64decode(value, validate=True) == b"1"
        except ValueError:
            return False


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    tx_hash: str | None = None
    ledger: int | None = None
    closed_at: datetime | None = None
    result_codes: dict = field(default_factory=dict)
    reason: str = ""  # why the outcome is unknown, in words (never the envelope)


@dataclass(frozen=True)
class TransactionInfo:
    tx_hash: str
    successful: bool
    ledger: int
    closed_at: datetime
    source_account: str
    source_sequence: int
    memo_type: str
    memo: str | None
    #: a fee bump's inner transaction hash (the hash it was signed under); None otherwise
    inner_hash: str | None = None
    #: the fee the network charged (stroops), when Horizon says
    fee_charged_stroops: int | None = None


@dataclass(frozen=True)
class Lookup:
    """A lookup by hash and the newest ledger the answering Horizon had ingested (its
    `Latest-Ledger` header), so a "not found" can be weighed: not found as of which ledger."""

    info: TransactionInfo | None
    latest_ledger: int | None


@dataclass(frozen=True)
class LedgerInfo:
    sequence: int
    closed_at: datetime


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _account(document: dict) -> AccountInfo:
    native = 0
    trustlines: dict[tuple[str, str], TrustLine] = {}
    for balance in document.get("balances", []):
        if balance.get("asset_type") == "native":
            native = parse_tft(balance["balance"])  # stroops share the 7 decimals
            continue
        line = TrustLine(
            asset_code=balance["asset_code"],
            asset_issuer=balance["asset_issuer"],
            balance_units=parse_tft(balance["balance"]),
            limit_units=parse_tft(balance["limit"]),
            is_authorized=bool(balance.get("is_authorized", True)),
        )
        trustlines[(line.asset_code, line.asset_issuer)] = line
    return AccountInfo(
        account_id=document["account_id"],
        sequence=int(document["sequence"]),
        native_balance_stroops=native,
        trustlines=trustlines,
        thresholds=document.get("thresholds", {}),
        signers=document.get("signers", []),
        data={str(k): str(v) for k, v in (document.get("data") or {}).items()},
        subentry_count=int(document["subentry_count"]) if "subentry_count" in document else None,
    )


class HorizonClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 60.0,
        max_requests_per_s: float | None = None,
        transport: httpx.BaseTransport | None = None,
        max_read_attempts: int = MAX_READ_ATTEMPTS,
        sleep: Callable[[float], None] = default_sleep,
    ) -> None:
        self._read_retry = RetryPolicy(attempts=max_read_attempts, backoff_s=0.5)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport, verify=tls_context()
        )
        self._min_interval_s = 1.0 / max_requests_per_s if max_requests_per_s else 0.0
        self._next_request_at = 0.0
        self._pace_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _pace(self) -> None:
        if not self._min_interval_s:
            return
        with self._pace_lock:
            now = time.monotonic()
            wait_s = self._next_request_at - now
            self._next_request_at = max(now, self._next_request_at) + self._min_interval_s
        if wait_s > 0:
            time.sleep(wait_s)

    def _get(self, path: str, params: dict | None = None) -> httpx.Response:
        """A read with bounded retries on 429 (Retry-After), 5xx and connection errors."""

        def attempt() -> httpx.Response:
            self._pace()
            try:
                response = self._http.get(path, params=params)
            except httpx.TransportError as exc:
                raise Transient(type(exc).__name__) from None
            if response.status_code == 429 or response.status_code >= 500:
                raise Transient(f"HTTP {response.status_code}", retry_after_s(response.headers))
            return response

        try:
            return self._read_retry.call(attempt, sleep=self._sleep)
        except Transient as exc:
            raise HorizonUnavailable(f"GET {path}: {exc.problem}") from None

    def account(self, account_id: str) -> AccountInfo | None:
        response = self._get(f"/accounts/{account_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return _account(response.json())

    def latest_ledger(self) -> LedgerInfo:
        response = self._get("/ledgers", {"order": "desc", "limit": 1})
        response.raise_for_status()
        record = response.json()["_embedded"]["records"][0]
        return LedgerInfo(sequence=int(record["sequence"]), closed_at=_time(record["closed_at"]))

    def ledger_close_s(self, ledgers: int = 100) -> float | None:
        """The network's recent close interval, from Horizon's latest ledgers: the seconds
        between the oldest and the newest of them over the ledgers closed meanwhile. None when
        they span under 2 s (a close time has whole seconds only: too coarse to tell)."""
        response = self._get("/ledgers", {"order": "desc", "limit": ledgers})
        response.raise_for_status()
        try:
            records = response.json()["_embedded"]["records"]
            if len(records) < 2:
                return None
            newest, oldest = records[0], records[-1]
            span_s = (_time(newest["closed_at"]) - _time(oldest["closed_at"])).total_seconds()
            closed = int(newest["sequence"]) - int(oldest["sequence"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return None  # not ledger records: nothing to tell from
        if span_s < 2 or closed <= 0:
            return None
        return span_s / closed

    def transaction(self, tx_hash: str) -> TransactionInfo | None:
        return self.lookup(tx_hash).info

    def lookup(self, tx_hash: str) -> Lookup:
        """The transaction by hash (its own, or a fee bump's inner hash), with the answering
        Horizon's `Latest-Ledger` header (None when it sent none)."""
        response = self._get(f"/transactions/{tx_hash}")
        header = response.headers.get("Latest-Ledger", "").strip()
        latest = int(header) if header.isdigit() else None
        if response.status_code == 404:
            return Lookup(None, latest)
        response.raise_for_status()
        document = response.json()
        return Lookup(_transaction_info(document), latest)

    def history_elder_ledger(self) -> int | None:
        """The oldest ledger this Horizon's history holds (root `history_elder_ledger`)."""
        response = self._get("/")
        response.raise_for_status()
        value = response.json().get("history_elder_ledger")
        return int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else None

    def ledger(self, sequence: int) -> LedgerInfo | None:
        response = self._get(f"/ledgers/{sequence}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        record = response.json()
        return LedgerInfo(sequence=int(record["sequence"]), closed_at=_time(record["closed_at"]))

    def transactions(self, account_id: str, *, cursor: str | None = None, limit: int = 200) -> Iterator[dict]:
        """Every transaction of an account in ledger order (as source or touched), following
        the paging links from `cursor`."""
        params: dict = {"order": "asc", "limit": limit}
        if cursor:
            params["cursor"] = cursor
        while True:
            response = self._get(f"/accounts/{account_id}/transactions", params)
            if response.status_code == 404:
                return
            response.raise_for_status()
            records = response.json()["_embedded"]["records"]
            yield from records
            if len(records) < limit:
                return
            params["cursor"] = records[-1]["paging_token"]

    def submit(self, envelope_xdr: str) -> SubmitResult:
        """POST /transactions once. Never retried here: the caller resolves unknowns by hash
        and resubmits only the byte-identical envelope."""
        self._pace()
        try:
            response = self._http.post("/transactions", data={"tx": envelope_xdr})
        except httpx.TimeoutException:
            return SubmitResult(Outcome.UNKNOWN, reason="timed out waiting for Horizon")
        except httpx.TransportError as exc:
            return SubmitResult(Outcome.UNKNOWN, reason=f"connection lost ({type(exc).__name__})")
        if response.status_code == 200:
            document = response.json()
            return SubmitResult(
                Outcome.SUCCESS,
                tx_hash=document["hash"],
                ledger=int(document["ledger"]),
                closed_at=_time(document["created_at"]),
            )
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        extras = problem.get("extras") or {}
        if response.status_code == 400 and "result_codes" in extras:
            return SubmitResult(
                Outcome.FAILED,
                tx_hash=extras.get("hash"),
                result_codes=extras["result_codes"],
                reason=problem.get("title", "transaction failed"),
            )
        if response.status_code == 400:
            return SubmitResult(
                Outcome.FAILED, result_codes={"transaction": "tx_malformed"}, reason=problem.get("title", "bad request")
            )
        # 504 submission timeout, 429, 5xx, anything else: the network may still apply it
        return SubmitResult(
            Outcome.UNKNOWN,
            tx_hash=extras.get("hash"),
            reason=f"HTTP {response.status_code} {problem.get('title', '')}".strip(),
        )

    def payments(self, account_id: str, *, cursor: str | None = None, limit: int = 200) -> Iterator[dict]:
        """Every payment record of an account in ledger order, following the paging links."""
        params = {"order": "asc", "limit": limit, "join": "transactions"}
        if cursor:
            params["cursor"] = cursor
        while True:
            response = self._get(f"/accounts/{account_id}/payments", params)
            if response.status_code == 404:
                return
            response.raise_for_status()
            records = response.json()["_embedded"]["records"]
            yield from records
            if len(records) < limit:
                return
            params["cursor"] = records[-1]["paging_token"]

    def transaction_operations(self, tx_hash: str) -> list[dict]:
        """The operations of one transaction, in order (at most 100 per transaction)."""
        response = self._get(f"/transactions/{tx_hash}/operations", {"limit": 200, "order": "asc"})
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json()["_embedded"]["records"])

    def claimable_balance(self, balance_id: str) -> dict | None:
        """A live claimable balance as Horizon shows it; None once claimed (or never made)."""
        response = self._get(f"/claimable_balances/{balance_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def claimable_balance_operations(self, balance_id: str) -> list[dict]:
        """The operations that made and claimed a balance, in ledger order (they outlive it)."""
        response = self._get(f"/claimable_balances/{balance_id}/operations", {"limit": 200, "order": "asc"})
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json()["_embedded"]["records"])


def _transaction_info(document: dict) -> TransactionInfo:
    inner = document.get("inner_transaction") or {}
    return TransactionInfo(
        tx_hash=document["hash"],
        successful=bool(document["successful"]),
        ledger=int(document["ledger"]),
        closed_at=_time(document["created_at"]),
        source_account=document["source_account"],
        source_sequence=int(document["source_account_sequence"]),
        memo_type=document.get("memo_type", "none"),
        memo=document.get("memo"),
        inner_hash=inner.get("hash"),
        fee_charged_stroops=int(document["fee_charged"]) if str(document.get("fee_charged", "")).isdigit() else None,
    )
