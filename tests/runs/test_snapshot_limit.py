"""The setting PAYOUTS_SNAPSHOT_MAX_BYTES holds for the monthly job as for `payouts calculate`:
freezing a dropped file and calculating a frozen one both refuse a file past it (and a file
within it goes through)."""

from __future__ import annotations

import shutil

import pytest

from config.settings import Settings
from payouts.periods import Period
from payouts.snapshot.load import SnapshotError
from payouts.snapshot.synthetic import write_synthetic_snapshot
from payouts.sources import freeze_snapshot
from payouts.wiring import build_monthly_job

P = Period(81)


def _settings(tmp_path, limit: int) -> Settings:
    return Settings(state_dir=tmp_path / "state", network="dev", first_period="2025-01", snapshot_max_bytes=limit)


@pytest.fixture
def month(tmp_path):
    path = tmp_path / "month.jsonl.gz"
    write_synthetic_snapshot(path, nodes=5, period=P, seed=3, snapshot_format=2)
    return path


def test_freezing_a_dropped_file_keeps_to_the_setting(tmp_path, month):
    settings = _settings(tmp_path, 10_000)
    settings.snapshot_drop_folder.mkdir(parents=True)
    shutil.copyfile(month, settings.snapshot_drop_folder / "2025-01.jsonl.gz")
    with pytest.raises(SnapshotError, match="PAYOUTS_SNAPSHOT_MAX_BYTES"):
        freeze_snapshot(settings, P.offset, tmp_path / "frozen")
    assert freeze_snapshot(_settings(tmp_path, 10**9), P.offset, tmp_path / "frozen").is_file()


def test_the_monthly_job_calculates_within_the_setting_only(tmp_path, month, engine):
    settings = _settings(tmp_path, 10_000)
    frozen = settings.state_dir / "frozen"
    for folder in (settings.snapshot_drop_folder, frozen):
        folder.mkdir(parents=True)
    shutil.copyfile(month, settings.snapshot_drop_folder / "2025-01.jsonl.gz")
    # frozen already (frozen means frozen: not validated again), so the calculation reads it first
    shutil.copyfile(month, frozen / "tfgrid-snapshot-81.jsonl.gz")
    with pytest.raises(SnapshotError, match="PAYOUTS_SNAPSHOT_MAX_BYTES"):
        build_monthly_job(settings, engine).advance(P.offset)
    step = build_monthly_job(_settings(tmp_path, 10**9), engine).advance(P.offset, max_steps=1)
    assert step.did == ["calculate"] and step.run_id is not None
