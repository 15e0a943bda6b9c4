"""The sandbox's Stellar chain model: accounts, a transaction queue, and ledgers that close on a clock.

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

The checks at submission live in `validation`, applying an included transaction in
`application`, and the Horizon document of it in `records`.

Amounts are integers of 10^-7 (stroops for XLM, units for credit assets) everywhere in here.
"""

import threading
import time
from collections.abc import Callable

from stellar_sdk import (
    FeeBumpTransactionEnvelope,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr

from payouts.sandbox.application import apply_transaction
from payouts.sandbox.entries import (
    Accepted,
    Account,
    ClosedLedger,
    LedgerHeader,
    OpRecord,
    Trustline,
    TxRecord,
    format_amount,
    rfc3339,
    toid,
)
from payouts.sandbox.network import BASE_FEE_STROOPS, SANDBOX_NETWORK_PASSPHRASE, TOTAL_COINS_STROOPS, root_keypair
from payouts.sandbox.records import transaction_record, tx_participants
from payouts.sandbox.validation import EnvelopeMalformed, PendingTx, SubmissionRejected, check_bounds, check_valid
from payouts.sandbox.xdr_fields import fee_meta_xdr, header_hash_hex, tx_set_hash_hex

#: A queue that holds this many ledgers' worth of operations is full: newcomers must outbid.
QUEUE_LEDGERS = 4


# --------------------------------------------------------------------------------------------
# The chain


class Chain:
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
        #: when set, called after each close with the ledger's sequence and the state, before
        #: the close, of every account its transactions could touch (None: did not exist)
        self.pre_state_sink: Callable[[int, dict[str, Account | None]], None] | None = None
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
        genesis = LedgerHeader(1, now, BASE_FEE_STROOPS, max_ops=self.ops_per_ledger)
        genesis.hash_hex = header_hash_hex(genesis)
        self.headers.append(genesis)

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

    def submit(self, envelope_xdr: str, *, delay_ledgers: int = 0) -> Accepted:
        """Check a signed envelope and queue it. Raises EnvelopeMalformed or SubmissionRejected;
        an already-included or already-queued hash is accepted again as a duplicate."""
        envelope = self.decode(envelope_xdr)
        hash_hex = envelope.hash_hex()
        with self.lock:
            if self.transaction(hash_hex) is not None or hash_hex in self.queue:
                return Accepted(hash_hex, duplicate=True)
            pending = check_valid(self, envelope, envelope_xdr, hash_hex, arrival=self._arrivals + 1)
            self._arrivals = pending.arrival
            self._make_room(pending)
            pending.not_before_ledger = self.latest.sequence + 1 + delay_ledgers
            self.queue[hash_hex] = pending
            self.dropped.pop(hash_hex, None)
            return Accepted(hash_hex)

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
                    check_bounds(
                        pending.transaction,
                        lambda code, _fee_bump=pending.fee_bump, **_: SubmissionRejected(code, fee_bump=_fee_bump),
                        next_ledger=seq,
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
                fee_pool_stroops=self.latest.fee_pool_stroops,
                tx_set_hash_hex=tx_set_hash_hex([p.hash_hex for p in chosen]),
            )
            if self.pre_state_sink is not None:
                wanted = set().union(*(tx_participants(p) for p in chosen)) if chosen else set()
                before = {a: (self.accounts[a].clone() if a in self.accounts else None) for a in wanted}
            touched: set[str] = set()
            records: list[TxRecord] = []
            op_records: list[OpRecord] = []
            # Fees and sequence numbers first, for every transaction of the set (as core does),
            # so a transaction that fails later still pays and consumes its sequence.
            fees: dict[str, int] = {}
            fee_metas: dict[str, str] = {}
            for pending in chosen:
                fee_ops = pending.op_count + 1 if pending.fee_bump else pending.op_count
                fee_source = self.accounts[pending.fee_source_id]
                fee = min(charged_per_op * fee_ops, pending.fee_bid_stroops, fee_source.balance_stroops)
                fee_metas[pending.hash_hex] = fee_meta_xdr(fee_source, fee_stroops=fee, ledger_seq=seq)
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
                tx_code, op_results, op_docs, changed = apply_transaction(
                    self.accounts, pending, seq, now_s, find_sponsor=self.claimable_sponsor
                )
                touched.update(changed)
                record = transaction_record(pending, seq, order, now_s, tx_code, op_results, fees[pending.hash_hex])
                record.doc["fee_meta_xdr"] = fee_metas[pending.hash_hex]
                records.append(record)
                for index, (doc, participants, effects) in enumerate(op_docs, start=1):
                    op_records.append(
                        OpRecord(
                            toid(seq, order, index),
                            pending.hash_hex,
                            record.successful,
                            now_s,
                            doc,
                            participants,
                            effects if record.successful else [],
                        )
                    )
                if record.successful:
                    header.successful_tx_count += 1
                    header.operation_count += pending.op_count
                else:
                    header.failed_tx_count += 1
                header.tx_set_operation_count += pending.op_count
            header.hash_hex = header_hash_hex(header)
            self._index(header, records, op_records)
            if self.pre_state_sink is not None:
                self.pre_state_sink(seq, before)
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

    def claimable_sponsor(self, balance_id: str) -> str | None:
        """The account that holds a live claimable balance."""
        return next((a.account_id for a in self.accounts.values() if balance_id in a.claimable), None)

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


__all__ = [
    "Accepted",
    "Account",
    "Chain",
    "ClosedLedger",
    "EnvelopeMalformed",
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
