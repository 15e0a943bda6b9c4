"""A ledger with real payments for the export tests: two periods paid on the sandbox.

Period 2025-01 (offset 81): four farms with sandbox addresses (the last farmer has no TFT
trustline, so its two receipts are held), a farm with a hostile name and no address (held
no_address), a farm whose name is a CSV formula with commas, quotes, a newline and non-ASCII,
and a node below the uptime minimum (zero reward). Then the farmer adds a trustline, and
period 2025-02 (offset 82) pays that period plus the retries of the held 2025-01 receipts.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, TransactionBuilder

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Run
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.periods import Period
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.payment import PayConfig, PaymentEngine
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.snapshot.load import load_snapshot
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from tests import factories
from tests.support.payments import fund_payout

HOSTILE_FARM_NAME = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
FORMULA_FARM_NAME = '=HYPERLINK("http://evil.example","click"), "quoted"\nsecond line, ünïcødé ファーム'
HOSTILE_FARM_ID = 104
FORMULA_FARM_ID = 100
LOW_UPTIME_NODE = 1019
PERIODS = (81, 82)


@dataclass
class PaidLedger:
    url: str
    engine: Engine
    document: dict
    client: HorizonClient
    horizon_url: str
    run_ids: dict[int, int]  # period offset -> run id
    memo_mode: str
    approver: Keypair


def _farms(document: dict) -> list[dict]:
    farms = []
    for index, farmer in enumerate(document["farmers"]):
        farm_id = 100 + index
        name = FORMULA_FARM_NAME if farm_id == FORMULA_FARM_ID else f"farm {farm_id}"
        farms.append(
            {
                "farm_id": farm_id,
                "name": name,
                "twin_id": 7,
                "certification": "NotCertified",
                "stellar_address": farmer["public_key"],
            }
        )
    farms.append(
        {
            "farm_id": HOSTILE_FARM_ID,
            "name": HOSTILE_FARM_NAME,
            "twin_id": 7,
            "certification": "NotCertified",
            "stellar_address": "",
        }
    )
    return farms


def _snapshot(tmp_path: Path, document: dict, period_offset: int):
    farms = _farms(document)
    nodes = [factories.node(farm["farm_id"] * 10 + n, farm_id=farm["farm_id"]) for farm in farms for n in range(2)]
    nodes.append(factories.node(LOW_UPTIME_NODE, farm_id=101))
    period = Period(period_offset)
    events = []
    for node in nodes:
        reports = factories.full_uptime_reports(node["node_id"], period)
        if node["node_id"] == LOW_UPTIME_NODE:
            reports = reports[: len(reports) * 9 // 10]  # about 90 % uptime: below the 95 % minimum
        events += reports
    snapshot = factories.snapshot(period_offset=period_offset, nodes=nodes, farms=farms, uptime_events=events)
    return load_snapshot(factories.write(tmp_path / f"month-{period_offset}.json", snapshot))


def _add_trustline(client: HorizonClient, document: dict, farmer: dict) -> None:
    keypair = Keypair.from_secret(farmer["secret"])
    envelope = (
        TransactionBuilder(
            SdkAccount(keypair.public_key, client.account(keypair.public_key).sequence),
            document["network_passphrase"],
            base_fee=100,
        )
        .append_change_trust_op(SdkAsset(document["asset"]["code"], document["asset"]["issuer"]))
        .set_timeout(60)
        .build()
    )
    envelope.sign(keypair)
    assert client.submit(envelope.to_xdr()).outcome == "success"


def _calculate_approve_pay(paid: PaidLedger, engine: PaymentEngine, tmp_path: Path, period_offset: int) -> int:
    with session_scope(paid.engine) as session:
        run = calculate_run(session, _snapshot(tmp_path, paid.document, period_offset)).run
        approve_run(
            session,
            run,
            public_key=paid.approver.public_key,
            signature_b64=sign_manifest(build_manifest(session, run), paid.approver),
            approvers=[paid.approver.public_key],
            required=1,
        )
        run_id = run.id
    report = engine.pay(run_id)
    assert report.status == "paid", report
    with session_scope(paid.engine) as session:
        assert session.get(Run, run_id).status == "paid"
    return run_id


@contextmanager
def paid_ledger(url: str, tmp_path: Path, memo_mode: str, *, periods: tuple[int, ...] = PERIODS):
    """Two periods paid on a fresh sandbox (or only the first: `periods=(81,)`, the last farmer's
    receipts still held); the sandbox stays up while the context is open."""
    with running_sandbox(ledger_close_s=0.1, seed=23, submission_timeout_s=2) as sandbox:
        document = init_sandbox(
            sandbox.url, tmp_path / "accounts.json", farmers=4, without_trustline=1, channels=3
        ).document
        client = HorizonClient(sandbox.url, timeout_s=10)
        fund_payout(client, document, 10**6 * 10**7)
        approver = Keypair.random()
        engine = make_engine(url)
        paid = PaidLedger(
            url=url,
            engine=engine,
            document=document,
            client=client,
            horizon_url=sandbox.url,
            run_ids={},
            memo_mode=memo_mode,
            approver=approver,
        )
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=document["asset"]["code"],
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            memo_mode=memo_mode,
            poll_interval_s=0.1,
            tx_timeout_s=30,
            # batches of 5: trees of uneven size and a batch of one (an empty audit path)
            batch_size=5,
        )
        payer = PaymentEngine(
            UnitsOfWork(engine), client, SigningKeys.from_accounts_file(tmp_path / "accounts.json"), config
        )
        try:
            paid.run_ids[81] = _calculate_approve_pay(paid, payer, tmp_path, 81)
            if 82 in periods:
                _add_trustline(client, document, document["farmers"][-1])
                paid.run_ids[82] = _calculate_approve_pay(paid, payer, tmp_path, 82)
            yield paid
        finally:
            client.close()
            engine.dispose()
