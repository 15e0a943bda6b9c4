"""The one retry policy of the HTTP reads (payouts/retry.py), against a loopback server that
answers 429 or 503 with Retry-After before it answers 200: the pause honours the header (seconds
and HTTP-date forms), and the suite's waits cost no time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import pytest

from payouts import retry
from payouts.retry import RetryPolicy, retry_after_s
from payouts.sources.errors import IndexerUnreachable
from payouts.sources.graphql import GraphQLClient, JsonHttp
from payouts.stellar.horizon import HorizonClient, HorizonUnavailable
from tests.support.servers import LoopbackHttp

LEDGER = {"sequence": 7, "closed_at": "2025-11-01T00:00:00+00:00"}


class Refusing(LoopbackHttp):
    """A loopback HTTP server: the first `refusals` requests get `status` with `retry_after`,
    then 200 with `answer`; it keeps the paths it was asked."""

    def __init__(self, *, status: int, retry_after: str | None, refusals: int, answer: dict) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.paths.append(self.path)
                if len(owner.paths) <= refusals:
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    body = b"{}"
                else:
                    self.send_response(200)
                    body = json.dumps(answer).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._answer()

            def log_message(self, *_args) -> None:
                pass

        super().__init__(Handler)


@pytest.fixture
def waits_on() -> Iterator[None]:
    retry.set_testing(False)
    try:
        yield
    finally:
        retry.set_testing(True)


def test_horizon_waits_as_long_as_retry_after_asks_then_reads(waits_on):
    pauses: list[float] = []
    with (
        Refusing(status=429, retry_after="1", refusals=1, answer=LEDGER) as server,
        HorizonClient(server.url, sleep=pauses.append) as client,
    ):
        assert client.ledger(7) is not None and client.ledger(7).sequence == 7
    assert pauses == [1.0]  # the server's second, not the 0.5 s first backoff
    assert server.paths == ["/ledgers/7", "/ledgers/7", "/ledgers/7"]


def test_horizon_503_with_an_http_date_waits_until_that_date(waits_on):
    in_20_s = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    pauses: list[float] = []
    with (
        Refusing(status=503, retry_after=in_20_s, refusals=1, answer=LEDGER) as server,
        HorizonClient(server.url, sleep=pauses.append) as client,
    ):
        assert client.ledger(7) is not None
    assert len(pauses) == 1 and 10.0 < pauses[0] <= 20.0  # whole seconds in the header, less the time gone


def test_horizon_gives_up_after_its_attempts_with_the_last_status():
    with (
        Refusing(status=503, retry_after="1", refusals=10, answer=LEDGER) as server,
        HorizonClient(server.url, max_read_attempts=3) as client,
        pytest.raises(HorizonUnavailable, match=r"^GET /ledgers/7: HTTP 503$"),
    ):
        client.ledger(7)
    assert len(server.paths) == 3


def test_graphql_waits_as_long_as_retry_after_asks(waits_on):
    pauses: list[float] = []
    http = JsonHttp(retry=RetryPolicy(attempts=3, backoff_s=0.01), sleep=pauses.append)
    with Refusing(status=429, retry_after="1", refusals=2, answer={"data": {"ok": True}}) as server:
        assert GraphQLClient(server.url + "/graphql", http).query("{ ok }", what="ok") == {"ok": True}
    assert pauses == [1.0, 1.0]
    assert http.requests == 3


def test_graphql_gives_up_naming_the_attempts():
    http = JsonHttp(retry=RetryPolicy(attempts=2, backoff_s=0.01))
    with (
        Refusing(status=429, retry_after="1", refusals=5, answer={}) as server,
        pytest.raises(IndexerUnreachable, match=r"gave up after 2 attempt\(s\), last: HTTP 429"),
    ):
        GraphQLClient(server.url + "/graphql", http).query("{ ok }", what="ok")


def test_the_suite_waits_no_time_where_no_sleep_was_given(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    with (
        Refusing(status=429, retry_after="1", refusals=2, answer=LEDGER) as server,
        HorizonClient(server.url) as client,
    ):
        assert client.ledger(7) is not None
    assert len(server.paths) == 3 and slept == []
    retry.set_testing(False)
    try:
        with (
            Refusing(status=429, retry_after="1", refusals=1, answer=LEDGER) as server,
            HorizonClient(server.url) as client,
        ):
            assert client.ledger(7) is not None
    finally:
        retry.set_testing(True)
    assert slept == [1.0]  # with waits on, the same client really waits


NOW = datetime(2025, 11, 3, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1", 1.0),
        (" 2.5 ", 2.5),
        ("-4", 0.0),
        ("Mon, 03 Nov 2025 12:00:30 GMT", 30.0),
        ("Mon, 03 Nov 2025 11:59:00 GMT", 0.0),  # a date gone by: go now
        ("soon", None),
        ("inf", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header, expected):
    assert retry_after_s({"retry-after": header}, now=lambda: NOW) == expected


def test_a_missing_header_is_no_pause_asked():
    assert retry_after_s({}, now=lambda: NOW) is None


def test_retry_after_never_shortens_the_backoff_and_stops_at_the_cap():
    policy = RetryPolicy(attempts=5, backoff_s=2.0, backoff_cap_s=10.0)
    assert policy.pause_s(1, 0.5) == 2.0
    assert policy.pause_s(1, 7.0) == 7.0
    assert policy.pause_s(1, 600.0) == 10.0
