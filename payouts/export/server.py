"""The read-only web process (Procfile `web`): the published status site and live exports.

    GET /                      the published site (index.html, app.js, style.css, data/...)
    GET /export.json?...       the farmer export, streamed from the ledger (also /export.csv,
    GET /export.csv?...        /export.jsonl); filters: period, farm, node, address, receipt;
                               CSV columns: columns=farmer (default) or columns=full
    GET /healthz               "ok"

A Starlette application under Hypercorn. Only GET and HEAD; anything else is 405. Static files
carry an ETag, Last-Modified and `Cache-Control: no-cache` (revalidate, then 304). A malformed or
oversized query is a 400 with one line saying what is wrong; every other error page is one fixed
line: no path, no traceback, no ledger URL. The ledger is only read (a read-only transaction on
PostgreSQL).

Slow clients cannot tie the process up. Hypercorn's HTTP/1.1 idle timer starts when a connection
opens and stops only once a request's headers are complete (bytes arriving do not reset it), so
`header_timeout_s` is a deadline for the whole request head, however slowly it trickles in; it
is also the keep-alive timeout between requests. A request head is at most 16 KiB and 100
headers (431), a query at most MAX_QUERY_LENGTH characters and MAX_QUERY_FIELDS fields (400). A client that stops reading an
export is dropped after `send_timeout_s` without progress, which frees its ledger connection;
at most MAX_EXPORTS exports stream at once (more: 503 with Retry-After). Each request is logged
(`web.request`: method, path, status).
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import socket
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl

import anyio.to_thread
import structlog
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from payouts import CODE_VERSION
from payouts.export.rows import FARMER_FIELDS, FIELDS, ExportFilter, iso_utc, iter_entries, runs_document
from payouts.export.writers import EXPORT_FORMAT, write_csv, write_export
from payouts.ledger.db import make_engine
from payouts.ledger.types import utcnow
from payouts.periods import Period, PeriodError, offset_for_label

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_QUERY_LENGTH = 4096
MAX_QUERY_FIELDS = 50
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 64 * 1024  # a body is never used; this much is read off the connection
BODY_TIMEOUT_S = 5.0
HEADER_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 60.0
MAX_EXPORTS = 8  # exports streaming at once (each holds a ledger connection and a thread)
_CHUNK = 64 * 1024

_EXPORTS = {"json": "application/json", "csv": "text/csv", "jsonl": "application/x-ndjson"}
_PARAMETERS = ("period", "farm", "node", "address", "receipt", "columns")
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"server", b"payouts-web"),
]
_B32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_HEX = frozenset("0123456789abcdefABCDEF")


class BadQuery(ValueError):
    """A query the export cannot use; its one-line message is shown to the caller (it is theirs)."""


def _is_address(value: str) -> bool:
    return len(value) == 56 and value[0] == "G" and set(value) <= _B32


def _is_plain_number(value: str, digits: int) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= digits


def filters_from_query(query: str) -> ExportFilter:
    """`period=2025-11&farm=42&node=7&address=G...&receipt=HASH` -> ExportFilter, or BadQuery."""
    return parse_query(query)[0]


def parse_query(query: str) -> tuple[ExportFilter, tuple[str, ...]]:
    """The filters and the CSV columns (`columns=farmer`, the default, or `columns=full`)."""
    if len(query) > MAX_QUERY_LENGTH:
        raise BadQuery(f"the query is longer than {MAX_QUERY_LENGTH} characters")
    if query.count("&") + query.count(";") >= MAX_QUERY_FIELDS:
        raise BadQuery(f"the query has more than {MAX_QUERY_FIELDS} fields")
    try:
        pairs = parse_qsl(query, keep_blank_values=False, max_num_fields=MAX_QUERY_FIELDS, separator="&")
    except ValueError:
        raise BadQuery(f"the query has more than {MAX_QUERY_FIELDS} fields") from None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in _PARAMETERS:
            shown = name[:40] if name.isascii() and name.isprintable() else "(not plain text)"
            raise BadQuery(f"unknown parameter {shown}: use {', '.join(_PARAMETERS)}")
        params.setdefault(name, []).append(value.strip())

    def one(name: str) -> str | None:
        values = params.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise BadQuery(f"{name} is given more than once")
        return values[0]

    def number(name: str) -> int | None:
        value = one(name)
        if value is None:
            return None
        if not _is_plain_number(value, 12):
            raise BadQuery(f"{name} must be a number (digits 0-9, at most 12)")
        return int(value)

    period = one("period")
    period_offset = None
    if period is not None:
        try:
            if not period.isascii():
                raise PeriodError(period)
            period_offset = int(period) if _is_plain_number(period, 6) else offset_for_label(period)
            Period(period_offset).label  # noqa: B018 (validates the offset)
        except (PeriodError, ValueError, OverflowError):
            raise BadQuery("period must be a month like 2025-11 or a period offset like 91") from None
    addresses = tuple(params.get("address", []))
    if not all(_is_address(address) for address in addresses):
        raise BadQuery("address must be a Stellar public key (G..., 56 characters)")
    receipt = one("receipt")
    if receipt is not None and not (len(receipt) == 64 and set(receipt) <= _HEX):
        raise BadQuery("receipt must be a hash of 64 hex digits")
    columns = one("columns") or "farmer"
    if columns not in ("farmer", "full"):
        raise BadQuery("columns must be farmer or full")
    filters = ExportFilter(
        period_offset=period_offset,
        farm_id=number("farm"),
        node_id=number("node"),
        addresses=addresses,
        receipt_hash=receipt.lower() if receipt else None,
    )
    return filters, FARMER_FIELDS if columns == "farmer" else FIELDS


def _fixed(status: int, headers: dict[str, str] | None = None) -> PlainTextResponse:
    """A fixed one-line page: never the request path, a traceback or an internal name."""
    phrase = HTTPStatus(status).phrase
    return PlainTextResponse(f"{status} {phrase}\n", status_code=status, headers=headers)


def _problem(status: int, text: str) -> PlainTextResponse:
    return PlainTextResponse(text + "\n", status_code=status, headers={"Cache-Control": "no-store"})


# ---- the export stream ---------------------------------------------------------------------


class _Abandoned(Exception):
    """The reader of an export went away (or stopped reading for too long)."""


class _ChunkSink(io.StringIO):
    """Text from the export writers, handed to the response as UTF-8 chunks with back-pressure:
    the writer thread waits while the response is `depth` chunks behind, and gives up when
    nothing has been taken for `give_up_s` (or the response is gone)."""

    def __init__(self, give_up_s: float, depth: int = 4) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self.cancelled = threading.Event()
        self._parts: list[str] = []
        self._size = 0
        self._give_up_s = give_up_s

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= _CHUNK:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._parts:
            data = "".join(self._parts).encode()
            self._parts.clear()
            self._size = 0
            self.put(data)

    def put(self, item: bytes | BaseException | None) -> None:
        waited = 0.0
        while not self.cancelled.is_set():
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                waited += 0.5
                if waited >= self._give_up_s:
                    break
        raise _Abandoned


@dataclass(frozen=True)
class _ExportJob:
    engine: Engine
    network: str
    read_only: dict
    fmt: str
    filters: ExportFilter
    fields: tuple[str, ...] = FIELDS

    def run(self, sink: _ChunkSink) -> None:
        """On its own thread: the whole export into `sink`, then None (or the error)."""
        try:
            with Session(self.engine) as session:
                session.connection(execution_options=self.read_only)
                runs = runs_document(session, self.filters) if self.fmt != "csv" else []
                header = {
                    "format": EXPORT_FORMAT,
                    "generated_at": iso_utc(utcnow()),
                    "code_version": CODE_VERSION,
                    "network": self.network,
                    "filters": self.filters.document(),
                }
                entries = iter_entries(session, self.filters)
                if self.fmt == "csv":
                    write_csv(entries, sink, self.fields)
                else:
                    write_export(self.fmt, header, runs, entries, sink)
                sink.flush()
                session.rollback()
            sink.put(None)
        except _Abandoned:
            pass
        except Exception as exc:  # noqa: BLE001 - handed to the response, which logs it once
            try:
                sink.put(exc)
            except _Abandoned:
                pass


async def _export_stream(job: _ExportJob, give_up_s: float) -> tuple[bytes, AsyncGenerator[bytes, None]] | None:
    """Start the export; None when it fails before its first byte (the ledger is unreachable)."""
    sink = _ChunkSink(give_up_s)
    thread = threading.Thread(target=job.run, args=(sink,), name="payouts-web-export", daemon=True)
    thread.start()

    def next_chunk() -> bytes | BaseException | None:
        while True:
            try:
                return sink.chunks.get(timeout=0.5)
            except queue.Empty:
                if not thread.is_alive():
                    try:
                        return sink.chunks.get_nowait()
                    except queue.Empty:
                        return None

    try:
        first = await anyio.to_thread.run_sync(next_chunk)
    except BaseException:  # cancelled (the client went away): the export stops too
        sink.cancelled.set()
        raise
    if isinstance(first, BaseException):
        log.error("web.export.failed", error=type(first).__name__)
        return None

    async def rest() -> AsyncGenerator[bytes, None]:
        try:
            if first:
                yield first
            while True:
                chunk = await anyio.to_thread.run_sync(next_chunk)
                if chunk is None:
                    return
                if isinstance(chunk, BaseException):
                    log.error("web.export.failed", error=type(chunk).__name__, started=True)
                    raise _Abandoned  # the response is cut short: the client sees no clean end
                yield chunk
        finally:
            sink.cancelled.set()

    return first or b"", rest()


class _ExportResponse(StreamingResponse):
    """A streamed export that closes its stream and counts itself done however it ends."""

    def __init__(self, body: AsyncGenerator[bytes, None], finished: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(body, **kwargs)
        self._body = body
        self._finished = finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._finished()
            await self._body.aclose()


# ---- the application -----------------------------------------------------------------------


class _SiteFiles(StaticFiles):
    """The published site: no dot-files (the publisher's staging folders), revalidated caching."""

    def lookup_path(self, path: str) -> tuple[str, Any]:
        if "\x00" in path or any(part.startswith(".") for part in Path(path).parts):
            return "", None
        return super().lookup_path(path)

    async def check_config(self) -> None:
        """A site not published yet is a 404 per file, not an error."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def create_app(
    engine: Engine,
    site_dir: Path | None,
    network: str,
    *,
    send_timeout_s: float = SEND_TIMEOUT_S,
    max_exports: int = MAX_EXPORTS,
) -> ASGIApp:
    """The ASGI application (without the server): routes, error pages and the request guard."""
    read_only = {"postgresql_readonly": True} if engine.dialect.name == "postgresql" else {}
    running = {"exports": 0}  # on the event loop only

    async def export(request: Request) -> Response:
        fmt = request.url.path.rsplit(".", 1)[1]
        try:
            filters, fields = parse_query(request.scope["query_string"].decode("latin-1"))
        except BadQuery as exc:
            return _problem(400, str(exc))
        headers = {"Cache-Control": "no-store"}
        media_type = _EXPORTS[fmt]
        if request.method == "HEAD":
            head = Response(b"", media_type=f"{media_type}; charset=utf-8", headers=headers)
            del head.headers["content-length"]  # the length of a streamed export is not known
            return head
        if running["exports"] >= max_exports:
            busy = _problem(503, "too many exports at once; try again in a few seconds")
            busy.headers["Retry-After"] = "5"
            return busy
        running["exports"] += 1
        try:
            started = await _export_stream(_ExportJob(engine, network, read_only, fmt, filters, fields), send_timeout_s)
        except BaseException:
            running["exports"] -= 1
            raise
        if started is None:
            running["exports"] -= 1
            return _problem(503, "the ledger cannot be read right now; try again in a minute")
        _first, body = started

        def finished() -> None:
            running["exports"] -= 1

        return _ExportResponse(body, finished, media_type=f"{media_type}; charset=utf-8", headers=headers)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def not_found(_request: Request) -> Response:
        return _fixed(404)

    async def http_error(_request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return _fixed(status, {"Allow": "GET, HEAD"} if status == 405 else None)

    routes: list[Route | Mount] = [
        *(Route(f"/export.{fmt}", export, methods=["GET", "HEAD"]) for fmt in _EXPORTS),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
    ]
    if site_dir is not None:
        routes.append(Mount("/", app=_SiteFiles(directory=site_dir, html=True, check_dir=False)))
    else:
        routes.append(Route("/{path:path}", not_found, methods=["GET", "HEAD"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error})
    return _Guard(app, send_timeout_s)


class _Guard:
    """Outermost: refuses what the site never answers, bounds the query, adds the security
    headers, drops a reader that stops reading, and keeps tracebacks in the log."""

    def __init__(self, app: ASGIApp, send_timeout_s: float) -> None:
        self.app = app
        self.send_timeout_s = send_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers", [])
        if len(headers) > MAX_HEADERS or sum(len(k) + len(v) + 4 for k, v in headers) > MAX_HEAD_BYTES:
            return await _fixed(431, {"Connection": "close"})(scope, receive, send)
        # nothing here reads a body; take it off the connection first so that a kept-alive
        # connection stays usable, or close the connection when it is too big or too slow
        has_body = any(name in (b"content-length", b"transfer-encoding") for name, _ in headers)
        if has_body and not await _drain(receive):
            return await _fixed(413, {"Connection": "close"})(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD"):
            return await _fixed(405, {"Allow": "GET, HEAD"})(scope, receive, send)
        if len(scope.get("query_string", b"")) > MAX_QUERY_LENGTH:
            return await _problem(400, f"the query is longer than {MAX_QUERY_LENGTH} characters")(scope, receive, send)
        started = False
        status = 0

        async def guarded_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            try:
                await asyncio.wait_for(send(message), self.send_timeout_s)
            except TimeoutError:
                raise _Abandoned from None

        try:
            await self.app(scope, receive, guarded_send)
        except _Abandoned:
            log.info("web.client.dropped", reason="stopped reading or export cut short")
        except Exception as exc:  # noqa: BLE001 - logged by name; the client gets a fixed line
            log.error("web.request.failed", error=type(exc).__name__, path_length=len(scope.get("path", "")))
            if not started:
                await _fixed(500)(scope, receive, guarded_send)
        finally:
            client = scope.get("client") or ("", 0)
            log.info(
                "web.request",
                client=client[0],
                method=scope["method"],
                path=scope.get("path", "")[:200],
                status=status,
            )


async def _drain(receive: Receive) -> bool:
    """Read and drop a request body; False when it is over MAX_BODY_BYTES or not complete within
    BODY_TIMEOUT_S (or the client went away)."""
    total = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                total += len(message.get("body", b""))
                if total > MAX_BODY_BYTES:
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


# ---- the server ----------------------------------------------------------------------------


class WebServer:
    """The application under Hypercorn, on a socket bound at construction (port 0: a free one)."""

    def __init__(
        self,
        host: str,
        port: int,
        engine: Engine,
        site_dir: Path | None,
        network: str,
        *,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
        max_exports: int = MAX_EXPORTS,
    ) -> None:
        self.engine = engine
        self.site_dir = site_dir.resolve() if site_dir is not None else None
        self.network = network
        self.app = create_app(engine, self.site_dir, network, send_timeout_s=send_timeout_s, max_exports=max_exports)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            # Linux: a connection whose sent data stays unacknowledged, or unsent behind a zero
            # window (a client that stopped reading), this long is closed by the kernel; the
            # accepted connections inherit it from the listening socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(send_timeout_s * 2000))
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self.config = HypercornConfig()
        self.config.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns the socket from here
        self.config.keep_alive_timeout = header_timeout_s  # also the request-head deadline (above)
        self.config.h11_max_incomplete_size = MAX_HEAD_BYTES
        self.config.include_server_header = False
        self.config.accesslog = None  # the guard logs each request
        self.config.errorlog = logging.getLogger("hypercorn.error")
        self.config.graceful_timeout = 2
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        await hypercorn_serve(cast(ASGIFramework, self.app), self.config, shutdown_trigger=self._stop.wait, mode="asgi")

    def serve_forever(self) -> None:
        asyncio.run(self._serve())

    def shutdown(self) -> None:
        """Stop serving (from another thread); returns once `serve_forever` may still be ending."""
        self._started.wait(10)
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def server_close(self) -> None:
        """Kept for callers of the earlier server; the socket closes when serving ends."""


def make_server(
    ledger_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    site_dir: Path | None = None,
    *,
    network: str,
    engine: Engine | None = None,
    **limits: Any,
) -> WebServer:
    """Bind the server (port 0 picks a free port); `serve_forever()` runs it."""
    engine = engine or make_engine(ledger_url)
    if site_dir is not None and not (site_dir / "index.html").is_file():
        log.warning("web.site.missing", hint="run `payouts publish --out DIR` first; exports still work")
    return WebServer(host, port, engine, site_dir, network, **limits)


def serve(ledger_url: str, host: str, port: int, site_dir: Path | None, *, network: str) -> None:
    """Run the read-only web server until interrupted (Ctrl-C or SIGTERM)."""
    server = make_server(ledger_url, host, port, site_dir, network=network)
    log.info("web.started", url=server.url, site=str(site_dir) if site_dir else None)
    try:
        asyncio.run(_serve_until_signal(server))
    except KeyboardInterrupt:
        pass
    finally:
        server.engine.dispose()


async def _serve_until_signal(server: WebServer) -> None:
    # no shutdown trigger: Hypercorn stops gracefully on SIGINT and SIGTERM
    await hypercorn_serve(cast(ASGIFramework, server.app), server.config, mode="asgi")


def serve_in_thread(server: WebServer) -> threading.Thread:
    """For tests and the demo: run `server` on a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, name="payouts-web", daemon=True)
    thread.start()
    server._started.wait(10)
    return thread
