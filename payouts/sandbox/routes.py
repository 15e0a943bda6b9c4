"""The sandbox's GET routes: single records, and collections paged as Horizon pages them
(see `paging`) or, with `Accept: text/event-stream`, streamed (see `streaming`)."""

from __future__ import annotations

import bisect
import re
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from stellar_sdk import StrKey

from payouts.sandbox import claimable, views
from payouts.sandbox.entries import OpRecord, TxRecord
from payouts.sandbox.paging import BadQuery, Collection, Key, Paging
from payouts.sandbox.replica import ReadView
from payouts.sandbox.streaming import stream

if TYPE_CHECKING:
    from payouts.sandbox.handler import Handler

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_COLLECTIONS = ("transactions", "operations", "payments", "effects")
#: collections of entries the sandbox's operations never create: always an empty page
_NEVER_HELD = ("offers", "trades", "liquidity_pools")


class Missing(LookupError):
    """The route exists but what it names does not (Horizon's 404)."""


def _tx_key(record: TxRecord) -> Key:
    return (record.paging_token, 0)


def _op_key(record: OpRecord) -> Key:
    return (record.toid, 0)


def _effect_key(effect: tuple[OpRecord, int, dict]) -> Key:
    return (effect[0].toid, effect[1])


class Router:
    """Answers one GET for a handler: a record, a page, or (with `Accept: text/event-stream`)
    a stream of a collection."""

    def __init__(self, handler: Handler, view: ReadView) -> None:
        self.handler = handler
        self.view = view
        self.chain = view.chain
        self.base = handler.base

    def answer(self, path: str, query: dict[str, list[str]]) -> None:
        try:
            self._route(path.rstrip("/") or "/", query)
        except BadQuery as exc:
            self.handler._problem(views.bad_request(exc.field, exc.reason))
        except Missing:
            self.handler._problem(views.not_found())

    # ---- dispatch ----

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        parts = path.strip("/").split("/") if path != "/" else []
        handler = self.handler
        if not parts:
            with self.chain.lock:
                return handler._send(
                    200, views.root(self.base, self.chain, self.view.latest(), self.view.elder_ledger())
                )
        head, rest = parts[0], parts[1:]
        if head == "fee_stats" and not rest:
            with self.chain.lock:
                return handler._send(200, views.fee_stats(self.chain))
        if head == "friendbot" and not rest:
            return handler._friendbot(query)
        if len(rest) > 2 and not (head == "accounts" and len(rest) == 3 and rest[1] == "data"):
            raise Missing()
        if head == "ledgers":
            if not rest:
                return self._collection(self._ledgers(query), query)
            sequence = self._ledger_sequence(rest[0])
            if len(rest) == 1:
                header = self.view.header(sequence)
                if header is None:
                    raise Missing()
                return handler._send(200, views.ledger_record(self.base, header))
            return self._nested(f"/ledgers/{sequence}", rest[1], query, self._ledger_range(sequence))
        if head == "transactions":
            if not rest:
                return self._collection(self._transactions(query, "/transactions", self._all_txs), query)
            record = self._transaction(rest[0], on_missing=handler.sandbox.lookup_missed if len(rest) == 1 else None)
            if len(rest) == 1:
                return handler._send(200, views.transaction(self.base, record))
            start = record.paging_token
            return self._nested(
                f"/transactions/{record.hash_hex}", rest[1], query, (start, start + (1 << 12)), transactions=False
            )
        if head == "operations":
            if not rest:
                return self._collection(self._operations(query, "/operations", self._all_ops), query)
            op = self._operation(rest[0])
            if len(rest) == 1:
                return handler._send(200, views.operation(self.base, op))
            if rest[1] != "effects":
                raise Missing()
            return self._collection(
                self._effects(query, f"/operations/{op.toid}", lambda: [op], account_id=None), query
            )
        if head in ("payments", "effects") and not rest:
            source = self._all_ops
            if head == "payments":
                return self._collection(self._operations(query, "/payments", source, payments=True), query)
            return self._collection(self._effects(query, "/effects", source, account_id=None), query)
        if head == "claimable_balances":
            return self._claimable(rest, query)
        if head in _NEVER_HELD and not rest:
            return self._collection(self._empty(f"/{head}"), query)
        if head == "accounts" and rest:
            return self._account(rest[0], rest[1:], query)
        raise Missing()

    def _claimable(self, rest: list[str], query: dict[str, list[str]]) -> None:
        """Live claimable balances (filtered by claimant, sponsor or asset), one by id, and
        the operations that made or claimed one (they outlive it)."""
        if not rest:
            for name in ("claimant", "sponsor"):
                value = (query.get(name) or [""])[0]
                if value and not StrKey.is_valid_ed25519_public_key(value):
                    raise BadQuery(name, "Account ID must start with `G` and contain 56 alphanum characters")
            # a balance's paging token is "<last modified ledger>-<id>", not a number
            try:
                cursor = claimable.parse_cursor((query.get("cursor") or [""])[0])
            except ValueError:
                raise BadQuery("cursor", "cursor: must be <ledger>-<balance id>") from None
            paging = Paging.parse({k: v for k, v in query.items() if k != "cursor"}, self.view)
            with self.chain.lock:
                found = [
                    (claimable.sort_key(balance), claimable.record(self.base, balance, sponsor_id))
                    for balance, sponsor_id in claimable.all_balances(self.chain.accounts)
                    if claimable.matches(balance, sponsor_id, query)
                ]
            if paging.order == "desc":
                found.reverse()
            if cursor is not None:
                after = paging.order == "asc"
                found = [item for item in found if item[0] != cursor and (item[0] > cursor) == after]
            records = [record for _key, record in found[: paging.limit]]
            filters = "".join(
                f"{name}={query[name][0]}&" for name in ("claimant", "sponsor", "asset") if query.get(name)
            )
            here = f"{self.base}/claimable_balances?{filters}"
            first = records[0]["paging_token"] if records else ""
            last = records[-1]["paging_token"] if records else ""
            reverse = "desc" if paging.order == "asc" else "asc"
            return self.handler._send(
                200,
                views.page(
                    f"{here}limit={paging.limit}&order={paging.order}",
                    f"{here}cursor={last}&limit={paging.limit}&order={paging.order}",
                    f"{here}cursor={first}&limit={paging.limit}&order={reverse}",
                    records,
                ),
            )
        balance_id = claimable.canonical_balance_id(rest[0])
        if balance_id is None:
            raise BadQuery("id", "Invalid claimable balance ID")
        if len(rest) == 1:
            with self.chain.lock:
                sponsor_id = self.chain.claimable_sponsor(balance_id)
                if sponsor_id is None:
                    raise Missing()
                balance = self.chain.accounts[sponsor_id].claimable[balance_id]
                return self.handler._send(200, claimable.record(self.base, balance, sponsor_id))
        if rest[1] != "operations":
            raise Missing()

        def ops() -> list[OpRecord]:
            return [op for op in self.chain.operations if _concerns_balance(op, balance_id)]

        path = f"/claimable_balances/{balance_id}/operations"
        return self._collection(self._operations(query, path, ops), query)

    def _collection(self, collection: Collection, query: dict[str, list[str]]) -> None:
        if "text/event-stream" in self.handler.headers.get("Accept", ""):
            last_event_id = self.handler.headers.get("Last-Event-ID") or None
            paging = Paging.parse(query, self.view, last_event_id=last_event_id)
            return stream(self.handler, self.view, collection, paging)
        paging = Paging.parse(query, self.view)
        records = collection.page(self.view, paging)
        self.handler._send(200, collection.document(self.base, paging, records))

    # ---- records ----

    def _ledger_sequence(self, text: str) -> int:
        if not text.isdigit() or int(text) >= 1 << 31:
            raise BadQuery("ledger_id", "Ledger ID must be a positive integer")
        return int(text)

    def _transaction(self, text: str, *, on_missing: Callable[[str], None] | None = None) -> TxRecord:
        hash_hex = text.lower()
        if not _HASH_RE.match(hash_hex):
            raise BadQuery("tx_id", "Transaction hash must be a hex-encoded, lowercase SHA-256 hash")
        record = self.view.transaction(hash_hex)
        if record is None:
            if on_missing is not None:
                on_missing(hash_hex)  # the answer stays "not found", whatever happens meanwhile
            raise Missing()
        return record

    def _operation(self, text: str) -> OpRecord:
        if not text.isdigit() or int(text) >= 1 << 63:
            raise BadQuery("id", "id: must be an operation id")
        op_id = int(text)
        with self.chain.lock:
            operations = self.chain.operations
            index = bisect.bisect_left(operations, op_id, key=lambda op: op.toid)
            if index == len(operations) or operations[index].toid != op_id or op_id >= self.view.token_limit():
                raise Missing()
            return operations[index]

    def _account(self, account_id: str, rest: list[str], query: dict[str, list[str]]) -> None:
        if not StrKey.is_valid_ed25519_public_key(account_id):
            raise BadQuery("account_id", "invalid address")
        if not rest:
            entry = self.view.account(account_id)
            if entry is None:
                raise Missing()
            return self.handler._send(200, views.account(self.base, entry))
        sub = rest[0]
        if sub == "data" and len(rest) == 2:
            entry = self.view.account(account_id)
            name = urllib.parse.unquote(rest[1])
            if entry is None or name not in entry.data:
                raise Missing()
            return self.handler._send(200, views.data_entry(entry.data[name]))
        if len(rest) == 1 and sub in ("offers", "trades"):
            if self.view.account(account_id) is None:
                raise Missing()
            return self._collection(self._empty(f"/accounts/{account_id}/{sub}"), query)
        if len(rest) > 1 or sub not in _COLLECTIONS:
            raise Missing()
        path = f"/accounts/{account_id}/{sub}"
        chain = self.chain

        def ops() -> list[OpRecord]:
            return [chain.operations[i] for i in chain.ops_by_account.get(account_id, [])]

        Paging.parse(query, self.view)  # a bad parameter is a 400 even for an unknown account
        with chain.lock:
            known = account_id in chain.ops_by_account or account_id in chain.txs_by_account
            if not known and self.view.account(account_id) is None:
                raise Missing()
        if sub == "transactions":

            def txs() -> list[TxRecord]:
                return [chain.transactions[h] for h in chain.txs_by_account.get(account_id, [])]

            return self._collection(self._transactions(query, path, txs), query)
        if sub == "effects":
            return self._collection(self._effects(query, path, ops, account_id=account_id), query)
        return self._collection(self._operations(query, path, ops, payments=sub == "payments"), query)

    # ---- collections ----

    def _ledgers(self, query: dict[str, list[str]]) -> Collection:
        base, chain = self.base, self.chain
        return Collection(
            "/ledgers",
            "",
            lambda: chain.headers,
            lambda header: (header.sequence << 32, 0),
            lambda header: views.ledger_record(base, header),
        )

    def _empty(self, path: str) -> Collection:
        """A collection of what the sandbox never has (offers, trades, pools, claimable balances)."""
        return Collection(path, "", list, lambda item: (0, 0), dict)

    def _all_txs(self) -> list[TxRecord]:
        return [self.chain.transactions[h] for h in self.chain.tx_order]

    def _all_ops(self) -> list[OpRecord]:
        return self.chain.operations

    def _ledger_range(self, sequence: int) -> tuple[int, int]:
        if self.view.header(sequence) is None:
            raise Missing()
        return (sequence << 32, (sequence + 1) << 32)

    def _nested(
        self, path: str, sub: str, query: dict[str, list[str]], span: tuple[int, int], *, transactions: bool = True
    ) -> None:
        """A ledger's or a transaction's transactions, operations, payments or effects."""
        low, high = span
        chain = self.chain

        def ops() -> list[OpRecord]:
            operations = chain.operations
            start = bisect.bisect_left(operations, low, key=lambda op: op.toid)
            end = bisect.bisect_left(operations, high, key=lambda op: op.toid)
            return operations[start:end]

        if sub == "transactions" and transactions:

            def txs() -> list[TxRecord]:
                return [t for t in self._all_txs() if low <= t.paging_token < high]

            return self._collection(self._transactions(query, f"{path}/transactions", txs), query)
        if sub in ("operations", "payments"):
            return self._collection(
                self._operations(query, f"{path}/{sub}", ops, payments=sub == "payments", nested=True), query
            )
        if sub == "effects":
            return self._collection(self._effects(query, f"{path}/effects", ops, account_id=None), query)
        raise Missing()

    @staticmethod
    def _include_failed(query: dict[str, list[str]]) -> bool:
        text = query.get("include_failed", ["false"])[-1]
        if text not in ("true", "false", ""):
            raise BadQuery("include_failed", "include_failed: must be true or false")
        return text == "true"

    def _transactions(self, query: dict[str, list[str]], path: str, source: Callable[[], list[TxRecord]]) -> Collection:
        include_failed = self._include_failed(query)
        base = self.base

        def items() -> list[TxRecord]:
            records = source()
            return records if include_failed else [t for t in records if t.successful]

        return Collection(
            path,
            "include_failed=true&" if include_failed else "",
            items,
            _tx_key,
            lambda record: views.transaction(base, record),
        )

    def _operations(
        self,
        query: dict[str, list[str]],
        path: str,
        source: Callable[[], list[OpRecord]],
        *,
        payments: bool = False,
        nested: bool = False,
    ) -> Collection:
        # a transaction's or a ledger's operations include failed ones, as Horizon's do
        include_failed = nested or self._include_failed(query)
        join = query.get("join", [""])[-1]
        if join not in ("", "transactions"):
            raise BadQuery("join", "join: only transactions can be joined")
        base, chain = self.base, self.chain

        def items() -> list[OpRecord]:
            return [op for op in source() if (include_failed or op.successful) and (not payments or op.is_payment)]

        def render(op: OpRecord) -> dict:
            record = views.operation(base, op)
            if join == "transactions":  # Horizon's join: each operation carries its transaction
                record["transaction"] = views.transaction(base, chain.transactions[op.tx_hash_hex])
            return record

        link_query = ("include_failed=true&" if include_failed and not nested else "") + (
            "join=transactions&" if join else ""
        )
        return Collection(path, link_query, items, _op_key, render)

    def _effects(
        self, query: dict[str, list[str]], path: str, source: Callable[[], list[OpRecord]], *, account_id: str | None
    ) -> Collection:
        base = self.base

        def items() -> list[tuple[OpRecord, int, dict]]:
            found = []
            for op in source():
                for index, effect in enumerate(op.effects, start=1):
                    if account_id is None or effect["account"] == account_id:
                        found.append((op, index, effect))
            return found

        return Collection(path, "", items, _effect_key, lambda item: views.effect(base, *item))


def route_get(handler: Handler, view: ReadView) -> None:
    parsed = urllib.parse.urlsplit(handler.path)
    Router(handler, view).answer(parsed.path, urllib.parse.parse_qs(parsed.query))


def _concerns_balance(op: OpRecord, balance_id: str) -> bool:
    if op.doc.get("balance_id") == balance_id:
        return True
    return op.doc.get("type") == "create_claimable_balance" and any(
        effect.get("balance_id") == balance_id for effect in op.effects
    )
