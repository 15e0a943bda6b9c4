"""`payouts snapshot` through typer's CliRunner, against the loopback indexer."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot
from tests.sources.indexer_server import IndexerData, IndexerServer, policy_file_for
from tests.sources.tfchain_rpc_server import TfchainRpcServer
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
def policies(month, tmp_path):
    return policy_file_for(month, tmp_path / "policies.json")


@pytest.fixture
def server(month):
    with IndexerServer(IndexerData.from_snapshot(month)) as server:
        yield server


def test_help_describes_the_command():
    result = invoke("snapshot", "--help")
    assert result.exit_code == 0
    for option in ("--period", "--network", "--graphql", "--gridproxy", "--out"):
        assert option in result.output


def test_a_snapshot_is_written_from_the_indexer(server, policies, tmp_path):
    out = tmp_path / "2025-11.json.gz"
    result = invoke(
        "snapshot",
        "--policies",
        str(policies),
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


def test_the_network_and_urls_can_come_from_settings(server, policies, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOUTS_GRAPHQL_URL", server.graphql_url)
    monkeypatch.setenv("PAYOUTS_SNAPSHOT_POLICIES_FILE", str(policies))
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


def test_a_policy_in_use_without_minimal_uptime_exits_1_naming_it_and_both_ways(server, tmp_path):
    policy = next(p["farmingPolicyID"] for p in server.data.tables["farmingPolicies"] if p["farmingPolicyID"] > 2)
    node = server.data.tables["nodes"][2]
    node["farmingPolicyId"] = policy  # a policy other than 1 and 2: its minimal uptime is needed
    out = tmp_path / "month.json"
    result = invoke(
        "snapshot", "--period", "2025-11", "--graphql", server.graphql_url, "--no-gridproxy", "--out", str(out)
    )
    assert result.exit_code == 1
    assert f"farming policy {policy}:" in result.stderr and "has no minimalUptime" in result.stderr
    assert f"nodes {node['nodeID']}" in result.stderr
    assert "--policies FILE" in result.stderr and "RPC endpoint" in result.stderr
    assert not out.exists()


def test_a_node_without_the_policies_pallet_exits_1_in_one_line_naming_it(server, tmp_path):
    policy = next(p["farmingPolicyID"] for p in server.data.tables["farmingPolicies"] if p["farmingPolicyID"] > 2)
    server.data.tables["nodes"][2]["farmingPolicyId"] = policy
    out = tmp_path / "month.json"
    with TfchainRpcServer(head=server.data.height(), with_pallet=False) as node:
        result = invoke(
            "snapshot",
            "--period",
            "2025-11",
            "--graphql",
            server.graphql_url,
            "--no-gridproxy",
            "--rpc",
            node.url,
            "--out",
            str(out),
        )
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())  # the console may wrap the one line
    assert f"snapshot not written: TFChain RPC {node.url}: farming policy {policy}: cannot read" in message
    assert "TfgridModule.FarmingPoliciesMap" in message and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{", "not JSON"),
        (b'{"farming_policies": [{"id": 3, "minimal_uptime": 95}, {"id": 3, "minimal_uptime": 90}]}', "listed twice"),
        (b'{"farming_policies": [{"id": 3, "minimal_uptime": "95"}]}', "must be an integer 0..1000"),
        (b'{"farming_policies": [{"id": 3}]}', "exactly 'id' and 'minimal_uptime'"),
        (b'{"policies": []}', "'farming_policies' list"),
    ],
)
def test_a_malformed_policy_file_exits_2_naming_the_file_and_entry(tmp_path, content, words):
    bad = tmp_path / "policies.json"
    bad.write_bytes(content)
    out = tmp_path / "month.json"
    result = invoke("snapshot", "--period", "2025-11", "--policies", str(bad), "--out", str(out))
    assert result.exit_code == 2
    assert str(bad) in result.stderr and words in result.stderr
    assert not out.exists()


# -- --check: would a full build succeed? ------------------------------------------------


def check(*args: str):
    return invoke("snapshot", "--check", "--period", "2025-11", "--retries", "2", *args)


def test_check_reports_a_build_would_succeed_and_writes_nothing(server, policies, tmp_path):
    result = check("--graphql", server.graphql_url, "--gridproxy", server.gridproxy_url, "--policies", str(policies))
    assert result.exit_code == 0, result.stderr
    assert "a full build of 2025-11 (offset 91) would succeed now (nothing written)" in result.stderr
    assert f"indexer {server.graphql_url}: height" in result.stderr
    assert "grid proxy" in result.stderr and "11 nodes" in result.stderr
    for entity in ("nodes", "farms", "twins", "nodeContracts", "uptimeEvents", "contractBillReports"):
        assert f"ok: {entity}: " in result.stderr
    # one page each, no totalCount anywhere
    assert not any(name.endswith("Connection") for names, _, _ in server.requests for name in names)
    assert server.count("uptimeEvents") == 2  # the status query and one page
    assert list(tmp_path.iterdir()) == [policies]


def test_check_names_a_policy_a_build_could_not_resolve(server):
    result = check("--graphql", server.graphql_url, "--no-gridproxy")
    assert result.exit_code == 0  # no node of this month uses a policy other than 1 and 2
    assert "no minimal uptime in the indexer and none supplied" in result.stderr


def test_check_on_an_indexer_behind_exits_3(server):
    server.data.processed_ts = PERIOD.window_end_ts - 3600
    result = check("--graphql", server.graphql_url, "--no-gridproxy")
    assert result.exit_code == 3
    assert "short of it" in result.stderr and "would wait" in result.stderr


def test_check_finds_a_record_the_builder_could_not_read(server):
    server.data.tables["farms"][0].pop("stellarAddress")
    result = check("--graphql", server.graphql_url, "--no-gridproxy")
    assert result.exit_code == 1
    assert "problem: farms: records lack stellarAddress" in result.stderr
    assert "would fail now" in result.stderr


def test_check_without_network_says_so(tmp_path):
    url = "http://graphql.payouts.invalid/graphql"  # a name no resolver answers
    result = check("--graphql", url, "--no-gridproxy")
    assert result.exit_code == 1
    assert "graphql.payouts.invalid cannot be resolved (no DNS answer): this machine has no network access" in (
        result.stderr
    )
    assert "cannot tell whether a build of 2025-11 (offset 91) would succeed" in result.stderr


def test_check_of_a_closed_port_says_it_cannot_be_reached():
    url = f"http://127.0.0.1:{free_port()}/graphql"
    result = check("--graphql", url, "--no-gridproxy")
    assert result.exit_code == 1
    assert f"indexer {url} cannot be reached" in result.stderr
