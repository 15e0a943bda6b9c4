"""The HTTP/GraphQL client against the loopback indexer: retries, timeouts, refusals."""

from __future__ import annotations

import pytest

from payouts.periods import Period
from payouts.snapshot.synthetic import write_synthetic_snapshot
from payouts.sources.errors import IndexerQueryError, IndexerUnreachable, SourceError
from payouts.sources.graphql import GraphQLClient, JsonHttp, RetryPolicy
from tests.sources.indexer_server import IndexerData, IndexerServer
from tests.support.servers import free_port

PERIOD = Period.from_label("2025-11")
STATUS = "query status { squidStatus { height } }"


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "month.json"
    write_synthetic_snapshot(path, nodes=12, period=PERIOD, seed=5)
    return IndexerData.from_snapshot(path)


@pytest.fixture
def server(grid):
    with IndexerServer(grid) as server:
        yield server


def client(url: str, *, attempts: int = 4, timeout_s: float = 5.0) -> GraphQLClient:
    http = JsonHttp(timeout_s=timeout_s, retry=RetryPolicy(attempts=attempts, backoff_s=0.01))
    return GraphQLClient(url, http)


def test_a_burst_of_5xx_is_retried_until_an_answer_comes(server):
    server.faults.errors_left = 3
    gql = client(server.graphql_url, attempts=4)
    assert gql.query(STATUS, what="status")["squidStatus"]["height"] > 0
    assert gql.http.requests == 4
    assert [status for _, _, status in server.requests] == [503, 503, 503, 200]


def test_retries_are_bounded_and_the_error_names_the_url_and_the_last_status(server):
    server.faults.errors_left = 10
    server.faults.error_status = 502
    gql = client(server.graphql_url, attempts=3)
    with pytest.raises(IndexerUnreachable, match=r"gave up after 3 attempt\(s\), last: HTTP 502") as caught:
        gql.query(STATUS, what="status")
    assert server.graphql_url in str(caught.value)
    assert len(server.requests) == 3


def test_a_slow_answer_times_out_and_is_asked_again(server):
    server.faults.slow_left, server.faults.slow_s = 1, 1.0
    gql = client(server.graphql_url, attempts=2, timeout_s=0.2)
    assert gql.query(STATUS, what="status")["squidStatus"]["height"] > 0
    assert gql.http.requests == 2


def test_answers_that_never_come_in_time_give_a_timeout_error(server):
    server.faults.slow_left, server.faults.slow_s = 5, 0.6
    gql = client(server.graphql_url, attempts=2, timeout_s=0.2)
    with pytest.raises(IndexerUnreachable, match="timed out"):
        gql.query(STATUS, what="status")


def test_a_closed_port_is_a_connection_error_after_the_retries():
    url = f"http://127.0.0.1:{free_port()}/graphql"
    with pytest.raises(IndexerUnreachable, match=r"gave up after 2 attempt\(s\), last: connection failed"):
        client(url, attempts=2).query(STATUS, what="status")


def test_a_refused_query_is_not_retried(server):
    gql = client(server.graphql_url)
    with pytest.raises(IndexerQueryError, match="Cannot query field 'nodez'"):
        gql.query("query { nodez { nodeID } }", what="typo")
    assert gql.http.requests == 1


@pytest.mark.parametrize("url", ["graphql.grid.tf/graphql", "ftp://graphql.grid.tf", "http://"])
def test_a_url_that_is_not_http_is_refused_before_any_request(url):
    with pytest.raises(SourceError, match="not an http:// or https:// URL"):
        client(url)


def test_backoff_doubles_is_capped_and_honours_retry_after():
    policy = RetryPolicy(attempts=8, backoff_s=0.5, backoff_cap_s=4.0)
    assert [policy.pause_s(n, None) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.pause_s(1, 3.0) == 3.0  # the server asked for more
    assert policy.pause_s(1, 60.0) == 4.0  # but never past the cap


def test_429_is_retried_with_the_servers_pause(server):
    server.faults.errors_left, server.faults.error_status = 1, 429
    pauses = []
    http = JsonHttp(retry=RetryPolicy(attempts=2, backoff_s=0.01), sleep=pauses.append)
    assert GraphQLClient(server.graphql_url, http).query(STATUS, what="status")
    assert pauses == [0.01]
