"""The sandbox's Horizon on loopback: the server's life (start, stop, restart, the ledger
close thread, saved state) and what requests ask of it (waiting for an outcome, friendbot).
The HTTP plumbing is in `handler`; submission (POST /transactions and /transactions_async)
in `submission`; reads in `routes` (records, paged collections) and `streaming`
(server-sent events), as Horizon serves them.

`SandboxServer` owns a `Chain`, the view reads see (`replica`), a thread that closes ledgers
on an interval, the optional state folder and the fault plan. `running_sandbox()` starts one
on a free port for tests. Every error is an `application/problem+json` document; a handler
that breaks answers a 500 problem without a traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from stellar_sdk import Account as SdkAccount
from stellar_sdk import TransactionBuilder

from payouts.sandbox.chain import Chain
from payouts.sandbox.entries import TxRecord
from payouts.sandbox.faults import FaultPlan, FaultSpec
from payouts.sandbox.handler import Handler, HttpServer
from payouts.sandbox.network import BASE_FEE_STROOPS, SANDBOX_NETWORK_PASSPHRASE, root_keypair
from payouts.sandbox.replica import ReadView
from payouts.sandbox.state import StateStore
from payouts.sandbox.submission import MAX_BODY_BYTES, Dropped
from payouts.sandbox.validation import SubmissionRejected

log = structlog.get_logger(__name__)

FRIENDBOT_STARTING_XLM = "10000"


@dataclass(frozen=True)
class SandboxConfig:
    port: int = 0
    state_dir: Path | None = None
    ledger_close_s: float = 5.0
    ops_per_ledger: int = 1000
    faults: FaultSpec | None = None
    seed: int | None = None
    submission_timeout_s: float = 30.0
    network_passphrase: str = SANDBOX_NETWORK_PASSPHRASE
    host: str = "127.0.0.1"
    #: an event stream with nothing to send writes a comment line this often
    keep_alive_s: float = 5.0


class SandboxServer:
    def __init__(self, config: SandboxConfig | None = None, **overrides) -> None:
        if config is None:
            config = SandboxConfig(**overrides)
        self.config = config
        self.faults = FaultPlan(config.faults, config.seed)
        self.chain = Chain(network_passphrase=config.network_passphrase, ops_per_ledger=config.ops_per_ledger)
        #: what reads see: the chain, or under the `lag` fault a replica behind it
        self.view = ReadView(self.chain, lag_s=self.faults.spec.lag_s)
        self.faults.on_spec(lambda spec: self.view.set_lag(spec.lag_s))
        self.store: StateStore | None = None
        self.port = config.port
        self.generation = 0
        self.restarts = 0
        self._httpd: HttpServer | None = None
        self._http_thread: threading.Thread | None = None
        self._closer: threading.Thread | None = None
        self.stopping = threading.Event()
        self._restart_lock = threading.Lock()

    # ---- lifecycle ----

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> SandboxServer:
        if self.config.state_dir is not None:
            self.store = StateStore(self.config.state_dir)
            saved = self.store.network_passphrase()
            if saved is not None and saved != self.config.network_passphrase:
                raise ValueError(f"state in {self.config.state_dir} belongs to network {saved!r}")
            if self.store.is_empty():
                self.store.save_all(self.chain)
            else:
                self.store.load_into(self.chain)
        self._serve()
        if self.config.ledger_close_s > 0:
            self._closer = threading.Thread(target=self._close_loop, name="sandbox-ledger-close", daemon=True)
            self._closer.start()
        log.info(
            "sandbox.started",
            url=self.url,
            ledger=self.chain.latest.sequence,
            state_dir=str(self.config.state_dir) if self.config.state_dir else None,
        )
        return self

    def _serve(self) -> None:
        handler = type("SandboxHandler", (Handler,), {"sandbox": self})
        self._httpd = HttpServer((self.config.host, self.port), handler)
        self.port = self._httpd.server_address[1]
        self._http_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        self._http_thread.start()

    def _unserve(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.drop_open_connections()
            self._httpd = None

    def stop(self) -> None:
        self.stopping.set()
        with self.chain.lock:  # streams waiting for a ledger end now
            self.chain.closed.notify_all()
        if self._closer is not None:
            self._closer.join(timeout=10)
        self._unserve()
        if self.store is not None:
            self.store.close()
        log.info("sandbox.stopped", ledger=self.chain.latest.sequence)

    def restart(self) -> None:
        """Stop serving, forget the queue, reload the saved state, serve again on the same port.
        Waiting submitters lose their connection, as they would with a real restart."""
        with self._restart_lock:
            self._unserve()
            self.chain.drop_queue()
            if self.store is not None:
                fresh = Chain(
                    network_passphrase=self.config.network_passphrase, ops_per_ledger=self.config.ops_per_ledger
                )
                self.store.load_into(fresh)
                with self.chain.lock:
                    self.chain.load(
                        accounts=list(fresh.accounts.values()),
                        headers=fresh.headers,
                        transactions=[fresh.transactions[h] for h in fresh.tx_order],
                        operations=fresh.operations,
                        clock_offset_s=fresh.clock_offset_s,
                    )
            self.restarts += 1
            self._serve()
            # only now wake the submitters still waiting on the old server: they lose their
            # connection, and a client that retries at once finds the new one listening
            with self.chain.lock:
                self.generation += 1
                self.chain.closed.notify_all()
            log.info("sandbox.restarted", ledger=self.chain.latest.sequence)

    def close_ledger(self):
        """Close one ledger now (also what the interval thread does) and save it."""
        with self._restart_lock:
            closed = self.chain.close_ledger()
            if self.store is not None:
                self.store.append(
                    closed, network_passphrase=self.chain.network_passphrase, clock_offset_s=self.chain.clock_offset_s
                )
            return closed

    def _close_loop(self) -> None:
        interval = self.config.ledger_close_s
        next_close = time.monotonic() + interval
        while not self.stopping.wait(max(0.0, next_close - time.monotonic())):
            next_close += interval
            try:
                self.close_ledger()
                if self.faults.restart_now():
                    self.restart()
            except Exception:
                log.exception("sandbox.ledger_close_failed")

    def lookup_missed(self, hash_hex: str) -> None:
        """A lookup by hash found nothing. Under the land_during_lookup fault a transaction still
        queued goes into a ledger closed now, before the 404 is sent: what a client sees when a
        ledger closes between its lookup and its next read."""
        with self.chain.lock:
            pending = self.chain.queue.get(hash_hex)
            if pending is None or not self.faults.land_during_lookup_now():
                return
            pending.not_before_ledger = min(pending.not_before_ledger, self.chain.latest.sequence + 1)
        self.close_ledger()  # takes the restart lock first: not under the chain's lock

    def wait_for_ledger(self, sequence: int, timeout_s: float = 10.0) -> bool:
        with self.chain.lock:
            return self.chain.closed.wait_for(lambda: self.chain.latest.sequence >= sequence, timeout_s)

    # ---- submission (used by the handler) ----

    def wait_for_outcome(self, hash_hex: str, timeout_s: float) -> TxRecord | SubmissionRejected | None:
        generation = self.generation
        chain = self.chain
        outcome: list = []

        def done() -> bool:
            if self.generation != generation:
                return True
            record = chain.transaction(hash_hex)
            if record is not None:
                outcome.append(record)
                return True
            if hash_hex in chain.dropped and hash_hex not in chain.queue:
                outcome.append(chain.dropped[hash_hex])
                return True
            return False

        with chain.lock:
            finished = chain.closed.wait_for(done, timeout_s)
        if self.generation != generation:
            raise Dropped()
        return outcome[0] if finished and outcome else None

    def friendbot(self, account_id: str) -> str:
        """Fund a new account from the root account (a sandbox convenience, like testnet's)."""
        root = root_keypair(self.chain.network_passphrase)
        with self.chain.lock:
            root_entry = self.chain.accounts[root.public_key]
            pending = sum(1 for p in self.chain.queue.values() if p.source_id == root.public_key)
            tx = (
                TransactionBuilder(
                    SdkAccount(root.public_key, root_entry.seq_num + pending),
                    self.chain.network_passphrase,
                    base_fee=BASE_FEE_STROOPS * 10,
                )
                .append_create_account_op(account_id, FRIENDBOT_STARTING_XLM)
                .set_timeout(60)
                .build()
            )
            tx.sign(root)
            envelope_xdr = tx.to_xdr()
            self.chain.submit(envelope_xdr)
        return envelope_xdr


@contextmanager
def running_sandbox(
    *,
    ledger_close_s: float = 0.1,
    ops_per_ledger: int = 1000,
    state_dir: Path | None = None,
    faults: str | FaultSpec | None = None,
    seed: int | None = 0,
    submission_timeout_s: float = 5.0,
    port: int = 0,
    network_passphrase: str = SANDBOX_NETWORK_PASSPHRASE,
    keep_alive_s: float = 5.0,
) -> Iterator[SandboxServer]:
    """A sandbox on a free loopback port for the length of the block: `server.url` is the
    Horizon URL, `server.chain` the model, `server.faults` the fault plan."""
    spec = FaultSpec.parse(faults) if isinstance(faults, str) or faults is None else faults
    server = SandboxServer(
        SandboxConfig(
            port=port,
            state_dir=state_dir,
            ledger_close_s=ledger_close_s,
            ops_per_ledger=ops_per_ledger,
            faults=spec,
            seed=seed,
            submission_timeout_s=submission_timeout_s,
            network_passphrase=network_passphrase,
            keep_alive_s=keep_alive_s,
        )
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["MAX_BODY_BYTES", "SandboxConfig", "SandboxServer", "running_sandbox"]
