"""`freeze_snapshot`, the monthly job's entry point: from the drop folder or the indexer."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from config.settings import Settings
from payouts.periods import Period
from payouts.snapshot.load import SnapshotError, load_snapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot
from payouts.sources import DropFolderAmbiguous, SnapshotUnavailable, freeze_snapshot
from payouts.sources.errors import IndexerBehind
from payouts.sources.graphql import RetryPolicy
from payouts.sources.indexer import BuildOptions
from tests.sources.indexer_server import IndexerData, IndexerServer, policy_file_for

PERIOD = Period.from_label("2025-11")


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "month.json"
    write_synthetic_snapshot(path, nodes=15, period=PERIOD, seed=2)
    return path


@pytest.fixture
def drop(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def settings_for(drop, **extra) -> Settings:
    return Settings(snapshot_drop_folder=drop, **extra)


def test_the_default_drop_folder_is_in_the_state_dir(tmp_path):
    assert Settings().snapshot_drop_folder == tmp_path / "state" / "snapshots"  # PAYOUTS_STATE_DIR
    assert Settings().snapshot_source == "drop_folder"


@pytest.mark.parametrize(
    "name", ["2025-11.json", "2025-11.json.gz", "tfgrid-snapshot-91.json", "tfgrid-snapshot-91.json.gz"]
)
def test_the_periods_file_is_validated_and_copied_byte_for_byte(month, drop, tmp_path, name):
    data = month.read_bytes()
    (drop / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    out_dir = tmp_path / "run"
    frozen = freeze_snapshot(settings_for(drop), PERIOD.offset, out_dir)
    assert frozen.parent == out_dir and frozen.name.startswith("tfgrid-snapshot-91.json")
    assert frozen.read_bytes() == (drop / name).read_bytes()
    assert load_snapshot(frozen).sha256 == load_snapshot(month).sha256
    assert [p.name for p in out_dir.iterdir()] == [frozen.name]  # no temp file left behind


def test_a_frozen_file_stays_frozen(month, drop, tmp_path):
    (drop / "2025-11.json").write_bytes(month.read_bytes())
    out_dir = tmp_path / "run"
    frozen = freeze_snapshot(settings_for(drop), PERIOD.offset, out_dir)
    (drop / "2025-11.json").write_text("replaced later")  # the run already holds the SHA-256
    assert freeze_snapshot(settings_for(drop), PERIOD.offset, out_dir) == frozen
    assert frozen.read_bytes() == month.read_bytes()


def test_a_missing_file_is_unavailable_and_says_what_it_looked_for(drop, tmp_path):
    (drop / "2025-10.json").write_text("{}")  # another month
    with pytest.raises(SnapshotUnavailable, match=r"no snapshot for period 2025-11 \(offset 91\)") as caught:
        freeze_snapshot(settings_for(drop), PERIOD.offset, tmp_path / "run")
    assert "2025-11.json.gz" in str(caught.value) and "tfgrid-snapshot-91.json" in str(caught.value)
    assert not (tmp_path / "run").exists()


def test_a_missing_drop_folder_is_unavailable_too(tmp_path):
    with pytest.raises(SnapshotUnavailable, match="does not exist"):
        freeze_snapshot(settings_for(tmp_path / "nowhere"), PERIOD.offset, tmp_path / "run")


def _bad(month, change) -> bytes:
    document = json.loads(month.read_bytes())
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "json_path", "words"),
    [
        (lambda d: d["nodes"][3]["resources"].update(cru="four"), "$.nodes[3].resources.cru", "integer"),
        (lambda d: d["farms"][0].pop("stellar_address"), "$.farms[0]", "missing required key"),
        (lambda d: d.update(period_offset=90), "$.period_offset", "expected 91 for period 2025-11"),
        (lambda d: d.update(network="main"), "$.network", "expected 'dev'"),
        (lambda d: d["uptime_events"][40].update(uptime="5"), "$.uptime_events[40].uptime", "expected an integer"),
    ],
)
def test_a_malformed_file_is_refused_naming_file_and_path(month, drop, tmp_path, change, json_path, words):
    (drop / "2025-11.json").write_bytes(_bad(month, change))
    with pytest.raises(SnapshotError) as caught:
        freeze_snapshot(settings_for(drop), PERIOD.offset, tmp_path / "run")
    assert caught.value.file == str(drop / "2025-11.json")
    assert caught.value.json_path == json_path and words in caught.value.problem
    assert not (tmp_path / "run").exists()  # nothing is copied before the whole file passed


def test_two_files_for_one_period_are_refused(month, drop, tmp_path):
    (drop / "2025-11.json").write_bytes(month.read_bytes())
    (drop / "tfgrid-snapshot-91.json.gz").write_bytes(gzip.compress(month.read_bytes()))
    with pytest.raises(DropFolderAmbiguous, match="2025-11.json, tfgrid-snapshot-91.json.gz"):
        freeze_snapshot(settings_for(drop), PERIOD.offset, tmp_path / "run")


def test_the_indexer_source_builds_the_file_and_reports_a_late_indexer_as_unavailable(month, drop, tmp_path):
    options = BuildOptions(retry=RetryPolicy(attempts=2, backoff_s=0.01))
    policies = policy_file_for(month, tmp_path / "policies.json")
    with IndexerServer(IndexerData.from_snapshot(month)) as server:
        settings = settings_for(
            drop,
            snapshot_source="indexer",
            graphql_url=server.graphql_url,
            gridproxy_url=server.gridproxy_url,
            snapshot_policies_file=policies,
        )
        server.data.processed_ts = PERIOD.end_ts  # the 27 h after the end are not indexed yet
        with pytest.raises(SnapshotUnavailable) as caught:
            freeze_snapshot(settings, PERIOD.offset, tmp_path / "run", options)
        assert isinstance(caught.value, IndexerBehind)
        assert not list((tmp_path / "run").glob("tfgrid-snapshot-*"))

        server.data.processed_ts = None
        frozen = freeze_snapshot(settings, PERIOD.offset, tmp_path / "run", options)
    assert frozen == tmp_path / "run" / "tfgrid-snapshot-91.json.gz"
    header = load_snapshot(frozen).header
    assert header.period_offset == PERIOD.offset and len(header.nodes) == 15
    assert header.source["graphql_url"] == server.graphql_url
    # the policies the indexer has no minimal uptime for came from the settings' policy file
    assert header.source["policy_file"]["sha256"] == hashlib.sha256(policies.read_bytes()).hexdigest()
