"""Settings from the environment, log lines with run context, and no secret in any output."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from stellar_sdk import Keypair
from typer.testing import CliRunner

from config.logging import configure_logging
from config.settings import Settings
from payouts.cli.main import app
from payouts.ledger.db import make_engine, session_scope
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories

PASSWORD = "Sup3r-s3cret-pw"


def test_settings_come_from_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", f"postgresql+psycopg://payouts:{PASSWORD}@db.example/payouts")
    monkeypatch.setenv("PAYOUTS_CAP_RUN_TFT_UNITS", "1000")
    settings = Settings()
    assert settings.cap_run_tft_units == 1000
    assert PASSWORD in settings.ledger_url()
    assert PASSWORD not in settings.ledger_url_for_display()
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())


def test_default_ledger_is_sqlite_in_the_state_dir(tmp_path):
    settings = Settings(state_dir=tmp_path)
    assert settings.ledger_url() == f"sqlite:///{tmp_path / 'payouts.sqlite3'}"


def test_run_log_lines_carry_run_id_and_period_as_json(sqlite_url, tmp_path):
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    structlog.contextvars.clear_contextvars()
    snapshot = load_snapshot(factories.write(tmp_path / "s.json", factories.snapshot()))
    with session_scope(make_engine(sqlite_url)) as session:
        calculate_run(session, snapshot)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    calculated = [line for line in lines if line["event"] == "run.calculated"]
    assert calculated and calculated[0]["period"] == "2025-01" and calculated[0]["run_id"] == 1
    assert all("timestamp" in line and "level" in line for line in lines)
    structlog.contextvars.clear_contextvars()


def test_fields_named_like_secrets_are_redacted():
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    structlog.get_logger().info("key.loaded", payout_secret="SXXXX", database_url=f"postgresql://u:{PASSWORD}@h/d")
    assert PASSWORD not in stream.getvalue() and "SXXXX" not in stream.getvalue()
    assert "**redacted**" in stream.getvalue()


def test_unreachable_database_error_never_shows_the_password(monkeypatch, tmp_path):
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", f"postgresql+psycopg://payouts:{PASSWORD}@127.0.0.1:1/payouts")
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code != 0
    assert "cannot open the ledger" in result.stderr
    assert PASSWORD not in result.output and PASSWORD not in result.stderr
    assert "***" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("PAYOUTS_SNAPSHOT_MAX_BYTES", "4GiB", "PAYOUTS_SNAPSHOT_MAX_BYTES: Input should be a valid integer"),
        ("PAYOUTS_SNAPSHOT_MAX_BYTES", "0", "PAYOUTS_SNAPSHOT_MAX_BYTES: Input should be greater than or equal to 1"),
        ("PAYOUTS_APPROVERS", "{seed}", "PAYOUTS_APPROVERS: holds a value shaped like a Stellar secret seed"),
        (
            "PAYOUTS_APPROVERS",
            "{public},{seed}",
            "PAYOUTS_APPROVERS: holds a value shaped like a Stellar secret seed",
        ),
    ],
)
def test_a_bad_setting_is_named_by_the_cli_without_a_traceback_or_its_value(monkeypatch, name, value, named):
    seed = Keypair.random()
    given = value.format(seed=seed.secret, public=Keypair.random().public_key)
    monkeypatch.setenv(name, given)
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", "postgresql+psycopg://payouts:Pw-not-shown@127.0.0.1:1/ledger")
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.exception
    text = " ".join(result.output.split())
    assert text.startswith("error: 1 setting is not valid") and named in text
    assert seed.secret not in result.output and "Pw-not-shown" not in result.output
    assert "Traceback" not in result.output and "4GiB" not in result.output
