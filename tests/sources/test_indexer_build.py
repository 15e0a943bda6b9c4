"""Building a snapshot from the loopback indexer: the same receipts as the grid it serves,
clear errors for everything that can go wrong, and never a half-written file."""

from __future__ import annotations

import gzip
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import orjson
import pytest

from payouts.calculation.engine import calculate_period
from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot
from payouts.sources.errors import (
    CrossCheckFailed,
    IndexerBehind,
    IndexerDataError,
    IndexerUnreachable,
    SnapshotUnavailable,
)
from payouts.sources.event_ids import event_position
from payouts.sources.graphql import RetryPolicy
from payouts.sources.indexer import BuildOptions, build_snapshot
from payouts.sources.policies import PolicyValueUnknown, load_policy_file
from payouts.sources.tfchain_state import TfchainStateError, read_minimal_uptimes
from tests.sources.indexer_server import (
    DELETED_NODE_ID,
    GENESIS_TS,
    IndexerData,
    IndexerServer,
    block_stamp,
    missed_blocks,
    policy_file_for,
)
from tests.sources.real_indexer import FaultProxy, RealIndexer
from tests.sources.tfchain_rpc_server import TfchainRpcServer, block_hash, policy_storage_key
from tests.support.servers import free_port

PERIOD = Period.from_label("2025-11")
#: A month of 40 nodes: every behaviour the tests check shows in it (each build parses some
#: 45,000 uptime reports, a third of the grid's 120 nodes'). The grid's size is built once, in
#: `test_a_month_of_the_grids_size_gives_the_same_receipts_as_the_grid_it_came_from`.
NODES = 40
FULL_NODES = 120
#: Small pages and chunks, so that every entity spans several pages (and some end on an
#: exactly full page, followed by an empty one).
OPTIONS = BuildOptions(
    page_size=20,
    event_page_size=2000,
    nodes_per_chunk=10,
    ids_per_query=10,
    timeout_s=5.0,
    retry=RetryPolicy(attempts=4, backoff_s=0.01),
)
NOW = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)


#: Twins the chain holds without a public key (the indexer serves "" for them).
def _keyless(twin_id: int) -> bool:
    return twin_id % 9 == 4


def _write_grid(path, nodes: int):
    write_synthetic_snapshot(path, nodes=nodes, period=PERIOD, seed=11)
    document = orjson.loads(path.read_bytes())
    for twin in document["twins"]:
        if _keyless(twin["twin_id"]):
            twin["pk"] = None
    path.write_bytes(orjson.dumps(document))
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return _write_grid(tmp_path_factory.mktemp("grid") / "synthetic.json", NODES)


@pytest.fixture(scope="module")
def policies(synthetic, tmp_path_factory):
    return load_policy_file(policy_file_for(synthetic, tmp_path_factory.mktemp("policies") / "policies.json"))


@pytest.fixture(scope="module")
def expected(synthetic):
    return calculate_period(load_snapshot(synthetic))


@pytest.fixture(scope="module")
def grid(synthetic):
    """The synthetic month as the indexer's records, built once; each server gets a copy."""
    return IndexerData.from_snapshot(synthetic)


@pytest.fixture(scope="module")
def real_indexer(grid, postgres_server, tmp_path_factory):
    """The indexer's own GraphQL server over tables seeded with the synthetic month."""
    log = tmp_path_factory.mktemp("indexer") / "graphql-server.log"
    data = grid.copy()
    with RealIndexer.create(postgres_server, data, log, name="indexer_build").start() as real:
        yield real, data


@pytest.fixture
def fake(grid, policies):
    """The fast fake, for tests that edit the records it serves."""
    with IndexerServer(grid.copy()) as server:
        server.policy_file = policies
        yield server


#: The real server's tests share one process under xdist, so the server starts once.
REAL = pytest.param("real", marks=pytest.mark.xdist_group("tests/sources/test_indexer_build.py::real_indexer"))


@pytest.fixture(params=["fake", REAL])
def server(request, grid, policies):
    """The fast fake, and the real server behind a loopback proxy that injects the same faults."""
    if request.param == "fake":
        with IndexerServer(grid.copy()) as server:
            server.policy_file = policies
            yield server
        return
    real, data = request.getfixturevalue("real_indexer")
    with FaultProxy(data, real.graphql_url) as proxy:
        proxy.policy_file = policies
        yield proxy


def build(server, out, *, options=OPTIONS, gridproxy=True, policies=True):
    """Build from `server`, with the operator's policy file for the grid unless `policies` is off."""
    if policies and options.policy_file is None:
        options = BuildOptions(**{**options.__dict__, "policy_file": server.policy_file})
    return build_snapshot(
        out,
        period=PERIOD,
        network="dev",
        graphql_url=server.graphql_url,
        gridproxy_url=server.gridproxy_url if gridproxy else None,
        options=options,
        now=lambda: NOW,
    )


def _nodes_at_the_edges(built_path) -> set[int]:
    """Nodes with a report in an edge block of the built `/2` file (or stamped exactly at an edge):
    SPEC 10 reads such a report by its block, `/1` by its time (a report in the first block
    after END is in the period for `/2`, after it for `/1`), so their measurements may differ."""
    lines = iter(gzip.open(built_path) if str(built_path).endswith(".gz") else open(built_path, "rb"))
    header = orjson.loads(next(lines))
    assert header["format"] == "tfgrid-snapshot/2"
    edge_heights = {header["blocks"]["start"]["height"], header["blocks"]["end"]["height"]}
    edge_ts = {PERIOD.start_ts, PERIOD.end_ts}
    nodes = set()
    for line in lines:
        document = orjson.loads(line)
        events = document["events"]
        if edge_heights & set(events["height"]) or edge_ts & set(events["timestamp"]):
            nodes.add(document["node"]["node_id"])
    return nodes


def assert_same_receipts(expected, built_path):
    """The built `/2` file gives the receipts the grid's `/1` snapshot gives, node for node,
    except where a report lies in an edge block (read by block in `/2`, by time in `/1`)."""
    got = calculate_period(load_snapshot(built_path))
    at_edges = _nodes_at_the_edges(built_path)
    assert len(at_edges) <= len(expected.receipts) // 10  # the comparison covers the month
    assert [
        (r.node_id, r.receipt_hash, r.reward_musd, r.reward_tft_units)
        for r in got.receipts
        if r.node_id not in at_edges
    ] == [
        (r.node_id, r.receipt_hash, r.reward_musd, r.reward_tft_units)
        for r in expected.receipts
        if r.node_id not in at_edges
    ]
    assert [r.node_id for r in got.receipts] == [r.node_id for r in expected.receipts]
    return got


def assert_nothing_written(out):
    assert not out.exists()
    assert not list(out.parent.glob(out.name + ".tmp-*"))


# -- the key property ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["built.json", "built.json.gz"])
def test_the_built_snapshot_gives_the_same_receipts_as_the_grid_it_came_from(server, expected, tmp_path, name):
    out = tmp_path / name
    summary = build(server, out)
    got = assert_same_receipts(expected, out)
    # the month exercises the rules, so equal hashes mean something
    assert {"ok", "violation", "below_sla", "no_uptime"} <= set(got.report.by_eligibility)
    assert sum(r.nu_pm > 0 for r in got.receipts) > 10  # traffic was aggregated
    assert summary.nodes == NODES and summary.path == out
    assert not (tmp_path / f"{name}.parts").exists()  # the finished download is cleaned up
    snapshot = load_snapshot(out)
    # events are grouped by node and sorted: the streaming reader needs no buffering
    assert sum(len(events) for _, events in snapshot.iter_node_events()) > NODES * 1000
    source = snapshot.header.source
    assert source["graphql_url"] == server.graphql_url and source["indexer_height"] == summary.indexer_height
    assert source["built_at"] == NOW.isoformat()
    if name.endswith(".gz"):
        assert gzip.decompress(out.read_bytes()).startswith(b'{"format":"tfgrid-snapshot/2"')


def test_a_month_of_the_grids_size_gives_the_same_receipts_as_the_grid_it_came_from(tmp_path):
    """The grid's 120 nodes in pages of 40 (its nodes and twins span several pages, ending on an
    exactly full one), from the fast fake: the receipts of every node but those at the edges."""
    grid_file = _write_grid(tmp_path / "synthetic.json", FULL_NODES)
    full_policies = load_policy_file(policy_file_for(grid_file, tmp_path / "policies.json"))
    options = BuildOptions(**{**OPTIONS.__dict__, "page_size": 40, "nodes_per_chunk": 25})
    with IndexerServer(IndexerData.from_snapshot(grid_file)) as fake:
        fake.policy_file = full_policies
        out = tmp_path / "built.jsonl.gz"
        summary = build(fake, out, options=options)
        offsets = [variables["offset"] for names, variables, _ in fake.requests if names == ("nodes",)]
    assert offsets == [0, 40, 80, 120]
    expected = calculate_period(load_snapshot(grid_file))
    got = assert_same_receipts(expected, out)
    assert summary.nodes == FULL_NODES and len(got.receipts) == len(expected.receipts)
    assert {"ok", "violation", "below_sla", "no_uptime", "virtualized"} <= set(got.report.by_eligibility)
    assert sum(r.nu_pm > 0 for r in got.receipts) > 30


def test_usage_is_aggregated_per_node_from_contracts_bills_and_traffic(server, synthetic, tmp_path):
    out = tmp_path / "built.json"
    build(server, out)
    built = {n.node_id: n.consumption for n in load_snapshot(out).header.nodes}
    original = {n.node_id: n.consumption for n in load_snapshot(synthetic).header.nodes}
    assert built == original
    # node 3 is served as a contract deleted half-way plus one created then; node 1 carries a
    # contract deleted before the period and traffic reported outside it: none of that counts
    assert any(c.cru_seconds for node_id, c in built.items() if node_id % 3 == 0)


def test_notes_say_what_the_indexer_could_not_give_exactly(server, tmp_path):
    out = tmp_path / "built.json"
    notes = build(server, out).notes
    assert notes == load_snapshot(out).header.notes
    assert "Farm.stellarAddress" in notes[0] and "current state" in notes[0]
    assert any("resourcesUsed" in note for note in notes)
    deleted_reports = len(range(PERIOD.start_ts + 600, PERIOD.end_ts, 86_400))
    assert f"{deleted_reports} uptime report(s) in the window belong to nodes the indexer no longer has" in " ".join(
        notes
    )
    assert "1 node(s) created after the period end are left out" in notes
    assert DELETED_NODE_ID not in {n.node_id for n in load_snapshot(out).header.nodes}


def test_pages_that_end_exactly_full_are_followed_by_an_empty_page(server, tmp_path):
    build(server, tmp_path / "built.json")
    offsets = [variables["offset"] for names, variables, _ in server.requests if names == ("nodes",)]
    assert offsets == [0, 20, 40]  # 40 nodes in pages of 20, then an empty page


# -- what the real indexer holds: null minimal uptimes, empty public keys ------------------------


def test_a_policy_in_use_without_minimal_uptime_stops_the_build_naming_it_and_both_ways(server, synthetic, tmp_path):
    used = sorted({n.farming_policy_id for n in load_snapshot(synthetic).header.nodes} - {1, 2})
    assert used  # the month has nodes on policies that need their minimal uptime
    out = tmp_path / "built.json"
    with pytest.raises(PolicyValueUnknown) as caught:
        build(server, out, policies=False)
    message = str(caught.value)
    assert message.startswith(f"farming policy {', '.join(map(str, used))}: the indexer at {server.graphql_url}")
    assert "has no minimalUptime for it (null)" in message
    assert "--policies FILE" in message and "TfgridModule.FarmingPoliciesMap" in message
    assert "archive TFChain RPC endpoint" in message
    assert_nothing_written(out)


def test_policies_1_and_2_need_no_minimal_uptime_and_the_policy_file_is_recorded(server, synthetic, tmp_path):
    out = tmp_path / "built.json"
    notes = build(server, out).notes
    header = load_snapshot(out).header
    original = {p.id: p for p in load_snapshot(synthetic).header.farming_policies}
    built = {p.id: p for p in header.farming_policies}
    # policies 1 and 2 keep every value but the one the calculation does not read for them
    assert {i: p.model_copy(update={"minimal_uptime": 0}) for i, p in original.items() if i <= 2} == {
        i: p for i, p in built.items() if i <= 2
    }
    assert {i: p for i, p in original.items() if i > 2} == {i: p for i, p in built.items() if i > 2}
    policy_file = server.policy_file
    assert header.source["policy_file"] == {
        "path": str(policy_file.path),
        "sha256": policy_file.sha256,
        "network": "dev",
        "block": None,
    }
    assert any("farming policy 1, 2: no minimalUptime in the indexer" in note for note in notes)
    assert any(f"sha256 {policy_file.sha256}" in note for note in notes)


def test_twins_without_a_public_key_are_written_as_null(server, synthetic, tmp_path):
    out = tmp_path / "built.json"
    notes = build(server, out).notes
    keyless = sorted(t.twin_id for t in load_snapshot(synthetic).header.twins if t.pk is None)
    assert keyless and all(_keyless(twin_id) for twin_id in keyless)
    assert {t.twin_id: t.pk for t in load_snapshot(out).header.twins} == {
        t.twin_id: t.pk for t in load_snapshot(synthetic).header.twins
    }
    assert f"{len(keyless)} twin(s) have an empty publicKey in the indexer" in " ".join(notes)
    # and the calculation gives their nodes no InvalidPublicKey, as minting does
    result = calculate_period(load_snapshot(out))
    twin_of = {n.node_id: n.twin_id for n in load_snapshot(out).header.nodes}
    on_keyless = [r for r in result.receipts if twin_of[r.node_id] in keyless]
    assert on_keyless and not any(r.violation == "InvalidPublicKey" for r in on_keyless)


def test_a_policy_file_that_contradicts_the_indexer_stops_the_build(fake, tmp_path):
    policy = next(p for p in fake.data.tables["farmingPolicies"] if p["farmingPolicyID"] > 2)
    policy["minimalUptime"] = fake.policy_file.minimal_uptime[policy["farmingPolicyID"]] + 1
    out = tmp_path / "built.json"
    with pytest.raises(PolicyValueUnknown, match=rf"farming policy {policy['farmingPolicyID']}: the indexer says"):
        build(fake, out)
    assert_nothing_written(out)


# -- uptimes as the chain has them: u64 ---------------------------------------------------------


@contextmanager
def _uptime_values(server, request, values: dict[int, int]):
    """Serve the k-th window report of a node with the uptime `values[k]`, on the fake (an
    override) or in the real server's table (restored afterwards); yields (node id, event ids)."""
    data = server.data
    node_id = next(
        n for n, columns in sorted(data.uptime.by_node.items()) if n != DELETED_NODE_ID and len(columns[0]) > 100
    )
    first = data._first_index(node_id)
    rows = {k: data.uptime.row((node_id, first + k)) for k in values}
    if not isinstance(server, FaultProxy):
        for k, value in values.items():
            data.uptime_overrides[(node_id, k)] = {**rows[k], "uptime": str(value)}
        yield node_id, {rows[k]["id"]: value for k, value in values.items()}
        return
    real, _ = request.getfixturevalue("real_indexer")
    with real.connect() as conn:
        for k, value in values.items():
            conn.execute("UPDATE uptime_event SET uptime = %s WHERE id = %s", (value, rows[k]["id"]))
        try:
            yield node_id, {rows[k]["id"]: value for k, value in values.items()}
        finally:
            for row in rows.values():
                conn.execute("UPDATE uptime_event SET uptime = %s WHERE id = %s", (int(row["uptime"]), row["id"]))


def _node_line(path, node_id: int) -> dict:
    with open(path, "rb") as lines:
        return next(doc for doc in map(orjson.loads, lines) if doc.get("node", {}).get("node_id") == node_id)


def test_uptimes_past_i64_are_written_exactly_up_to_the_chains_u64(server, request, tmp_path):
    values = {10: 2**63, 11: 2**64 - 1, 12: 2**63 - 1}
    out = tmp_path / "built.json"
    with _uptime_values(server, request, values) as (node_id, by_id):
        build(server, out)
    events = _node_line(out, node_id)["events"]
    at = {(h, i): v for h, i, v in zip(events["height"], events["index"], events["value"], strict=True)}
    assert {event_position(event_id): at[event_position(event_id)] for event_id in by_id} == {
        event_position(event_id): value for event_id, value in by_id.items()
    }
    # the loader and the calculation take the chain's u64 (SPEC 10): the node gets a receipt
    receipts = {r.node_id: r for r in calculate_period(load_snapshot(out)).receipts}
    assert node_id in receipts


def test_an_uptime_outside_u64_stops_the_build_naming_the_record(server, request, tmp_path):
    out = tmp_path / "built.json"
    with _uptime_values(server, request, {10: 2**64}) as (node_id, _), pytest.raises(IndexerDataError) as caught:
        build(server, out)
    assert caught.value.entity == "uptimeEvents"
    assert f"(nodeID {node_id})" in caught.value.where and "page at offset" in caught.value.where
    assert f"uptime {2**64} is outside the chain's u64 (at most {2**64 - 1})" in str(caught.value)
    assert_nothing_written(out)


# -- minting's post-period blocks are counted in blocks, not in time -----------------------------

#: Two hours without a block, from an hour after the period end: minting's 16,200 post-period
#: blocks then end two hours after END + 27 h.
_GAP_S = 7200


def _chain_goes_on(fake) -> None:
    """A report well past the post-period blocks: the indexer has processed them all."""
    fake.data.uptime.add(DELETED_NODE_ID, PERIOD.window_end_ts + _GAP_S + 3 * 3600, 1, fake.data.next_seq())


def test_after_missed_blocks_the_post_period_blocks_are_read_by_height(synthetic, policies, tmp_path):
    with missed_blocks(PERIOD.end_ts + 3600, _GAP_S), IndexerServer(IndexerData.from_snapshot(synthetic)) as fake:
        fake.policy_file = policies
        _chain_goes_on(fake)
        out = tmp_path / "built.json"
        build(fake, out)
        header = orjson.loads(out.read_bytes().split(b"\n", 1)[0])
        last_read = header["blocks"]["end"]["height"] + 16_200
        assert block_stamp(last_read) > PERIOD.window_end_ts + _GAP_S - 600
    # every node reported once more 10 min after END + 27 h (uptime 9,999,999): with the gap,
    # that report is in a post-period block minting reads, so the snapshot holds it
    late = []
    with open(out, "rb") as lines:
        next(lines)
        for document in map(orjson.loads, lines):
            events = document["events"]
            late += [
                (h, ts)
                for h, ts, v in zip(events["height"], events["timestamp"], events["value"], strict=True)
                if v == 9_999_999
            ]
    assert len(late) > NODES // 2
    assert all(ts == PERIOD.window_end_ts + 600 and h <= last_read for h, ts in late)
    calculate_period(load_snapshot(out))  # and the calculation reads it


def test_an_indexer_short_of_the_post_period_blocks_is_behind(synthetic, policies, tmp_path):
    with missed_blocks(PERIOD.end_ts + 3600, _GAP_S), IndexerServer(IndexerData.from_snapshot(synthetic)) as fake:
        fake.policy_file = policies
        _chain_goes_on(fake)
        # past END + 27 h by time, but an hour short of the 16,200 blocks after the end
        fake.data.processed_ts = PERIOD.window_end_ts + _GAP_S - 3600
        out = tmp_path / "built.json"
        with pytest.raises(IndexerBehind, match=r"block\(s\) short of it \(blocks were missed") as caught:
            build(fake, out)
    assert "Try again later" in str(caught.value)
    assert_nothing_written(out)


# -- minimal uptimes from TFChain's state, through an RPC endpoint -------------------------------


def chain_policies(synthetic, *, shift: int = 0) -> dict[int, dict]:
    """The grid's farming policies as TFChain stores them (pallet-tfgrid's FarmingPolicy),
    their minimal uptime moved by `shift`."""
    return {
        p.id: {
            "version": 4,
            "id": p.id,
            "name": p.name.encode(),
            "cu": p.cu,
            "su": p.su,
            "nu": p.nu,
            "ipv4": p.ipv4,
            "minimal_uptime": p.minimal_uptime + shift,
            "policy_created": 10,
            "policy_end": 0,
            "immutable": p.immutable,
            "default": p.default,
            "node_certification": ("Diy", "Certified").index(p.node_certification),
            "farm_certification": ("NotCertified", "Gold").index(p.farm_certification),
        }
        for p in load_snapshot(synthetic).header.farming_policies
    }


def _with_rpc(url: str, *, policy_file=None) -> BuildOptions:
    return BuildOptions(**{**OPTIONS.__dict__, "rpc_url": url, "policy_file": policy_file})


def test_without_a_policy_file_minimal_uptimes_come_from_tfchain_state_at_the_end_block(
    server, synthetic, expected, tmp_path
):
    used = sorted({n.farming_policy_id for n in load_snapshot(synthetic).header.nodes} - {1, 2})
    with TfchainRpcServer(head=server.data.height(), policies=chain_policies(synthetic)) as node:
        out = tmp_path / "built.jsonl.gz"
        summary = build(server, out, options=_with_rpc(node.url), policies=False)
    header = _header_line(out)
    end_height = header["blocks"]["end"]["height"]
    assert header["source"]["policy_rpc"] == {
        "rpc_url": node.url,
        "block_height": end_height,
        "block_hash": block_hash(end_height),
        "policies": used,
    }
    assert header["source"]["policy_file"] is None
    original = {p.id: p.minimal_uptime for p in load_snapshot(synthetic).header.farming_policies}
    assert {p["id"]: p["minimal_uptime"] for p in header["farming_policies"] if p["id"] in used} == {
        i: original[i] for i in used
    }
    assert any(
        "from TFChain's state (TfgridModule.FarmingPoliciesMap)" in n and str(end_height) in n for n in summary.notes
    )
    # the client read the runtime's metadata and one storage value per policy, at the end block
    storage_reads = [key for method, key in node.asked if method.startswith("state_getStorage")]
    assert storage_reads == [policy_storage_key(i) for i in used]
    assert ("chain_getBlockHash", end_height) in node.asked
    assert any(method == "state_getMetadata" for method, _ in node.asked)
    assert_same_receipts(expected, out)


def test_the_policy_file_wins_over_the_chain(fake, synthetic, tmp_path):
    with TfchainRpcServer(head=fake.data.height(), policies=chain_policies(synthetic, shift=-7)) as node:
        out = tmp_path / "built.jsonl.gz"
        build(fake, out, options=_with_rpc(node.url, policy_file=fake.policy_file))
    header = _header_line(out)
    assert header["source"]["policy_rpc"] is None
    assert header["source"]["policy_file"]["sha256"] == fake.policy_file.sha256
    assert {p["id"]: p["minimal_uptime"] for p in header["farming_policies"] if p["id"] > 2} == (
        fake.policy_file.minimal_uptime
    )
    assert not any(method.startswith("state_") for method, _ in node.asked)


@pytest.mark.parametrize(
    ("node_kwargs", "words"),
    [
        ({"with_pallet": False}, "the runtime's metadata at block"),
        ({"garbled_policy": "first used"}, "could not be read or decoded"),
        ({"policies": {}}, "the map's default came back"),
        (None, "the node cannot be reached"),
    ],
)
def test_a_node_that_cannot_give_the_minimal_uptime_stops_the_build_in_one_line(
    fake, synthetic, tmp_path, node_kwargs, words
):
    used = sorted({n.farming_policy_id for n in load_snapshot(synthetic).header.nodes} - {1, 2})
    out = tmp_path / "built.jsonl.gz"
    if node_kwargs is None:
        url = f"http://operator:s3cret-token@127.0.0.1:{free_port()}/rpc"
        shown = url.replace("operator:s3cret-token@", "")
        # a build asks that node for the edge blocks' stamps first: that error is one line too
        with pytest.raises(IndexerUnreachable) as first:
            build(fake, out, options=_with_rpc(url), gridproxy=False, policies=False)
        assert str(first.value).startswith(f"{shown}: hash of block ") and "s3cret" not in str(first.value)
        with pytest.raises(TfchainStateError) as caught:
            read_minimal_uptimes(url, used, block_height=100)
    else:
        kwargs = dict(node_kwargs)
        if kwargs.get("garbled_policy") == "first used":
            kwargs["garbled_policy"] = used[0]
            kwargs["policies"] = chain_policies(synthetic)
            del kwargs["policies"][used[0]]
        kwargs.setdefault("policies", chain_policies(synthetic))
        with TfchainRpcServer(head=fake.data.height(), **kwargs) as node:
            shown = url = node.url
            with pytest.raises(TfchainStateError) as caught:
                build(fake, out, options=_with_rpc(url), gridproxy=False, policies=False)
    message = str(caught.value)
    assert message.startswith(f"TFChain RPC {shown}: farming policy ")
    assert "TfgridModule.FarmingPoliciesMap" in message and words in message
    assert "\n" not in message and "s3cret" not in message
    assert_nothing_written(out)


# -- faults --------------------------------------------------------------------------------


def test_an_indexer_behind_the_window_is_refused_with_how_far_behind(fake, tmp_path):
    fake.data.processed_ts = PERIOD.window_end_ts - 3 * 3600 - 600
    out = tmp_path / "built.json"
    with pytest.raises(IndexerBehind, match=r"3 h 10 min short of it") as caught:
        build(fake, out)
    assert isinstance(caught.value, SnapshotUnavailable)
    assert "period end + 27 h" in str(caught.value) and "Try again later" in str(caught.value)
    assert caught.value.needed_ts == PERIOD.window_end_ts
    assert_nothing_written(out)
    assert not (tmp_path / "built.json.parts").exists()


def test_5xx_bursts_and_slow_answers_during_the_download_are_absorbed(server, expected, tmp_path):
    server.faults.errors_left = 3
    # the slow answers outlast the timeout; the timeout leaves ordinary answers room on a busy machine
    server.faults.slow_left, server.faults.slow_s = 2, 2.0
    # the faults all land on the first request (two slow 503s that time out, then a 503): six attempts
    # leave one for an ordinary answer slower than the timeout on a busy machine
    options = BuildOptions(**{**OPTIONS.__dict__, "timeout_s": 1.0, "retry": RetryPolicy(attempts=6, backoff_s=0.01)})
    out = tmp_path / "built.json"
    build(server, out, options=options)
    # a slow answer is recorded when the server sends it, after the client gave up on it: the build
    # can finish first on a quiet machine
    deadline = time.monotonic() + 2 * server.faults.slow_s
    while _unavailable_answers(server) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _unavailable_answers(server) == 3
    assert_same_receipts(expected, out)


def _unavailable_answers(server) -> int:
    with server.lock:
        return sum(status == 503 for _, _, status in server.requests)


def test_an_indexer_that_keeps_failing_stops_the_build_without_a_file(server, tmp_path):
    server.faults.fail_after = 25
    out = tmp_path / "built.json"
    with pytest.raises(IndexerUnreachable, match="gave up after 4 attempt"):
        build(server, out)
    assert_nothing_written(out)


def _in_period(server, table, key):
    """The first row of `table` whose `key` time lies in the period (so the build reads it)."""
    return next(row for row in server.data.tables[table] if PERIOD.contains(int(row[key])))


def _node(server, index=5):
    return server.data.tables["nodes"][index]


@pytest.mark.parametrize(
    ("corrupt", "entity", "words"),
    [
        (lambda s: _node(s).pop("farmID"), "nodes", "missing field 'farmID'"),
        (
            lambda s: _node(s)["resourcesTotal"].update(cru="four"),
            "nodes",
            'resourcesTotal.cru: expected an integer or a string of digits (BigInt), got string "four"',
        ),
        (lambda s: _node(s).update(twinID="7"), "nodes", 'twinID: expected an integer, got string "7"'),
        (lambda s: _node(s).update(nodeID=None), "nodes", "nodeID is null"),
        (
            lambda s: s.data.tables["farms"][2].update(certification="Platinum"),
            "farms",
            "certification: expected one of NotCertified, Gold",
        ),
        (lambda s: s.data.tables["twins"][3].update(relay=5), "twins", "relay: expected a string, got number 5"),
        (lambda s: s.data.tables["farmingPolicies"][0].update(cu=None), "farmingPolicies", "cu is null"),
        (
            lambda s: s.data.uptime_overrides.update({(4, 7): {"nodeID": 4, "timestamp": "x1", "uptime": "5"}}),
            "uptimeEvents",
            "timestamp: expected an integer or a string of digits",
        ),
        (
            lambda s: s.data.uptime_overrides.update({(4, 8): "garbage"}),
            "uptimeEvents",
            'expected an object, got string "garbage"',
        ),
        (
            lambda s: s.data.uptime_overrides.update({(4, 9): {"nodeID": 4, "timestamp": str(PERIOD.start_ts + 9)}}),
            "uptimeEvents",
            "missing field 'uptime'",
        ),
        (
            lambda s: _in_period(s, "nodeContracts", "createdAt")["resourcesUsed"].update(cru="-4"),
            "nodeContracts",
            "resourcesUsed.cru is -4, must be at least 0",
        ),
        (
            lambda s: s.data.tables["nruConsumptions"][2].update(nru="-100"),
            "nruConsumptions",
            "nru is -100, must be at least 0",
        ),
        (
            lambda s: _in_period(s, "powerStateReports", "timestamp").update(newPowerState="Sleeping"),
            "powerStateReports",
            "newPowerState: expected one of Up, Down",
        ),
    ],
)
def test_malformed_records_stop_the_build_naming_the_record_and_field(fake, tmp_path, corrupt, entity, words):
    corrupt(fake)
    out = tmp_path / "built.json"
    with pytest.raises(IndexerDataError) as caught:
        build(fake, out)
    assert caught.value.entity == entity
    assert words in str(caught.value)
    assert "page at offset" in caught.value.where or "last report" in caught.value.where
    assert_nothing_written(out)


def test_odd_node_values_pass_through_and_only_that_node_is_refused(fake, expected, tmp_path):
    _node(fake, 5)["resourcesTotal"]["cru"] = "-4"
    _node(fake, 6)["connectionPrice"] = None
    node_id = _node(fake, 5)["nodeID"]
    out = tmp_path / "built.json"
    notes = build(fake, out).notes
    assert "1 node(s) have no connectionPrice in the indexer: written as the default 80 mUSD" in notes
    result = calculate_period(load_snapshot(out))
    odd = next(r for r in result.receipts if r.node_id == node_id)
    assert odd.eligibility == "invalid_record" and odd.reward_tft_units == 0
    assert "resources.cru is -4" in result.report.invalid_records[node_id]
    # every other node keeps its receipt (node 7's default price is its real price, 80), but for
    # those with a report in an edge block, which `/2` reads by block (assert_same_receipts)
    compared = {r.node_id for r in result.receipts} - {node_id} - _nodes_at_the_edges(out)
    others = {r.node_id: r.receipt_hash for r in result.receipts if r.node_id in compared}
    assert others == {r.node_id: r.receipt_hash for r in expected.receipts if r.node_id in compared}
    assert len(compared) >= len(expected.receipts) - 1 - len(expected.receipts) // 10


def test_a_missing_farm_or_twin_is_a_note_and_zeroes_those_nodes(fake, tmp_path):
    farm = fake.data.tables["farms"].pop(0)
    orphans = sorted(
        n["nodeID"]
        for n in fake.data.tables["nodes"]
        if n["farmID"] == farm["farmID"] and n["created"] <= PERIOD.end_ts
    )
    twin_node = _node(fake, 9)
    fake.data.tables["twins"] = [t for t in fake.data.tables["twins"] if t["twinID"] != twin_node["twinID"]]
    out = tmp_path / "built.json"
    notes = " ".join(build(fake, out, gridproxy=False).notes)
    assert f"{len(orphans)} node(s) reference a farm the indexer does not have" in notes
    assert f"nodes {twin_node['nodeID']}" in notes
    receipts = {r.node_id: r for r in calculate_period(load_snapshot(out)).receipts}
    assert all(receipts[n].eligibility == "invalid_record" for n in orphans)
    # a missing twin is minting's MissingTwin violation (SPEC 10): real units, reward 0
    twinless = receipts[twin_node["nodeID"]]
    assert twinless.violation == "MissingTwin" and twinless.eligibility == "violation"
    assert twinless.reward_tft_units == 0 and twinless.cu_pm > 0


def test_a_grid_proxy_that_disagrees_stops_the_build(server, tmp_path):
    server.faults.stats_override = {"nodes": NODES + 40}
    out = tmp_path / "built.json"
    with pytest.raises(
        CrossCheckFailed, match=rf"indexer counts {NODES + 1} nodes now, the grid proxy .* {NODES + 40}"
    ):
        build(server, out)
    assert_nothing_written(out)


def test_a_small_grid_proxy_difference_is_a_note(server, tmp_path):
    # 2.5 % of the 44 twins allows a difference of one (the default 1 % needs 100 twins)
    twins = len(server.data.tables["twins"])
    assert int((twins + 1) * 0.025) == 1
    server.faults.stats_override = {"twins": twins + 1}
    options = BuildOptions(**{**OPTIONS.__dict__, "gridproxy_tolerance_ratio": 0.025})
    notes = build(server, tmp_path / "built.json", options=options).notes
    assert any("twins now, the grid proxy" in note and "within the tolerance" in note for note in notes)


# -- resuming ------------------------------------------------------------------------------


def _page_requests(server) -> list[tuple]:
    """Successful requests that fetch data (the status and totals queries are always asked)."""
    keep = []
    for names, variables, status in server.requests:
        if status == 200 and names not in (
            ("squidStatus", "uptimeEvents"),
            ("nodesConnection", "farmsConnection", "twinsConnection"),
        ):
            keep.append((names, orjson.dumps(variables, option=orjson.OPT_SORT_KEYS)))
    return keep


def test_a_stopped_download_resumes_without_refetching_finished_parts(server, expected, synthetic, tmp_path):
    # a clean build, for the request count and the bytes to compare against
    clean = tmp_path / "clean" / "built.json"
    clean.parent.mkdir()
    build(server, clean)
    all_requests = len(_page_requests(server))

    server.requests.clear()
    server.faults.fail_after = all_requests // 2  # the indexer dies half-way
    out = tmp_path / "built.json"
    with pytest.raises(IndexerUnreachable):
        build(server, out)
    assert_nothing_written(out)
    parts = tmp_path / "built.json.parts"
    assert len(list(parts.glob("*.json"))) > 10
    first_run = _page_requests(server)

    server.requests.clear()
    server.faults.fail_after = None
    summary = build(server, out)
    second_run = _page_requests(server)
    assert not set(first_run) & set(second_run)  # nothing finished is asked again
    assert len(first_run) + len(second_run) == all_requests
    assert summary.parts_reused >= len(first_run) - 1
    assert out.read_bytes() == clean.read_bytes()
    assert not parts.exists()
    assert_same_receipts(expected, out)


def test_parts_of_another_build_are_not_reused(server, tmp_path):
    out = tmp_path / "built.json"
    server.faults.fail_after = 30
    with pytest.raises(IndexerUnreachable):
        build(server, out)
    server.faults.fail_after = None
    server.requests.clear()
    other = BuildOptions(**{**OPTIONS.__dict__, "page_size": 60})
    assert build(server, out, options=other).parts_reused == 0


def test_contract_creation_times_in_milliseconds_are_read_as_seconds(fake, synthetic, tmp_path):
    for contract in fake.data.tables["nodeContracts"]:
        contract["createdAt"] = str(int(contract["createdAt"]) * 1000)
    out = tmp_path / "built.json"
    build(fake, out)
    built = {n.node_id: n.consumption for n in load_snapshot(out).header.nodes}
    assert built == {n.node_id: n.consumption for n in load_snapshot(synthetic).header.nodes}


# -- the dry check, on both servers --------------------------------------------------------


def test_the_dry_check_passes_without_counting_or_writing(server, tmp_path):
    from payouts.sources.check import check_sources

    report = check_sources(
        period=PERIOD,
        network="dev",
        graphql_url=server.graphql_url,
        gridproxy_url=server.gridproxy_url,
        options=BuildOptions(**{**OPTIONS.__dict__, "policy_file": server.policy_file}),
    )
    assert report.would_succeed, report.problems
    assert any(line.startswith("uptimeEvents: ") for line in report.lines)
    assert any(f"{NODES + 1} nodes" in line for line in report.lines if line.startswith("grid proxy"))
    assert not any(name.endswith("Connection") for names, _, _ in server.requests for name in names)
    assert list(tmp_path.iterdir()) == []


# -- /2 edges: the first blocks after the period's start and end ------------------------------


def _header_line(path):
    with gzip.open(path) as lines:
        return orjson.loads(lines.readline())


def _true_first_block_after(ts: int) -> int:
    return (ts - GENESIS_TS) // 6 + 1  # block h is stamped GENESIS_TS + 6 h


def test_without_a_node_the_notes_name_the_edge_ambiguity(fake, tmp_path):
    out = tmp_path / "built.jsonl.gz"
    summary = build(fake, out)
    header = _header_line(out)
    assert header["format"] == "tfgrid-snapshot/2" and header["source"]["tfchain_rpc_url"] is None
    start, end = header["blocks"]["start"], header["blocks"]["end"]
    # the grid's 120 nodes report every 40 minutes: blocks without events lie around the start
    assert start["height"] > _true_first_block_after(PERIOD.start_ts)
    note = next(n for n in summary.notes if "the first block after the period's start" in n)
    lowest = int(note.split("is one of blocks ")[1].split("..")[0])
    # the blocks the note names hold the true first block after START, and the one written
    assert lowest <= _true_first_block_after(PERIOD.start_ts) < start["height"]
    assert f"{lowest}..{start['height']}:" in note and "PAYOUTS_TFCHAIN_RPC_URL" in note
    assert start["timestamp"] > PERIOD.start_ts and end["timestamp"] > PERIOD.end_ts
    load_snapshot(out)  # the loader accepts the header's blocks


def test_a_node_resolves_the_blocks_in_an_edge_gap(fake, expected, tmp_path):
    with TfchainRpcServer(head=fake.data.height()) as node:
        options = BuildOptions(**{**OPTIONS.__dict__, "rpc_url": node.url})
        out = tmp_path / "built.jsonl.gz"
        summary = build(fake, out, options=options)
    header = _header_line(out)
    for name, edge_ts in (("start", PERIOD.start_ts), ("end", PERIOD.end_ts)):
        block = header["blocks"][name]
        assert block["height"] == _true_first_block_after(edge_ts)
        assert block["timestamp"] == block_stamp(block["height"])  # the node's stamp, floored to seconds
    assert not any("PAYOUTS_TFCHAIN_RPC_URL" in note for note in summary.notes)
    asked_blocks = [height for method, height in node.asked if method == "chain_getBlockHash"]
    assert 0 < len(asked_blocks) <= 2 * 10  # binary searches over the gaps, not a block walk
    assert header["source"]["tfchain_rpc_url"] == node.url
    assert_same_receipts(expected, out)
