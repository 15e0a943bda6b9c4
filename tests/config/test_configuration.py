"""Configuration that cannot be swapped underneath: absolute state folder and an existing ledger
on the main and test networks, `.env` only from the state folder or PAYOUTS_ENV_FILE, and an
approver set recorded in the ledger that changes only when signed by the set before it."""

from __future__ import annotations

import json

import psycopg
import pytest
from sqlmodel import Session
from stellar_sdk import Keypair
from typer.testing import CliRunner

from config.settings import SettingsError, load_settings
from payouts.cli.main import app
from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import ApproverSet, Run
from payouts.runs.approvals import (
    ApproverSetError,
    UnknownApprover,
    approve_run,
    approvers_in_effect,
    build_manifest,
    sign_approver_change,
    sign_manifest,
    valid_approvals,
)
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from payouts.stellar.keys import write_keypair
from tests import factories

runner = CliRunner()


def _said(result) -> str:
    """stderr with the terminal's line wrapping undone."""
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("network", ["main", "test"])
def test_the_state_folder_must_be_absolute_on_real_networks(monkeypatch, network):
    monkeypatch.setenv("PAYOUTS_NETWORK", network)
    monkeypatch.setenv("PAYOUTS_STATE_DIR", "var")
    with pytest.raises(SettingsError, match="PAYOUTS_STATE_DIR must be an absolute path"):
        load_settings()
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 2 and "absolute path" in _said(result)
    monkeypatch.setenv("PAYOUTS_NETWORK", "dev")
    assert str(load_settings().state_dir) == "var"  # the sandbox keeps its relative default


def test_env_is_read_from_the_state_folder_or_payouts_env_file_never_the_current_directory(monkeypatch, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / ".env").write_text("PAYOUTS_CAP_RUN_TFT_UNITS=111\n")  # the current directory
    assert load_settings().cap_run_tft_units == 10_000_000 * 10**7  # the default: caps are on
    (state / ".env").write_text("PAYOUTS_CAP_RUN_TFT_UNITS=222\n")
    assert load_settings().cap_run_tft_units == 222
    named = tmp_path / "elsewhere.env"
    named.write_text("PAYOUTS_CAP_RUN_TFT_UNITS=333\n")
    monkeypatch.setenv("PAYOUTS_ENV_FILE", str(named))
    assert load_settings().cap_run_tft_units == 333
    monkeypatch.setenv("PAYOUTS_ENV_FILE", str(tmp_path / "missing.env"))
    with pytest.raises(SettingsError, match="PAYOUTS_ENV_FILE names .* which is not a file"):
        load_settings()


@pytest.mark.parametrize("network", ["main", "test"])
def test_a_missing_sqlite_ledger_is_an_error_until_db_init(monkeypatch, tmp_path, network):
    monkeypatch.setenv("PAYOUTS_NETWORK", network)
    ledger = tmp_path / "state" / "payouts.sqlite3"
    for command in (["runs"], ["show", "1"], ["held"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "no ledger at" in _said(result) and "payouts db init" in _said(result)
    assert not ledger.exists()  # nothing created by accident
    result = runner.invoke(app, ["db", "init"])
    assert result.exit_code == 0, result.output
    assert "created" in result.stderr and ledger.is_file()
    assert runner.invoke(app, ["runs"]).exit_code == 0
    assert "exists" in runner.invoke(app, ["db", "init"]).stderr  # safe to run again


def test_an_empty_postgresql_database_is_not_a_ledger_on_real_networks(monkeypatch, postgres_server):
    name = "payouts_empty_for_init"
    with psycopg.connect(
        f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv("PAYOUTS_NETWORK", "test")
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", postgres_server.url(name))
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 2 and "holds no ledger" in _said(result)
    assert runner.invoke(app, ["db", "init"]).exit_code == 0
    assert runner.invoke(app, ["runs"]).exit_code == 0


def test_db_init_records_the_payout_account_and_the_approver_set(monkeypatch, tmp_path):
    payout, approver = Keypair.random(), Keypair.random()
    key = tmp_path / "payout.key"
    write_keypair(key, payout)
    monkeypatch.setenv("PAYOUTS_PAYOUT_KEY_FILE", str(key))
    monkeypatch.setenv("PAYOUTS_APPROVERS", approver.public_key)
    result = runner.invoke(app, ["db", "init"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"payout account {payout.public_key}" in said
    assert "approvers in effect: 1, 1 required" in said
    assert payout.secret not in result.output


# -- the approver set ----------------------------------------------------------------------


@pytest.fixture
def calculated(session, tmp_path) -> Run:
    snapshot = load_snapshot(factories.write(tmp_path / "s.json", factories.snapshot()))
    run = calculate_run(session, snapshot).run
    session.commit()
    return run


def _approve(session, run, keypair, approvers, required):
    return approve_run(
        session,
        run,
        public_key=keypair.public_key,
        signature_b64=sign_manifest(build_manifest(session, run), keypair),
        approvers=[k.public_key for k in approvers],
        required=required,
    )


def test_an_approver_added_in_the_settings_counts_only_once_the_previous_set_signed(session, calculated):
    a, b, newcomer = Keypair.random(), Keypair.random(), Keypair.random()
    state = approvers_in_effect(session, [a.public_key, b.public_key], 2)  # the first set, as configured
    assert state.threshold == 2 and set(state.approvers) == {a.public_key, b.public_key}
    # someone adds a key to PAYOUTS_APPROVERS and lowers the threshold: it does not count yet
    configured = [a.public_key, newcomer.public_key]
    with pytest.raises(UnknownApprover, match="not in the approver set recorded in the ledger"):
        _approve(session, calculated, newcomer, [a, newcomer], 1)
    in_effect = approvers_in_effect(session, configured, 1)
    assert in_effect.threshold == 2 and in_effect.approvers == (a.public_key,)
    assert "takes effect only once 2 of the recorded approvers sign it" in in_effect.notice(configured, 1)
    # the newcomer cannot sign its own admission; one old approver is not enough
    with pytest.raises(ApproverSetError, match="not in the approver set in effect"):
        sign_approver_change(session, newcomer, configured, 1)
    assert sign_approver_change(session, a, configured, 1).pending_signatures == 1
    assert approvers_in_effect(session, configured, 1).approvers == (a.public_key,)
    after = sign_approver_change(session, b, configured, 1)
    assert after.pending is None and set(after.approvers) == set(configured) and after.threshold == 1
    assert "the approver set changed on" in after.notice(configured, 1)
    assert _approve(session, calculated, newcomer, [a, newcomer], 1) == 1
    assert calculated.status == "approved"


def test_an_approver_set_forged_in_the_ledger_does_not_count(session, calculated):
    a, b, thief = Keypair.random(), Keypair.random(), Keypair.random()
    approvers_in_effect(session, [a.public_key, b.public_key], 2)
    # a successor written straight into the ledger, with a signature that is not over it
    session.add(
        ApproverSet(
            approvers_json=json.dumps([thief.public_key]),
            threshold=1,
            previous_id=1,
            signatures_json=json.dumps({a.public_key: "AAAA", b.public_key: "AAAA"}),
        )
    )
    session.flush()
    with pytest.raises(UnknownApprover):
        _approve(session, calculated, thief, [thief], 1)
    # and a thief in the configuration only (not recorded) counts for nothing
    assert valid_approvals(session, calculated, [thief.public_key]) == []


def test_show_and_pay_say_when_the_approver_set_changed(monkeypatch, tmp_path):
    a, b = Keypair.random(), Keypair.random()
    for keypair, name in ((a, "a.key"), (b, "b.key")):
        write_keypair(tmp_path / name, keypair)
    monkeypatch.setenv("PAYOUTS_APPROVERS", a.public_key)
    snapshot = factories.write(tmp_path / "s.json", factories.snapshot())
    run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]
    assert runner.invoke(app, ["db", "init"]).exit_code == 0  # records {a}, 1 required
    monkeypatch.setenv("PAYOUTS_APPROVERS", f"{a.public_key},{b.public_key}")
    shown = runner.invoke(app, ["show", str(run_id)])
    assert "differ from the approver set recorded in the ledger" in _said(shown)
    refused = runner.invoke(app, ["approve", str(run_id), "-k", str(tmp_path / "b.key"), "-y"])
    assert refused.exit_code == 1 and "not in the approver set recorded" in _said(refused)
    signed = runner.invoke(app, ["approvers", "sign", "-k", str(tmp_path / "a.key")])
    assert signed.exit_code == 0 and "now in effect" in _said(signed), signed.output
    shown = runner.invoke(app, ["show", str(run_id)])
    assert "the approver set changed on" in _said(shown)
    listed = runner.invoke(app, ["approvers", "show"])
    assert a.public_key in listed.stdout and b.public_key in listed.stdout
    assert runner.invoke(app, ["approve", str(run_id), "-k", str(tmp_path / "b.key"), "-y"]).exit_code == 0
    paid = runner.invoke(app, ["pay", str(run_id)])  # no keys here: it stops at the key check
    assert "approvers: the approver set changed on" in _said(paid) and paid.exit_code == 2
    with Session(make_engine(load_settings().ledger_url())) as check:
        assert check.get(Run, run_id).status == "approved"


def test_db_upgrade_names_runs_approved_under_the_earlier_manifest(monkeypatch, tmp_path):
    approver = Keypair.random()
    write_keypair(tmp_path / "k.key", approver)
    monkeypatch.setenv("PAYOUTS_APPROVERS", approver.public_key)
    snapshot = factories.write(tmp_path / "s.json", factories.snapshot())
    run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]
    assert runner.invoke(app, ["approve", str(run_id), "-k", str(tmp_path / "k.key"), "-y"]).exit_code == 0
    engine = make_engine(load_settings().ledger_url())
    with session_scope(engine) as session:
        from sqlalchemy import update

        from payouts.ledger.models import Approval

        session.execute(update(Approval).values(manifest_json='{"code_version":"x","payment_count":3}'))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0
    assert f"run {run_id} " in _said(result) and "needs new approvals" in _said(result)
