"""The read-only web process (Procfile `web`): the published status site and live exports.

    GET /                      the published site (index.html, app.js, style.css, data/...)
    GET /export.json?...       the farmer export, streamed from the ledger (also /export.csv,
    GET /export.csv?...        /export.jsonl); filters: period, farm, node, address, receipt

Only GET and HEAD; anything else is 405. Error pages are one fixed line: no path, no traceback,
no ledger URL. The ledger is only read (a read-only transaction on PostgreSQL).
"""

from __future__ import annotations

import io
import mimetypes
import re
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from config.settings import Settings
from payouts import CODE_VERSION
from payouts.export.rows import ExportFilter, iso_utc, iter_entries, runs_document
from payouts.export.writers import EXPORT_FORMAT, write_export
from payouts.ledger.db import make_engine
from payouts.ledger.types import utcnow
from payouts.periods import Period, PeriodError, offset_for_label

log = structlog.get_logger(__name__)

_EXPORTS = {"/export.json": "json", "/export.csv": "csv", "/export.jsonl": "jsonl"}
_CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
}
_ADDRESS = re.compile(r"^G[A-Z2-7]{55}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class BadQuery(ValueError):
    """A query parameter the export cannot use (shown to the caller as is: it is theirs)."""


def filters_from_query(query: str) -> ExportFilter:
    """`period=2025-11&farm=42&node=7&address=G...&receipt=HASH` -> ExportFilter."""
    params = parse_qs(query, keep_blank_values=False, max_num_fields=50)
    unknown = set(params) - {"period", "farm", "node", "address", "receipt"}
    if unknown:
        raise BadQuery(f"unknown parameter: {min(unknown)[:40]}")

    def one(name: str) -> str | None:
        values = params.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise BadQuery(f"{name} is given more than once")
        return values[0].strip()

    def number(name: str) -> int | None:
        value = one(name)
        if value is None:
            return None
        if not value.isdigit() or len(value) > 12:
            raise BadQuery(f"{name} must be a number")
        return int(value)

    period = one("period")
    period_offset = None
    if period is not None:
        try:
            period_offset = int(period) if period.isdigit() else offset_for_label(period)
            Period(period_offset).label  # noqa: B018 (validates the offset)
        except PeriodError:
            raise BadQuery("period must be a month like 2025-11 or a period offset") from None
    addresses = tuple(a.strip() for a in params.get("address", []))
    for address in addresses:
        if not _ADDRESS.match(address):
            raise BadQuery("address must be a Stellar public key (G..., 56 characters)")
    receipt = one("receipt")
    if receipt is not None and not _HEX64.match(receipt):
        raise BadQuery("receipt must be a hash of 64 hex digits")
    return ExportFilter(
        period_offset=period_offset,
        farm_id=number("farm"),
        node_id=number("node"),
        addresses=addresses,
        receipt_hash=receipt.lower() if receipt else None,
    )


class _Handler(BaseHTTPRequestHandler):
    server: PayoutsWebServer
    server_version = "payouts-web"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # streamed bodies end when the connection closes

    # ---- responses -----------------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version

    def _headers(
        self, status: HTTPStatus, content_type: str, length: int | None = None, extra: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in {**_SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A fixed one-line page: never the request path, a traceback or an internal name."""
        status = HTTPStatus(code)
        body = f"{status.value} {status.phrase}\n".encode()
        extra = {"Allow": "GET, HEAD"} if status is HTTPStatus.METHOD_NOT_ALLOWED else {}
        self.close_connection = True
        self._headers(status, "text/plain; charset=utf-8", len(body), extra)
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _text(self, status: HTTPStatus, text: str) -> None:
        body = (text + "\n").encode()
        self._headers(status, "text/plain; charset=utf-8", len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.info("web.request", client=self.client_address[0], line=format % args)

    # ---- methods -------------------------------------------------------------------------

    def do_GET(self) -> None:
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream
        except Exception:
            log.exception("web.request.failed", path_length=len(self.path))
            if not getattr(self, "_started", False):
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _refuse(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    # ---- routes --------------------------------------------------------------------------

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path in _EXPORTS:
            return self._export(_EXPORTS[path], parts.query)
        if path == "/healthz":
            return self._text(HTTPStatus.OK, "ok")
        return self._static(path)

    def _export(self, fmt: str, query: str) -> None:
        try:
            filters = filters_from_query(query)
        except BadQuery as exc:
            return self._text(HTTPStatus.BAD_REQUEST, str(exc))
        with Session(self.server.engine) as session:
            session.connection(execution_options=self.server.read_only)
            runs = runs_document(session, filters) if fmt != "csv" else []
            header = {
                "format": EXPORT_FORMAT,
                "generated_at": iso_utc(utcnow()),
                "code_version": CODE_VERSION,
                "network": self.server.network,
                "filters": filters.document(),
            }
            self._started = True
            self._headers(HTTPStatus.OK, _CONTENT_TYPES[fmt], extra={"Cache-Control": "no-store"})
            if self.command == "HEAD":
                return None
            # the handler's wfile is the connection's binary writer
            out = io.TextIOWrapper(cast(BinaryIO, self.wfile), encoding="utf-8", newline="", write_through=False)
            try:
                write_export(fmt, header, runs, iter_entries(session, filters), out)
                out.flush()
            finally:
                out.detach()
            session.rollback()
        return None

    def _static(self, path: str) -> None:
        site = self.server.site_dir
        if site is None:
            return self.send_error(HTTPStatus.NOT_FOUND)
        relative = unquote(path).lstrip("/")
        if relative == "" or relative.endswith("/"):
            relative += "index.html"
        if "\x00" in relative or any(part in ("..", "") or part.startswith(".") for part in relative.split("/")):
            return self.send_error(HTTPStatus.NOT_FOUND)
        target = (site / relative).resolve()
        if not target.is_relative_to(site) or not target.is_file():
            return self.send_error(HTTPStatus.NOT_FOUND)
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        data = target.read_bytes()
        self._headers(HTTPStatus.OK, content_type, len(data), extra={"Cache-Control": "no-cache"})
        if self.command != "HEAD":
            self.wfile.write(data)
        return None


class PayoutsWebServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: Engine, site_dir: Path | None, network: str) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.site_dir = site_dir.resolve() if site_dir is not None else None
        self.network = network
        # a read-only transaction where the backend has one (PostgreSQL); SQLite is only read
        self.read_only = {"postgresql_readonly": True} if engine.dialect.name == "postgresql" else {}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"


def make_server(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8080,
    site_dir: Path | None = None,
    engine: Engine | None = None,
) -> PayoutsWebServer:
    """Bind the server (port 0 picks a free port); `serve_forever()` runs it."""
    engine = engine or make_engine(settings.ledger_url())
    if site_dir is not None and not (site_dir / "index.html").is_file():
        log.warning("web.site.missing", hint="run `payouts publish --out DIR` first; exports still work")
    return PayoutsWebServer((host, port), engine, site_dir, settings.network)


def serve(settings: Settings, host: str, port: int, site_dir: Path | None) -> None:
    """Run the read-only web server until interrupted."""
    server = make_server(settings, host, port, site_dir)
    log.info("web.started", url=server.url, site=str(site_dir) if site_dir else None)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.engine.dispose()


def serve_in_thread(server: PayoutsWebServer) -> threading.Thread:
    """For tests and the demo: run `server` on a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, name="payouts-web", daemon=True)
    thread.start()
    return thread
