"""A large ledger written directly with SQLAlchemy core, for the streaming test and the export
benchmark: `periods` runs of `nodes` receipts each, most paid in batch transactions of 100
(memo = Merkle root), some held, some zero rewards (no payment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from payouts.calculation.receipts import minting_receipt_bytes, receipt_hash
from payouts.ledger.models import Approval, Payment, Receipt, Run, StellarTransaction
from payouts.periods import Period
from payouts.stellar.merkle import merkle_root

ADDRESS = "GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAWHF"
FIRST_PERIOD = 80
BATCH = 100
REWARD_MUSD = 14_461
REWARD_TFT_UNITS = 1_807_625_000


def _receipt_document(period: Period, node_id: int, farm_id: int, reward: bool) -> dict:
    return {
        "period": {"start": period.start_ts, "end": period.end_ts},
        "node_id": node_id,
        "twin_id": node_id + 1,
        "farm_id": farm_id,
        "farm_name": f"farm {farm_id}",
        "stellar_payout_address": ADDRESS,
        "measured_uptime": 2_628_780 if reward else 0,
        "tft_connection_price": 80,
        "cloud_units": {"cu": 3.75, "su": 5.461333, "nu": 0.0},
        "resource_units": {"cru": 4.0, "mru": 16.0, "hru": 4096.0, "sru": 512.0},
        "resource_utilization": {"cru": 0.0, "mru": 0.0, "hru": 0.0, "sru": 0.0, "ip": 0.0},
        "reward": {"musd": REWARD_MUSD if reward else 0, "tft": REWARD_TFT_UNITS if reward else 0},
        "carbon_offset": None,
        "node_type": "DIY",
        "farming_policy_id": 1,
        "resource_rewards": {"cu": 2400, "su": 1000, "nu": 30, "ipv4": 5},
    }


def fill_ledger(engine: Engine, *, nodes: int, periods: int, nodes_per_farm: int = 10, batch: int = BATCH) -> int:
    """Write `nodes * periods` receipts (and their payments); returns the receipt count."""
    now = datetime(2025, 3, 1, tzinfo=UTC)
    with engine.begin() as connection:
        for p in range(periods):
            period = Period(FIRST_PERIOD + p)
            run_id = connection.execute(
                insert(Run).returning(Run.id),
                [
                    {
                        "period_offset": period.offset,
                        "period_start_ts": period.start_ts,
                        "period_end_ts": period.end_ts,
                        "network": "dev",
                        "snapshot_sha256": f"{p:064x}",
                        "snapshot_name": "bulk",
                        "code_version": "bench",
                        "status": "reconciled",
                        "total_musd": 0,
                        "total_tft_units": 0,
                        "payable_tft_units": 0,
                        "node_count": nodes,
                        "rewarded_node_count": nodes,
                        "report_json": "{}",
                        "status_reason": "",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            ).scalar_one()
            receipts, kinds = [], []
            for n in range(nodes):
                node_id = 1000 + n
                # every 20th node has no uptime (zero reward), every 20th (offset) is held
                kind = "zero" if n % 20 == 7 else "held" if n % 20 == 13 else "paid"
                data = minting_receipt_bytes(
                    _receipt_document(period, node_id, node_id // nodes_per_farm, kind != "zero")
                )
                kinds.append(kind)
                receipts.append(
                    {
                        "run_id": run_id,
                        "node_id": node_id,
                        "farm_id": node_id // nodes_per_farm,
                        "twin_id": node_id + 1,
                        "farm_name": f"farm {node_id // nodes_per_farm}",
                        "farming_policy_id": 1,
                        "node_type": "DIY",
                        "measured_uptime_s": 2_628_780 if kind != "zero" else 0,
                        "uptime_permille": 999 if kind != "zero" else 0,
                        "violation": None,
                        "eligibility": "ok" if kind != "zero" else "no_uptime",
                        "reason": "" if kind != "zero" else "no uptime report in the period",
                        "reward_musd": REWARD_MUSD if kind != "zero" else 0,
                        "reward_tft_units": REWARD_TFT_UNITS if kind != "zero" else 0,
                        "stellar_payout_address": ADDRESS,
                        "cu_pm": 3_750_000,
                        "su_pm": 5_461_333,
                        "nu_pm": 0,
                        "receipt_bytes": data,
                        "receipt_hash": receipt_hash(data),
                        "connection_price_musd": 80,
                    }
                )
            connection.execute(insert(Receipt), receipts)
            ids = dict(
                connection.execute(select(Receipt.receipt_hash, Receipt.id).where(Receipt.run_id == run_id)).all()
            )
            paid = [r for r, k in zip(receipts, kinds) if k == "paid"]
            tx_of: dict[str, tuple[str, int, datetime]] = {}
            transactions = []
            for b in range(0, len(paid), batch):
                in_tx = paid[b : b + batch]
                memo = merkle_root([r["receipt_hash"] for r in in_tx]).hex()
                tx_hash = receipt_hash(f"{run_id}:{b}".encode())
                closed_at = now + timedelta(seconds=5 * b // batch)
                ledger = 1000 + p * 1000 + b // batch
                transactions.append(
                    {
                        "run_id": run_id,
                        "purpose": "payment",
                        "source_account": ADDRESS,
                        "sequence": b,
                        "min_time": 0,
                        "max_time": 0,
                        "fee_stroops": 100,
                        "memo_hash": memo,
                        "envelope_xdr": "",
                        "tx_hash": tx_hash,
                        "status": "confirmed",
                        "attempts": 1,
                        "result_json": "{}",
                        "ledger": ledger,
                        "closed_at": closed_at,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                for r in in_tx:
                    tx_of[r["receipt_hash"]] = (tx_hash, ledger, closed_at)
            if transactions:
                connection.execute(insert(StellarTransaction), transactions)
            payments = []
            for r, kind in zip(receipts, kinds):
                if kind == "zero":
                    continue
                tx_hash, ledger, closed_at = tx_of.get(r["receipt_hash"], (None, None, None))
                payments.append(
                    {
                        "run_id": run_id,
                        "receipt_id": ids[r["receipt_hash"]],
                        "kind": "receipt",
                        "idempotency_key": f"receipt:{run_id}:{r['receipt_hash']}",
                        "receipt_hash": r["receipt_hash"],
                        "receipt_bytes": None,
                        "retry_of_payment_id": None,
                        "farm_id": r["farm_id"],
                        "node_id": r["node_id"],
                        "destination": ADDRESS,
                        "amount_tft_units": REWARD_TFT_UNITS,
                        "status": "paid" if kind == "paid" else "held",
                        "hold_reason": "" if kind == "paid" else "no_trustline",
                        "in_manifest": kind == "paid",
                        "payout_basis": "poc_treasury",
                        "transaction_id": None,
                        "tx_hash": tx_hash,
                        "ledger": ledger,
                        "paid_at": closed_at,
                        "created_at": now,
                        "updated_at": now,
                        "correction_of_payment_id": None,
                    }
                )
            connection.execute(insert(Payment), payments)
            manifest = (
                f'{{"code_version":"bench","payment_count":{len(paid)},"period_offset":{period.offset},'
                f'"receipts_merkle_root":"{"0" * 64}","snapshot_sha256":"{p:064x}","total_tft_units":0}}'
            )
            connection.execute(
                insert(Approval),
                [
                    {
                        "run_id": run_id,
                        "approver_public_key": ADDRESS,
                        "manifest_sha256": "0" * 64,
                        "manifest_json": manifest,
                        "signature_b64": "",
                        "created_at": now,
                    }
                ],
            )
    with engine.connect() as connection:
        # fold the write-ahead log into the database so opening it later reads nothing extra
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return nodes * periods
