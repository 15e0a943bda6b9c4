"""`calculate`, `snapshot` and `run` refuse a period whose inputs are not complete by the clock
handed to the CLI, saying when they will be; `--rehearsal` works on the sandbox network only
and marks the run (shown by `show` and `runs`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.clock import FixedClock
from payouts.periods import Period
from tests import factories

runner = CliRunner()
DECEMBER = Period.from_label("2026-12")
DUE = "2026-12 ends 2026-12-31 18:56:40 UTC; its inputs are complete after 2027-01-01 21:56:40 UTC"
#: mid-December 2026 by the clock the CLI is handed (not today's date)
MID_DECEMBER = FixedClock(datetime(2026, 12, 15, 12, 0, tzinfo=UTC))


def invoke(*args: str, clock=MID_DECEMBER):
    return runner.invoke(app, list(args), catch_exceptions=False, obj=clock)


@pytest.fixture
def december_file(tmp_path):
    document = factories.snapshot(period_offset=DECEMBER.offset, nodes=[factories.node(1234), factories.node(1300)])
    return factories.write(tmp_path / "2026-12.json", document)


def test_calculate_refuses_an_unended_period_saying_when_it_is_due(december_file):
    result = invoke("calculate", "--snapshot", str(december_file))
    assert result.exit_code == 3
    assert DUE in result.stderr and "2026-12-15 12:00:00 UTC" in result.stderr
    assert json.loads(invoke("runs", "--json").stdout) == []
    after = FixedClock(datetime.fromtimestamp(DECEMBER.window_end_ts, UTC))
    done = invoke("calculate", "--snapshot", str(december_file), "--json", clock=after)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["rehearsal"] is False


def test_run_for_a_future_month_says_when_it_is_due_instead_of_no_snapshot():
    result = invoke("run", "--period", "2026-12", "--in-process")
    assert result.exit_code == 3
    assert DUE in result.stderr and "snapshot" not in result.stderr
    queued = invoke("run", "--period", "2026-12")  # refused before anything is queued
    assert queued.exit_code == 3 and DUE in queued.stderr


def test_snapshot_refuses_to_freeze_an_unended_period(tmp_path):
    result = invoke("snapshot", "--period", "2026-12", "--out", str(tmp_path / "s.json"))
    assert result.exit_code == 3 and DUE in result.stderr
    assert not (tmp_path / "s.json").exists()


def test_a_rehearsal_on_the_sandbox_is_recorded_and_shown_as_one(december_file):
    result = invoke("calculate", "--snapshot", str(december_file), "--rehearsal", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["rehearsal"] is True and document["run_id"] == 1
    (row,) = json.loads(invoke("runs", "--json").stdout)
    assert row["rehearsal"] is True
    # the period cell says so (a terminal wide enough that the table does not wrap the cell)
    assert (
        "(rehearsal)"
        in runner.invoke(app, ["runs"], catch_exceptions=False, obj=MID_DECEMBER, env={"COLUMNS": "200"}).stdout
    )
    review = json.loads(invoke("show", "1", "--json").stdout)
    assert review["rehearsal"] is True
    assert "rehearsal" in invoke("show", "1").stdout


@pytest.mark.parametrize("network", ["main", "test"])
def test_a_rehearsal_is_refused_on_the_main_and_test_networks(network, december_file, tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOUTS_NETWORK", network)
    monkeypatch.setenv("PAYOUTS_STATE_DIR", str(tmp_path / "state"))
    for args in (
        ["calculate", "--snapshot", str(december_file), "--rehearsal"],
        ["run", "--period", "2026-12", "--rehearsal", "--in-process"],
        ["snapshot", "--period", "2026-12", "--rehearsal", "--out", str(tmp_path / "s.json")],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"sandbox network (dev) only; this is the {network} network" in result.stderr
