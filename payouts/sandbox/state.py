"""Crash-safe persistence of the sandbox ledger in one SQLite file (`<state dir>/ledger.sqlite3`).

Each closed ledger is written in one SQLite transaction (accounts it touched, its header, its
transactions and payments), so a crash leaves the previous ledger intact. The transaction
queue is not saved: like stellar-core after a restart, queued transactions are forgotten and
clients resubmit the same bytes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from payouts.sandbox.chain import Chain
from payouts.sandbox.entries import Account, ClosedLedger, LedgerHeader, OpRecord, TxRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ledgers (sequence INTEGER PRIMARY KEY, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS transactions (paging_token INTEGER PRIMARY KEY, hash TEXT NOT NULL, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS operations (toid INTEGER PRIMARY KEY, doc BLOB NOT NULL);
"""


class StateStore:
    FILE_NAME = "ledger.sqlite3"

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / self.FILE_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def network_passphrase(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'network_passphrase'").fetchone()
        return row[0] if row else None

    def is_empty(self) -> bool:
        return self._db.execute("SELECT count(*) FROM ledgers").fetchone()[0] == 0

    def save_all(self, ledger: Chain) -> None:
        """Write the whole ledger (first start, or after loading an older file)."""
        with ledger.lock:
            accounts = [a.clone() for a in ledger.accounts.values()]
            headers = list(ledger.headers)
            records = [ledger.transactions[h] for h in ledger.tx_order]
            operations = list(ledger.operations)
            offset = ledger.clock_offset_s
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM accounts")
                self._db.execute("DELETE FROM ledgers")
                self._db.execute("DELETE FROM transactions")
                self._db.execute("DELETE FROM operations")
                self._write(accounts, headers, records, operations, ledger.network_passphrase, offset)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def append(self, closed: ClosedLedger, *, network_passphrase: str, clock_offset_s: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._write(
                    closed.accounts,
                    [closed.header],
                    closed.transactions,
                    closed.operations,
                    network_passphrase,
                    clock_offset_s,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _write(self, accounts, headers, records, operations, network_passphrase: str, offset: int) -> None:
        db = self._db
        db.executemany(
            "INSERT OR REPLACE INTO accounts VALUES (?, ?)",
            [(a.account_id, orjson.dumps(a.to_doc())) for a in accounts],
        )
        db.executemany(
            "INSERT OR REPLACE INTO ledgers VALUES (?, ?)", [(h.sequence, orjson.dumps(h.to_doc())) for h in headers]
        )
        db.executemany(
            "INSERT OR REPLACE INTO transactions VALUES (?, ?, ?)",
            [(r.paging_token, r.hash_hex, orjson.dumps(r.to_doc())) for r in records],
        )
        db.executemany(
            "INSERT OR REPLACE INTO operations VALUES (?, ?)", [(o.toid, orjson.dumps(o.to_doc())) for o in operations]
        )
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("network_passphrase", network_passphrase), ("clock_offset_s", str(offset))],
        )

    def load_into(self, ledger: Chain) -> None:
        with self._lock:
            db = self._db
            accounts = [Account.from_doc(orjson.loads(d)) for (d,) in db.execute("SELECT doc FROM accounts")]
            headers = [
                LedgerHeader.from_doc(orjson.loads(d))
                for (d,) in db.execute("SELECT doc FROM ledgers ORDER BY sequence")
            ]
            records = [
                TxRecord.from_doc(orjson.loads(d))
                for (d,) in db.execute("SELECT doc FROM transactions ORDER BY paging_token")
            ]
            operations = [
                OpRecord.from_doc(orjson.loads(d)) for (d,) in db.execute("SELECT doc FROM operations ORDER BY toid")
            ]
            row = db.execute("SELECT value FROM meta WHERE key = 'clock_offset_s'").fetchone()
        ledger.load(
            accounts=accounts,
            headers=headers,
            transactions=records,
            operations=operations,
            clock_offset_s=int(row[0]) if row else 0,
        )
