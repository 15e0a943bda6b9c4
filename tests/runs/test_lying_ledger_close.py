"""A Horizon that lies about its ledgers' close times: the interval a transaction's ledger
bound counts in stays within its range whatever Horizon says, and a run paid (and recovered
from a backup) under a lying measurement pays each receipt once."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest

from config.settings import Settings
from payouts.ledger.db import make_engine
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.payment import PaymentEngine
from payouts.runs.payment.common import ledger_window
from payouts.stellar.network import DEFAULT_LEDGER_CLOSE_S, MIN_LEDGER_CLOSE_S, bounded_ledger_close_s
from payouts.wiring import ledger_close_s
from tests.runs.test_chain_scan import restored_copy
from tests.runs.test_payer_claim import paid_receipts, receipts_paid_on_chain
from tests.support.network_time import takeover_waits_passed

#: a ledger record of Horizon's /ledgers page, rewritten in place (its position: 0 the newest)
Rewrite = Callable[[dict, int, int], None]


class LyingLedgers(httpx.BaseTransport):
    """Between the client and the sandbox: the /ledgers pages come back with their records
    rewritten (a lying or broken Horizon); everything else as the sandbox answers."""

    def __init__(self, rewrite: Rewrite | None = None, body: bytes | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.rewrite, self.body = rewrite, body
        self.lied = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "GET" or request.url.path.rstrip("/") != "/ledgers":
            return response
        response.read()
        headers = [
            (k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")
        ]
        self.lied += 1
        if self.body is not None:
            return httpx.Response(200, headers=headers, content=self.body)
        document = json.loads(response.content)
        records = document["_embedded"]["records"]
        for i, record in enumerate(records):
            assert self.rewrite is not None
            self.rewrite(record, i, len(records))
        return httpx.Response(response.status_code, headers=headers, content=json.dumps(document).encode())

    def close(self) -> None:
        self.inner.close()


def _shift_newest(by: timedelta) -> Rewrite:
    def rewrite(record: dict, i: int, _n: int) -> None:
        if i == 0:
            record["closed_at"] = (datetime.fromisoformat(record["closed_at"]) + by).isoformat()

    return rewrite


def _inflate_newest_sequence(record: dict, i: int, _n: int) -> None:
    if i == 0:
        record["sequence"] = int(record["sequence"]) + 10**9


def _reverse_times(record: dict, i: int, n: int) -> None:
    # the newest ledger closed first: a negative interval
    record["closed_at"] = (datetime.fromisoformat(record["closed_at"]) - timedelta(seconds=10 * (n - i))).isoformat()


def _same_time(record: dict, _i: int, _n: int) -> None:
    record["closed_at"] = "2026-01-01T00:00:00+00:00"


def _garbage_time(record: dict, _i: int, _n: int) -> None:
    record["closed_at"] = "yesterday"


def _no_sequence(record: dict, _i: int, _n: int) -> None:
    record["sequence"] = None


@pytest.mark.parametrize(
    ("measured", "used"),
    [
        (None, DEFAULT_LEDGER_CLOSE_S),
        (0.0, DEFAULT_LEDGER_CLOSE_S),
        (-0.2, DEFAULT_LEDGER_CLOSE_S),
        (math.nan, DEFAULT_LEDGER_CLOSE_S),
        (math.inf, DEFAULT_LEDGER_CLOSE_S),
        (1e-6, MIN_LEDGER_CLOSE_S),
        (86_400.0, DEFAULT_LEDGER_CLOSE_S),
        (0.2, 0.2),
        (5.0, 5.0),
    ],
)
def test_a_measured_close_interval_is_kept_within_its_range(measured, used):
    assert bounded_ledger_close_s(measured) == used


LIES = {
    # Horizon's newest ledger a day after the others: 86,400 s over 99 ledgers
    "huge": (_shift_newest(timedelta(days=1)), DEFAULT_LEDGER_CLOSE_S),
    # a billion ledgers in the last few seconds
    "tiny": (_inflate_newest_sequence, MIN_LEDGER_CLOSE_S),
    "negative": (_reverse_times, DEFAULT_LEDGER_CLOSE_S),
    "zero": (_same_time, DEFAULT_LEDGER_CLOSE_S),
    "garbage time": (_garbage_time, DEFAULT_LEDGER_CLOSE_S),
    "no sequence": (_no_sequence, DEFAULT_LEDGER_CLOSE_S),
}


def test_a_lying_horizon_gives_a_close_interval_within_range(paying, tmp_path):
    sandbox, *_rest = paying(channels=1, fund=False, approve=False)
    sandbox.wait_for_ledger(50)  # 5 s of the sandbox's 0.1 s ledgers: enough to tell
    settings = Settings(network="dev", horizon_url=sandbox.url, stellar_accounts_file=tmp_path / "accounts.json")
    honest = ledger_close_s(settings, "dev")
    assert 0.05 <= honest <= 0.2
    for name, (rewrite, used) in LIES.items():
        lying = LyingLedgers(rewrite)
        assert ledger_close_s(settings, "dev", transport=lying) == used, name
        assert lying.lied >= 1, name
    for body in (b"not json", b"{}", b'{"_embedded": {"records": 7}}', b"[]"):
        assert ledger_close_s(settings, "dev", transport=LyingLedgers(body=body)) == DEFAULT_LEDGER_CLOSE_S, body


@pytest.mark.parametrize(
    ("lie", "timeout_s", "window"),
    [
        ("huge", 30, 6),  # 6 ledgers of 5 s: 0.6 s of the sandbox's
        ("tiny", 6, 60),  # 60 ledgers of 0.1 s: the sandbox's own
    ],
)
def test_a_run_paid_and_recovered_under_a_lying_close_interval_pays_each_receipt_once(
    lie, timeout_s, window, paying, tmp_path, ledger_url
):
    sandbox, document, _db, run_id, engine = paying(channels=1, tx_timeout_s=timeout_s)
    sandbox.wait_for_ledger(50)
    settings = Settings(network="dev", horizon_url=sandbox.url, stellar_accounts_file=tmp_path / "accounts.json")
    rewrite, used = LIES[lie]
    close_s = ledger_close_s(settings, "dev", transport=LyingLedgers(rewrite))
    assert close_s == used
    engine.config = config = dataclasses.replace(engine.config, ledger_close_s=close_s)
    assert ledger_window(config) == window

    before_pay = restored_copy(ledger_url, tmp_path)  # a backup taken before anything is sent
    first = engine.pay(run_id, budget_s=0)
    assert first.status == RunStatus.PAYING and first.transactions >= 1

    # the backup restored, `payouts recover`, and the rest paid: the chain decides what landed
    restored_db = make_engine(before_pay)
    restored = PaymentEngine(UnitsOfWork(restored_db), engine.client, engine.keys, config)
    with takeover_waits_passed(sandbox, before_pay) as waited_for:
        _status, scan = restored.recover(run_id)
        assert not scan.problems, scan.problems
        assert scan.adopted_payments == first.paid
        assert restored.pay(run_id).status == RunStatus.PAID
    assert len(waited_for) == 1, waited_for
    payable = paid_receipts(restored_db, run_id)
    assert len(payable) == 8
    assert receipts_paid_on_chain(engine.client, document) == Counter(dict.fromkeys(payable, 1))
