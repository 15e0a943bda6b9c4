"""What reads see: the chain as it stands, or, under the `lag` fault, a replica some seconds
behind it.

A lagging replica is what a Horizon behind a load balancer looks like when one of its
database replicas falls behind: a transaction that just landed is not found by hash yet, an
account still shows its old sequence number and balances, and lists end at an older ledger.
The view keeps, for each ledger closed within the lag, the state every account it could touch
had before the close; an account's state at the visible ledger is the oldest such state kept
after it, or the current one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from payouts.sandbox.chain import Chain
from payouts.sandbox.entries import Account, LedgerHeader, TxRecord


class ReadView:
    """The chain as reads see it. `lag_s=0` is the chain itself."""

    def __init__(self, chain: Chain, lag_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.chain = chain
        self.lag_s = 0.0
        #: history trimmed below this ledger (a Horizon with a retention window): lookups of
        #: older transactions answer 404 and the root names it as `history_elder_ledger`
        self.history_floor = 0
        self._clock = clock
        self._closed_at: dict[int, float] = {}
        self._before: deque[tuple[int, dict[str, Account | None]]] = deque()
        self.set_lag(lag_s)

    def set_lag(self, lag_s: float) -> None:
        """Start (or stop, with 0) lagging; ledgers closed before this are all visible."""
        with self.chain.lock:
            self.lag_s = lag_s
            self.chain.pre_state_sink = self._closed if lag_s > 0 else None
            if lag_s <= 0:
                self._closed_at.clear()
                self._before.clear()

    @property
    def lagging(self) -> bool:
        return self.lag_s > 0

    def _closed(self, sequence: int, before: dict[str, Account | None]) -> None:
        # called by the chain, under its lock, after each close
        self._closed_at[sequence] = self._clock()
        self._before.append((sequence, before))
        visible = self.visible_sequence()
        while self._before and self._before[0][0] <= visible:
            self._closed_at.pop(self._before.popleft()[0], None)

    def visible_sequence(self) -> int:
        """The newest ledger reads may see."""
        with self.chain.lock:
            latest = self.chain.latest.sequence
            if not self.lagging:
                return latest
            horizon = self._clock() - self.lag_s
            sequence = latest
            while sequence > 1 and self._closed_at.get(sequence, horizon) > horizon:
                sequence -= 1
            return sequence

    def latest(self) -> LedgerHeader:
        with self.chain.lock:
            return self.header(self.visible_sequence()) or self.chain.latest

    def header(self, sequence: int) -> LedgerHeader | None:
        with self.chain.lock:
            headers = self.chain.headers
            if sequence > self.visible_sequence() or sequence < headers[0].sequence:
                return None
            index = sequence - headers[0].sequence
            if index < len(headers) and headers[index].sequence == sequence:
                return headers[index]
            return next((h for h in headers if h.sequence == sequence), None)

    def account(self, account_id: str) -> Account | None:
        with self.chain.lock:
            if self.lagging:
                visible = self.visible_sequence()
                for sequence, before in self._before:
                    if sequence > visible and account_id in before:
                        found = before[account_id]
                        return found.clone() if found is not None else None
            return self.chain.account(account_id)

    def transaction(self, hash_hex: str) -> TxRecord | None:
        record = self.chain.transaction(hash_hex)
        if record is None or record.ledger_seq > self.visible_sequence() or record.ledger_seq < self.history_floor:
            return None
        return record

    def elder_ledger(self) -> int:
        """The oldest ledger reads can see (root `history_elder_ledger`)."""
        with self.chain.lock:
            return max(self.chain.headers[0].sequence, self.history_floor)

    def token_limit(self) -> int:
        """Paging tokens at or above this belong to ledgers reads may not see yet."""
        return (self.visible_sequence() + 1) << 32
