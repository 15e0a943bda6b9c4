"""The sandbox's HTTP plumbing: a threading server that can drop its open connections (a
restart), and the request handler: Horizon's headers, problem documents, a 500 problem
without a traceback when a route breaks, GET routed to `routes` and POST to `submission`."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import orjson
import structlog
from stellar_sdk import StrKey

from payouts.sandbox import views
from payouts.sandbox.routes import route_get
from payouts.sandbox.submission import Dropped, answer_included, route_post

if TYPE_CHECKING:
    from payouts.sandbox.server import SandboxServer

log = structlog.get_logger(__name__)


class HttpServer(ThreadingHTTPServer):
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


class Handler(BaseHTTPRequestHandler):
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
        except Dropped:
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
        self._guard(lambda: route_post(self))

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
        if self.sandbox.chain.account(account_id) is not None:
            return self._problem(views.bad_request("addr", "account already funded"))
        envelope_xdr = self.sandbox.friendbot(account_id)
        hash_hex = self.sandbox.chain.decode(envelope_xdr).hash_hex()
        answer_included(self, hash_hex, envelope_xdr, fault=None)
