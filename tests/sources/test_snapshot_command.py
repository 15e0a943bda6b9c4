"""`payouts snapshot` through typer's CliRunner, against the loopback indexer."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot
from tests.sources.indexer_server import IndexerData, IndexerServer
from tests.support.servers import free_port

PERIOD = Period.from_label("2025-11")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "month.json"
    write_synthetic_snapshot(path, nodes=10, period=PERIOD, seed=4)
    return path


@pytest.fixture
def server(month):
    with IndexerServer(IndexerData.from_snapshot(month)) as server:
        yield server


def test_help_describes_the_command():
    result = invoke("snapshot", "--help")
    assert result.exit_code == 0
    for option in ("--period", "--network", "--graphql", "--gridproxy", "--out"):
        assert option in result.output


def test_a_snapshot_is_written_from_the_indexer(server, tmp_path):
    out = tmp_path / "2025-11.json.gz"
    result = invoke(
        "snapshot",
        "--period",
        "2025-11",
        "--network",
        "dev",
        "--graphql",
        server.graphql_url,
        "--gridproxy",
        server.gridproxy_url,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stderr and "10 nodes" in result.stderr
    assert "note: farm payout addresses" in result.stderr
    header = load_snapshot(out).header
    assert header.period_offset == 91 and header.network == "dev" and len(header.nodes) == 10
    assert header.source["gridproxy_url"] == server.gridproxy_url


def test_the_network_and_urls_can_come_from_settings(server, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOUTS_GRAPHQL_URL", server.graphql_url)
    monkeypatch.setenv("PAYOUTS_NETWORK", "test")
    out = tmp_path / "month.json"
    result = invoke("snapshot", "--period-offset", "91", "--no-gridproxy", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert load_snapshot(out).header.network == "test"
    assert load_snapshot(out).header.source["gridproxy_url"] is None


def test_an_indexer_behind_exits_3_and_says_to_try_later(server, tmp_path):
    server.data.processed_ts = PERIOD.window_end_ts - 2 * 86_400
    out = tmp_path / "month.json"
    result = invoke(
        "snapshot",
        "--period",
        "2025-11",
        "--graphql",
        server.graphql_url,
        "--gridproxy",
        server.gridproxy_url,
        "--out",
        str(out),
    )
    assert result.exit_code == 3
    assert re.search(r"2 d 0 h \d+ min short of it", result.stderr)
    assert "Try again later" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("url", ["graphql.grid.tf", "ftp://example.org/graphql"])
def test_a_url_that_is_not_http_exits_2(tmp_path, url):
    out = tmp_path / "month.json"
    result = invoke("snapshot", "--period", "2025-11", "--graphql", url, "--out", str(out))
    assert result.exit_code == 2
    assert "is not an http:// or https:// URL" in result.stderr
    assert not out.exists()


def test_an_unreachable_indexer_exits_1_without_a_file(tmp_path):
    out = tmp_path / "month.json"
    url = f"http://127.0.0.1:{free_port()}/graphql"
    result = invoke(
        "snapshot", "--period", "2025-11", "--graphql", url, "--no-gridproxy", "--retries", "2", "--out", str(out)
    )
    assert result.exit_code == 1
    assert "snapshot not written" in result.stderr and url in result.stderr
    assert "gave up after 2 attempt(s)" in result.stderr
    assert not out.exists()


def test_a_bad_period_exits_2(tmp_path):
    result = invoke("snapshot", "--period", "2025-13", "--out", str(tmp_path / "x.json"))
    assert result.exit_code == 2 and "month 13" in result.stderr
