"""A grid month ready for the monthly job: sandbox accounts, a drop folder with the period's
snapshot, settings for the monthly job, and helpers to approve and to watch the ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, func, select
from stellar_sdk import Keypair

from config.settings import Settings
from payouts.ledger.db import make_engine, migrate, session_scope
from payouts.ledger.models import LedgerEvent, Payment, Run
from payouts.periods import Period
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.sandbox.accounts import fund_payout_account, init_sandbox
from payouts.snapshot.synthetic import write_synthetic_snapshot

PERIOD = Period.from_label("2025-11")


@dataclass
class Month:
    settings: Settings
    document: dict
    approver: Keypair
    db: Engine
    period: Period = PERIOD

    def environment(self) -> dict[str, str]:
        """The same settings as PAYOUTS_* variables, for worker and beat subprocesses."""
        s = self.settings
        env = {
            "PAYOUTS_STATE_DIR": str(s.state_dir),
            "PAYOUTS_DATABASE_URL": s.ledger_url(),
            "PAYOUTS_BROKER_URL": s.broker_url.get_secret_value(),
            "PAYOUTS_NETWORK": s.network,
            "PAYOUTS_HORIZON_URL": s.horizon_url,
            "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(s.stellar_accounts_file),
            "PAYOUTS_APPROVERS": ",".join(s.approvers),
            "PAYOUTS_APPROVALS_REQUIRED": str(s.approvals_required),
            "PAYOUTS_FIRST_PERIOD": s.first_period,
            "PAYOUTS_SNAPSHOT_DROP_FOLDER": str(s.snapshot_drop_folder),
            "PAYOUTS_VISIBILITY_TIMEOUT_S": str(s.visibility_timeout_s),
            "PAYOUTS_LEASE_TTL_S": str(s.lease_ttl_s),
            "PAYOUTS_PAY_TASK_BUDGET_S": str(s.pay_task_budget_s),
            "PAYOUTS_TX_TIMEOUT_S": str(s.tx_timeout_s),
            "PAYOUTS_LOG_FORMAT": "json",
        }
        if s.last_period:
            env["PAYOUTS_LAST_PERIOD"] = s.last_period
        if s.schedule_every_s:
            env["PAYOUTS_SCHEDULE_EVERY_S"] = str(s.schedule_every_s)
        env["PAYOUTS_BEAT_LOCK_TIMEOUT_S"] = str(s.beat_lock_timeout_s)
        return env


def prepare_month(
    tmp_path: Path,
    horizon_url: str,
    ledger_url: str,
    *,
    nodes: int = 40,
    channels: int = 4,
    broker_url: str = "redis://127.0.0.1:1/0",
    **overrides,
) -> Month:
    state = tmp_path / "state"
    drop = state / "snapshots"
    drop.mkdir(parents=True)
    accounts = tmp_path / "accounts.json"
    document = init_sandbox(horizon_url, accounts, farmers=8, channels=channels, without_trustline=1).document
    write_synthetic_snapshot(
        drop / f"{PERIOD.label}.json.gz",
        nodes=nodes,
        period=PERIOD,
        seed=5,
        network="dev",
        farm_addresses=[f["public_key"] for f in document["farmers"]],
    )
    approver = Keypair.random()
    fields = {
        "state_dir": state,
        "database_url": SecretStr(ledger_url),
        "broker_url": SecretStr(broker_url),
        "network": "dev",
        "horizon_url": horizon_url,
        "stellar_accounts_file": accounts,
        "approvers": [approver.public_key],
        "approvals_required": 1,
        "first_period": PERIOD.label,
        "last_period": PERIOD.label,
        "snapshot_drop_folder": drop,
        "tx_timeout_s": 30,
        "lease_ttl_s": 3,
        "pay_task_budget_s": 2,
        "visibility_timeout_s": 5,
    }
    fields.update(overrides)
    db = make_engine(ledger_url)
    migrate(db)
    fund_payout_account(horizon_url, document, 10**6 * 10**7)
    return Month(Settings(**fields), document, approver, db)


def approve(month: Month, run_id: int) -> None:
    with session_scope(month.db) as session:
        run = session.get(Run, run_id)
        approve_run(
            session,
            run,
            public_key=month.approver.public_key,
            signature_b64=sign_manifest(build_manifest(session, run), month.approver),
            approvers=[month.approver.public_key],
            required=1,
        )


def run_of(month: Month) -> Run | None:
    with Session(month.db) as session:
        return session.exec(select(Run).where(Run.period_offset == month.period.offset).order_by(Run.id.desc())).first()


def count_events(month: Month, event: str) -> int:
    with Session(month.db) as session:
        return session.exec(select(func.count()).select_from(LedgerEvent).where(LedgerEvent.event == event)).one()


def paid_count(month: Month) -> int:
    with Session(month.db) as session:
        return session.exec(select(func.count()).select_from(Payment).where(Payment.status == "paid")).one()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
