"""The chain clock asks Horizon for its latest ledger through the standard library, and falls
back to this machine's clock, saying so, for any answer that is not a ledger."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from payouts.stellar.clock import ChainClock

LEDGER = {"_embedded": {"records": [{"closed_at": "2026-12-01T03:04:05Z", "sequence": 1234567}]}}


@contextmanager
def horizon(status: int, body: bytes, headers: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", asked
    finally:
        server.shutdown()
        server.server_close()


def test_the_latest_ledger_gives_the_time_and_its_sequence():
    with horizon(200, json.dumps(LEDGER).encode()) as (url, asked):
        clock = ChainClock(url)
        assert clock.now() == datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
    assert asked == ["/ledgers?order=desc&limit=1"]
    assert clock.source == "the chain's time (ledger 1,234,567)"


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (500, b"{}", None),
        (404, json.dumps(LEDGER).encode(), None),  # a ledger page under an error status is no answer
        (302, json.dumps(LEDGER).encode(), {"Location": "http://127.0.0.1:1/ledgers"}),
        (200, b"not json", None),
        (200, b'{"_embedded": {"records": []}}', None),
        (200, b'{"_embedded": {"records": [{"closed_at": "yesterday", "sequence": 1}]}}', None),
        (200, b'{"_embedded": {"records": [{"closed_at": "2026-12-01T03:04:05Z"}]}}', None),
        (200, b"[1]", None),
        (200, b" " * (2 << 20), None),
    ],
)
def test_any_other_answer_falls_back_to_this_machines_clock(status, body, headers):
    with horizon(status, body, headers) as (url, _):
        clock = ChainClock(url)
        before = datetime.now(UTC)
        now = clock.now()
    assert before <= now <= datetime.now(UTC)
    assert clock.source == "this machine's clock (Horizon unreachable)"


def test_a_silent_horizon_is_given_up_on(monkeypatch):
    import socket

    from payouts.stellar import clock as clock_module

    monkeypatch.setattr(clock_module, "LOOKUP_TIMEOUT_S", 0.2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the connection and never answers
    try:
        clock = ChainClock(f"http://127.0.0.1:{listener.getsockname()[1]}")
        clock.now()
    finally:
        listener.close()
    assert clock.source == "this machine's clock (Horizon unreachable)"


def test_the_clock_does_not_import_httpx():
    import subprocess
    import sys

    code = "import sys; from payouts.stellar.clock import ChainClock; ChainClock('http://127.0.0.1:1').now(); "
    code += "print('httpx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
