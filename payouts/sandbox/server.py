"""The sandbox's HTTP face on loopback: submission (POST /transactions and
/transactions_async, friendbot) here; reads in `routes` (records, paged collections) and
`streaming` (server-sent events), as Horizon serves them.

`SandboxServer` owns a `Chain`, the view reads see (`replica`), a thread that closes ledgers
on an interval, the optional state folder and the fault plan. `running_sandbox()` starts one
on a free port for tests. Every error is an `application/problem+json` document; a handler
that breaks answers a 500 problem without a traceback.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import structlog
from stellar_sdk import Account as SdkAccount
from stellar_sdk import FeeBumpTransactionEnvelope, Payment, StrKey, TransactionBuilder

from payouts.sandbox import views
from payouts.sandbox.chain import Chain
from payouts.sandbox.entries import TxRecord
from payouts.sandbox.faults import FaultPlan, FaultSpec, SubmitFault
from payouts.sandbox.network import BASE_FEE_STROOPS, SANDBOX_NETWORK_PASSPHRASE, root_keypair
from payouts.sandbox.replica import ReadView
from payouts.sandbox.results import result_codes, transaction_result_xdr
from payouts.sandbox.routes import route_get
from payouts.sandbox.state import StateStore
from payouts.sandbox.validation import EnvelopeMalformed, SubmissionRejected

log = structlog.get_logger(__name__)

#: Bodies above this are refused unread; a 100-operation envelope is about 20 KB.
MAX_BODY_BYTES = 1024 * 1024
FRIENDBOT_STARTING_XLM = "10000"
#: what a POST body may be; Horizon answers anything else 415 unsupported_media_type
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


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


class _Dropped(Exception):
    """Close the connection without an answer (fault, or a restart under a waiting request)."""


class SandboxServer:
    def __init__(self, config: SandboxConfig | None = None, **overrides) -> None:
        if config is None:
            config = SandboxConfig(**overrides)
        self.config = config
        self.faults = FaultPlan(config.faults, config.seed)
        self.ledger = Chain(network_passphrase=config.network_passphrase, ops_per_ledger=config.ops_per_ledger)
        #: what reads see: the chain, or under the `lag` fault a replica behind it
        self.view = ReadView(self.ledger, lag_s=self.faults.spec.lag_s)
        self.faults.on_spec(lambda spec: self.view.set_lag(spec.lag_s))
        self.store: StateStore | None = None
        self.port = config.port
        self.generation = 0
        self.restarts = 0
        self._httpd: _HttpServer | None = None
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
                self.store.save_all(self.ledger)
            else:
                self.store.load_into(self.ledger)
        self._serve()
        if self.config.ledger_close_s > 0:
            self._closer = threading.Thread(target=self._close_loop, name="sandbox-ledger-close", daemon=True)
            self._closer.start()
        log.info(
            "sandbox.started",
            url=self.url,
            ledger=self.ledger.latest.sequence,
            state_dir=str(self.config.state_dir) if self.config.state_dir else None,
        )
        return self

    def _serve(self) -> None:
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        self._httpd = _HttpServer((self.config.host, self.port), handler)
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
        with self.ledger.lock:  # streams waiting for a ledger end now
            self.ledger.closed.notify_all()
        if self._closer is not None:
            self._closer.join(timeout=10)
        self._unserve()
        if self.store is not None:
            self.store.close()
        log.info("sandbox.stopped", ledger=self.ledger.latest.sequence)

    def restart(self) -> None:
        """Stop serving, forget the queue, reload the saved state, serve again on the same port.
        Waiting submitters lose their connection, as they would with a real restart."""
        with self._restart_lock:
            self._unserve()
            self.ledger.drop_queue()
            if self.store is not None:
                fresh = Chain(
                    network_passphrase=self.config.network_passphrase, ops_per_ledger=self.config.ops_per_ledger
                )
                self.store.load_into(fresh)
                with self.ledger.lock:
                    self.ledger.load(
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
            with self.ledger.lock:
                self.generation += 1
                self.ledger.closed.notify_all()
            log.info("sandbox.restarted", ledger=self.ledger.latest.sequence)

    def close_ledger(self):
        """Close one ledger now (also what the interval thread does) and save it."""
        with self._restart_lock:
            closed = self.ledger.close_ledger()
            if self.store is not None:
                self.store.append(
                    closed, network_passphrase=self.ledger.network_passphrase, clock_offset_s=self.ledger.clock_offset_s
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
        with self.ledger.lock:
            pending = self.ledger.queue.get(hash_hex)
            if pending is None or not self.faults.land_during_lookup_now():
                return
            pending.not_before_ledger = min(pending.not_before_ledger, self.ledger.latest.sequence + 1)
        self.close_ledger()  # takes the restart lock first: not under the ledger's lock

    def wait_for_ledger(self, sequence: int, timeout_s: float = 10.0) -> bool:
        with self.ledger.lock:
            return self.ledger.closed.wait_for(lambda: self.ledger.latest.sequence >= sequence, timeout_s)

    # ---- submission (used by the handler) ----

    def wait_for_outcome(self, hash_hex: str, timeout_s: float) -> TxRecord | SubmissionRejected | None:
        generation = self.generation
        ledger = self.ledger
        outcome: list = []

        def done() -> bool:
            if self.generation != generation:
                return True
            record = ledger.transaction(hash_hex)
            if record is not None:
                outcome.append(record)
                return True
            if hash_hex in ledger.dropped and hash_hex not in ledger.queue:
                outcome.append(ledger.dropped[hash_hex])
                return True
            return False

        with ledger.lock:
            finished = ledger.closed.wait_for(done, timeout_s)
        if self.generation != generation:
            raise _Dropped()
        return outcome[0] if finished and outcome else None

    def friendbot(self, account_id: str) -> str:
        """Fund a new account from the root account (a sandbox convenience, like testnet's)."""
        root = root_keypair(self.ledger.network_passphrase)
        with self.ledger.lock:
            root_entry = self.ledger.accounts[root.public_key]
            pending = sum(1 for p in self.ledger.queue.values() if p.source_id == root.public_key)
            tx = (
                TransactionBuilder(
                    SdkAccount(root.public_key, root_entry.seq_num + pending),
                    self.ledger.network_passphrase,
                    base_fee=BASE_FEE_STROOPS * 10,
                )
                .append_create_account_op(account_id, FRIENDBOT_STARTING_XLM)
                .set_timeout(60)
                .build()
            )
            tx.sign(root)
            envelope_xdr = tx.to_xdr()
            self.ledger.submit(envelope_xdr)
        return envelope_xdr


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args, **kwargs) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request_thread(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def drop_open_connections(self) -> None:
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request, client_address) -> None:
        # a client that went away mid-answer is not the server's problem; stay quiet
        log.debug("sandbox.connection_error", client=client_address[0])


class _Handler(BaseHTTPRequestHandler):
    sandbox: SandboxServer  # set on the subclass made per server
    protocol_version = "HTTP/1.1"
    server_version = "tft-payouts-sandbox"
    # headers and body go out in two writes: without TCP_NODELAY each answer waits for the
    # client's delayed ACK (about 40 ms a request)
    disable_nagle_algorithm = True
    #: the `Latest-Ledger` header of the answer being served
    _latest_ledger = 0

    def log_message(self, format: str, *args) -> None:
        # one line per request would drown the operator's terminal at 1,000 payments a second
        pass

    # ---- plumbing ----

    @property
    def base(self) -> str:
        host = self.headers.get("Host") or f"{self.sandbox.config.host}:{self.sandbox.port}"
        if not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,100}", host):
            host = f"{self.sandbox.config.host}:{self.sandbox.port}"
        return f"http://{host}"

    def _send(self, status: int, document: dict, *, problem: bool = False) -> None:
        body = orjson.dumps(document)
        self.send_response(status)
        self.send_header(
            "Content-Type",
            "application/problem+json; charset=utf-8" if problem else "application/hal+json; charset=utf-8",
        )
        self.send_header("Content-Length", str(len(body)))
        # as Horizon: the newest ledger this server had ingested when the request came in (taken
        # before the request is served, so a "not found" is never claimed for a later ledger)
        self.send_header("Latest-Ledger", str(self._latest_ledger))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _problem(self, document: dict) -> None:
        self._send(document["status"], document, problem=True)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _guard(self, action: Callable[[], None]) -> None:
        self._latest_ledger = self.sandbox.view.visible_sequence()
        if self.command != "POST" and self.headers.get("Content-Length", "0").strip() not in ("", "0"):
            # a body nobody reads would be taken for the next request on this connection
            self.close_connection = True
        try:
            action()
        except _Dropped:
            self._drop()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:
            log.exception("sandbox.request_failed", path=self.path[:200])
            self.close_connection = True
            try:
                self._problem(
                    views.problem(
                        500, "server_error", "Internal Server Error", "An error occurred while processing this request."
                    )
                )
            except OSError:
                pass

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def do_PUT(self) -> None:
        self._guard(self._not_allowed)

    do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_PUT

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._problem(
            views.problem(
                405, "method_not_allowed", "Method Not Allowed", "This resource does not support the method used."
            )
        )

    # ---- GET ----

    def _get(self) -> None:
        route_get(self, self.sandbox.view)

    def _friendbot(self, query: dict) -> None:
        account_id = query.get("addr", [""])[-1]
        if not StrKey.is_valid_ed25519_public_key(account_id):
            return self._problem(views.bad_request("addr", "addr: must be a G... account id"))
        if self.sandbox.ledger.account(account_id) is not None:
            return self._problem(views.bad_request("addr", "account already funded"))
        envelope_xdr = self.sandbox.friendbot(account_id)
        hash_hex = self.sandbox.ledger.decode(envelope_xdr).hash_hex()
        self._answer_included(hash_hex, envelope_xdr, fault=None)

    # ---- POST ----

    def _read_form(self) -> dict | None:
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type and media_type not in FORM_MEDIA_TYPES:
            self.close_connection = True  # the body is left unread
            self._problem(views.unsupported_media_type())
            return None
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._problem(views.bad_request("tx", "a Content-Length header is required"))
            return None
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            # the body is left unread, so this connection cannot carry another request
            self.close_connection = True
            self._problem(views.bad_request("tx", f"request body larger than {MAX_BODY_BYTES} bytes"))
            return None
        body = self.rfile.read(length)
        try:
            return urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            self._problem(views.bad_request("tx", "the body must be application/x-www-form-urlencoded"))
            return None

    def _post(self) -> None:
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if path not in ("/transactions", "/transactions_async"):
            form = self._read_form()  # keep the connection usable
            if form is not None:
                self._problem(views.not_found())
            return
        form = self._read_form()
        if form is None:
            return
        envelope_xdr = (form.get("tx") or [""])[-1].strip()
        if not envelope_xdr:
            return self._problem(views.bad_request("tx", "tx: required, a base64 transaction envelope"))
        if path == "/transactions":
            self._submit_sync(envelope_xdr)
        else:
            self._submit_async(envelope_xdr)

    def _submit_sync(self, envelope_xdr: str) -> None:
        sandbox, ledger = self.sandbox, self.sandbox.ledger
        try:
            envelope = ledger.decode(envelope_xdr)
        except EnvelopeMalformed:
            return self._problem(views.transaction_malformed(envelope_xdr))
        hash_hex = envelope.hash_hex()
        known = sandbox.view.transaction(hash_hex)
        if known is not None:  # Horizon answers an included hash from its database
            return self._answer_record(known)
        if ledger.transaction(hash_hex) is not None:  # included, but not yet in the lagging view
            return self._problem(views.submission_timeout(hash_hex, envelope_xdr))
        fault = None if hash_hex in ledger.queue else sandbox.faults.next_submit_fault(pays=_pays(envelope))
        if fault is None and sandbox.view.lagging:
            fault = SubmitFault.timeout_after_apply  # the replica never sees it in time
        if fault is SubmitFault.congestion:
            return self._congested(envelope, envelope_xdr)
        if fault is SubmitFault.timeout_without_apply:
            return self._problem(views.submission_timeout(hash_hex, envelope_xdr))
        delay = sandbox.faults.spec.delay_ledgers if fault is SubmitFault.delay else 0
        try:
            ledger.submit(envelope_xdr, delay_ledgers=delay)
        except EnvelopeMalformed:
            return self._problem(views.transaction_malformed(envelope_xdr))
        except SubmissionRejected as exc:
            return self._problem(views.transaction_failed(envelope_xdr, exc.result_xdr, exc.result_codes))
        self._answer_included(hash_hex, envelope_xdr, fault)

    def _answer_included(self, hash_hex: str, envelope_xdr: str, fault: SubmitFault | None) -> None:
        outcome = self.sandbox.wait_for_outcome(hash_hex, self.sandbox.config.submission_timeout_s)
        if outcome is None:
            return self._problem(views.submission_timeout(hash_hex, envelope_xdr))
        if isinstance(outcome, SubmissionRejected):
            return self._problem(views.transaction_failed(envelope_xdr, outcome.result_xdr, outcome.result_codes))
        if fault is SubmitFault.timeout_after_apply:
            return self._problem(views.submission_timeout(hash_hex, envelope_xdr))
        if fault is SubmitFault.drop_after_apply:
            raise _Dropped()
        self._answer_record(outcome)

    def _answer_record(self, record: TxRecord) -> None:
        if record.successful:
            return self._send(200, views.transaction(self.base, record))
        self._problem(
            views.transaction_failed(record.doc["envelope_xdr"], record.doc["result_xdr"], record.result_codes)
        )

    def _congested(self, envelope, envelope_xdr: str) -> None:
        """The congestion fault: refuse as a full queue would, asking for ten times the base fee."""
        rejected = _insufficient_fee(envelope)
        self._problem(views.transaction_failed(envelope_xdr, rejected[0], rejected[1]))

    def _submit_async(self, envelope_xdr: str) -> None:
        sandbox, ledger = self.sandbox, self.sandbox.ledger
        try:
            envelope = ledger.decode(envelope_xdr)
        except EnvelopeMalformed:
            return self._problem(views.transaction_malformed(envelope_xdr))
        hash_hex = envelope.hash_hex()
        if ledger.transaction(hash_hex) is not None or hash_hex in ledger.queue:
            return self._send(409, {"tx_status": "DUPLICATE", "hash": hash_hex})
        fault = sandbox.faults.next_submit_fault(pays=_pays(envelope))
        if fault is SubmitFault.congestion:
            result_xdr, _ = _insufficient_fee(envelope)
            return self._send(400, {"tx_status": "ERROR", "hash": hash_hex, "error_result_xdr": result_xdr})
        if fault is SubmitFault.timeout_without_apply:
            return self._send(503, {"tx_status": "TRY_AGAIN_LATER", "hash": hash_hex})
        delay = sandbox.faults.spec.delay_ledgers if fault is SubmitFault.delay else 0
        try:
            ledger.submit(envelope_xdr, delay_ledgers=delay)
        except EnvelopeMalformed:
            return self._problem(views.transaction_malformed(envelope_xdr))
        except SubmissionRejected as exc:
            return self._send(400, {"tx_status": "ERROR", "hash": hash_hex, "error_result_xdr": exc.result_xdr})
        if fault is SubmitFault.drop_after_apply:
            raise _Dropped()
        # Horizon's asynchronous handler never waits, so it never answers 504: the
        # 504-after-apply fault is the plain PENDING answer here.
        self._send(201, {"tx_status": "PENDING", "hash": hash_hex})


def _pays(envelope) -> bool:
    """Does the transaction (or the one a fee bump wraps) carry a payment operation?"""
    fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
    tx = envelope.transaction.inner_transaction_envelope.transaction if fee_bump else envelope.transaction
    return any(isinstance(op, Payment) for op in tx.operations)


def _insufficient_fee(envelope) -> tuple[str, dict]:
    fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
    tx = envelope.transaction.inner_transaction_envelope.transaction if fee_bump else envelope.transaction
    fee_ops = len(tx.operations) + (1 if fee_bump else 0)
    required = max(BASE_FEE_STROOPS * 10 * max(fee_ops, 1), (envelope.transaction.fee + 1))
    inner_hash = envelope.transaction.inner_transaction_envelope.hash() if fee_bump else None
    result_xdr = transaction_result_xdr(
        fee_charged_stroops=required, tx_code="tx_insufficient_fee", inner_hash=inner_hash
    )
    return result_xdr, result_codes("tx_insufficient_fee", None, fee_bump=False)


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
    Horizon URL, `server.ledger` the model, `server.faults` the fault plan."""
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
