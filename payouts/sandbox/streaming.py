"""Server-sent events for the collection routes, as Horizon streams them.

A request with `Accept: text/event-stream` on a collection gets, after the `open` event
(`retry: 1000`, `data: "hello"`), every record after the cursor in ascending order, one event
each, `id:` being the record's paging token, and then each new record as ledgers close. A
client that reconnects with `Last-Event-ID` (or `cursor=`) resumes after the last record it
saw; `cursor=now` starts at the end of the newest ledger. While nothing happens a comment
line keeps the connection alive (every `SandboxConfig.keep_alive_s`); when the server stops
or restarts, the stream ends with Horizon's `close` event (`data: "byebye"`), after which clients reconnect.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import orjson

from payouts.sandbox.paging import BadQuery, Collection, Paging, parse_cursor
from payouts.sandbox.replica import ReadView

if TYPE_CHECKING:
    from payouts.sandbox.handler import Handler

#: the client's reconnection delay, in milliseconds (Horizon's)
RETRY_MS = 1000

HELLO = f'retry: {RETRY_MS}\nevent: open\ndata: "hello"\n\n'.encode()
BYEBYE = b'retry: 10\nevent: close\ndata: "byebye"\n\n'
KEEP_ALIVE = b": keep-alive\n\n"


def event(record: dict) -> bytes:
    return b"id: " + record["paging_token"].encode() + b"\ndata: " + orjson.dumps(record) + b"\n\n"


class _Chunked:
    """The body of an HTTP/1.1 response in chunks, flushed as written."""

    def __init__(self, handler: Handler) -> None:
        self.wfile = handler.wfile

    def write(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def stream(handler: Handler, view: ReadView, collection: Collection, paging: Paging) -> None:
    if paging.order != "asc":
        raise BadQuery("order", "order: a stream goes in ascending order")
    generation = handler.sandbox.generation
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Access-Control-Allow-Origin", "*")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.close_connection = True
    try:
        _serve(handler, view, collection, paging, generation)
    except (OSError, ValueError):
        # the client went away, or a restart cut the connection (a closed file is a
        # ValueError): nothing to answer
        handler.close_connection = True


def _serve(handler: Handler, view: ReadView, collection: Collection, paging: Paging, generation: int) -> None:
    sandbox = handler.sandbox
    chain = view.chain
    stopping: threading.Event = sandbox.stopping
    cursor = paging.cursor
    body = _Chunked(handler)
    body.write(HELLO)
    keep_alive_s = sandbox.config.keep_alive_s
    last_write = time.monotonic()
    while True:
        with chain.lock:
            seen = chain.latest.sequence
        records = collection.page(view, Paging(cursor, "asc", paging.limit, paging.cursor_text))
        if records:
            body.write(b"".join(event(record) for record in records))
            last_write = time.monotonic()
            cursor = parse_cursor(records[-1]["paging_token"], view)
        if stopping.is_set() or sandbox.generation != generation:
            break
        if len(records) == paging.limit:
            continue  # more are waiting

        def news(last: int = seen) -> bool:
            return chain.latest.sequence > last or sandbox.generation != generation or stopping.is_set()

        with chain.lock:
            chain.closed.wait_for(news, max(0.0, last_write + keep_alive_s - time.monotonic()))
        if time.monotonic() - last_write >= keep_alive_s:
            body.write(KEEP_ALIVE)
            last_write = time.monotonic()
    body.write(BYEBYE)
    body.end()
