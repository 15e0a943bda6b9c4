"""Server-sent events: the stream of an account's payments as a wallet or explorer follows it,
through a restart of the sandbox, resuming with the last event id."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
from sqlmodel import Session, select
from stellar_sdk import Asset, Keypair

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.periods import Period
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.payment import PayConfig, PaymentEngine
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import fund_payout_account, init_sandbox
from payouts.sandbox.entries import format_amount
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from tests.support.js import node
from tests.support.payments import check_invariants

#: the demo's month: 500 nodes, 20 channel accounts
DEMO_NODES = 500
DEMO_CHANNELS = 20


class EventStream(threading.Thread):
    """A plain SSE client: follows one URL, and after any break reconnects with the
    `Last-Event-ID` of the last event it received, as browsers' EventSource does."""

    def __init__(self, url: str, cursor: str) -> None:
        super().__init__(daemon=True)
        self.url, self.cursor = url, cursor
        self.records: list[dict] = []
        self.last_id: str | None = None
        self.connections = 0
        self.resumed_with: list[str | None] = []
        self.hellos = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            headers = {"Accept": "text/event-stream"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with httpx.stream(
                    "GET",
                    self.url,
                    params={"cursor": self.cursor},
                    headers=headers,
                    timeout=httpx.Timeout(5, read=30),
                ) as reply:
                    reply.raise_for_status()
                    self.connections += 1
                    self.resumed_with.append(self.last_id)
                    self._read(reply)
            except (httpx.TransportError, httpx.HTTPStatusError):
                pass
            self.stopping.wait(0.2)

    def _read(self, reply: httpx.Response) -> None:
        event: dict[str, str] = {}
        for line in reply.iter_lines():
            if self.stopping.is_set():
                return
            if line:
                if not line.startswith(":"):
                    name, _, value = line.partition(":")
                    event[name] = value.removeprefix(" ")
                continue
            if event.get("event") == "open" and event.get("data") == '"hello"':
                self.hellos += 1
            elif "id" in event:
                record = orjson.loads(event["data"])
                assert record["paging_token"] == event["id"]
                self.records.append(record)
                self.last_id = event["id"]
            event = {}


def test_a_payment_stream_sees_every_payment_of_a_demo_month_once_across_a_restart(tmp_path, sqlite_url):
    with running_sandbox(ledger_close_s=0.1, state_dir=tmp_path / "chain", submission_timeout_s=5, seed=3) as sandbox:
        accounts = tmp_path / "accounts.json"
        document = init_sandbox(sandbox.url, accounts, farmers=20, channels=DEMO_CHANNELS).document
        snapshot_path = tmp_path / "month.json.gz"
        write_synthetic_snapshot(
            snapshot_path,
            nodes=DEMO_NODES,
            period=Period.from_label("2025-11"),
            seed=5,
            network="dev",
            farm_addresses=[f["public_key"] for f in document["farmers"]],
        )
        db = make_engine(sqlite_url)
        approver = Keypair.random()
        with session_scope(db) as session:
            run = calculate_run(session, load_snapshot(snapshot_path)).run
            run_row = session.get(Run, run.id)
            approve_run(
                session,
                run_row,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, run_row), approver),
                approvers=[approver.public_key],
                required=1,
            )
            run_id = run.id
        fund_payout_account(sandbox.url, document, 10**7 * 10**7)
        payout = document["payout"]["public_key"]

        stream = EventStream(f"{sandbox.url}/accounts/{payout}/payments", cursor="now")
        stream.start()
        deadline = time.monotonic() + 10
        while stream.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stream.connections == 1 and stream.hellos == 1

        client = HorizonClient(sandbox.url, timeout_s=10)
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=document["asset"]["code"],
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            poll_interval_s=0.1,
            tx_timeout_s=30,
        )
        engine = PaymentEngine(UnitsOfWork(db), client, SigningKeys.from_accounts_file(accounts), config)
        outcome: list = []
        paying = threading.Thread(target=lambda: outcome.append(engine.pay(run_id)), daemon=True)
        paying.start()

        deadline = time.monotonic() + 60
        while len(stream.records) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        before_restart = len(stream.records)
        assert before_restart >= 50 and paying.is_alive(), "the restart falls in the middle of the month"
        sandbox.restart()

        paying.join(180)
        assert not paying.is_alive() and outcome[0].status == RunStatus.PAID
        with Session(db) as session:
            paid = session.exec(select(Payment).where(Payment.run_id == run_id)).all()
        paid_count = sum(p.status == PaymentStatus.PAID for p in paid)
        assert paid_count > 300  # a demo month's worth
        deadline = time.monotonic() + 30
        while len(stream.records) < paid_count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # anything extra (a duplicate) would arrive now
        stream.stopping.set()

        chain = [r for r in client.payments(payout) if r["type"] == "payment" and r["from"] == payout]
        streamed_ids = [r["id"] for r in stream.records]
        assert len(streamed_ids) == len(set(streamed_ids)), "no payment arrives twice"
        assert streamed_ids == [r["id"] for r in chain], "every payment, in ledger order"
        assert len(chain) == paid_count and len(stream.records) > before_restart
        # the restart broke the stream, and the client resumed from its last event id
        assert sandbox.restarts == 1 and stream.connections >= 2
        assert stream.resumed_with[0] is None and all(stream.resumed_with[1:])
        check_invariants(db, client, document, run_id)

        # and every transaction of the month decodes and verifies under the JavaScript SDK:
        # hash, memo, amounts, time bounds, fee, and both signatures (channel and payout)
        expected = []
        with Session(db) as session:
            confirmed = select(StellarTransaction).where(
                StellarTransaction.status == "confirmed", StellarTransaction.purpose == "payment"
            )
            for row in session.exec(confirmed):
                mine = [p for p in paid if p.tx_hash == row.tx_hash and p.status == PaymentStatus.PAID]
                on_chain = client.transaction(row.fee_bump_hash or row.tx_hash)
                expected.append(
                    {
                        "hash": row.fee_bump_hash or row.tx_hash,
                        "envelope_xdr": sandbox.chain.transaction(row.tx_hash).doc["envelope_xdr"],
                        "memo_hash": row.memo_hash,
                        "min_time": row.min_time,
                        "max_time": row.max_time,
                        "fee": row.fee_stroops,
                        "signers": sorted({row.source_account, payout}),
                        "payments": [[p.destination, format_amount(p.amount_tft_units)] for p in mine],
                        "asset_code": document["asset"]["code"],
                        "asset_issuer": document["asset"]["issuer"],
                    }
                )
                assert on_chain.successful
        assert sum(len(e["payments"]) for e in expected) == paid_count
        verified = node(
            "verify-envelopes.mjs",
            document["network_passphrase"],
            stdin="\n".join(orjson.dumps(e).decode() for e in expected),
        )
        assert len(verified) == len(expected) and {v["hash"] for v in verified} == {e["hash"] for e in expected}
        assert [v for v in verified if not v["ok"]] == []


def _raw_events(url: str, seconds: float, headers: dict | None = None) -> tuple[httpx.Response, str]:
    text = ""
    with httpx.stream(
        "GET", url, headers={"Accept": "text/event-stream", **(headers or {})}, timeout=httpx.Timeout(5, read=5)
    ) as reply:
        deadline = time.monotonic() + seconds
        for chunk in reply.iter_text():
            text += chunk
            if time.monotonic() > deadline:
                break
    return reply, text


def test_stream_preamble_keep_alive_cursor_now_and_last_event_id():
    with running_sandbox(ledger_close_s=0.1, keep_alive_s=0.2) as sandbox:
        from tests.sandbox.conftest import make_net

        net = make_net(sandbox)
        alice, bob = net.new_accounts(2)
        for amount in ("1", "2", "3"):
            net.submit(net.signed(net.builder(alice).append_payment_op(bob.public_key, Asset.native(), amount), alice))
        url = f"{sandbox.url}/accounts/{bob.public_key}/payments"
        reply, text = _raw_events(url, 0.5)
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert text.startswith('retry: 1000\nevent: open\ndata: "hello"\n\n')
        ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
        assert len(ids) == 4  # the account's creation and three payments
        # nothing new: the stream stays open with comment lines
        assert text.count(": keep-alive\n\n") >= 1
        _, resumed = _raw_events(url, 0.3, {"Last-Event-ID": ids[1]})
        assert [line[4:] for line in resumed.splitlines() if line.startswith("id: ")] == ids[2:]
        _, now = _raw_events(f"{url}?cursor=now", 0.3)
        assert "id: " not in now and now.startswith("retry: 1000")
        refused = httpx.get(f"{url}?order=desc", headers={"Accept": "text/event-stream"})
        assert refused.status_code == 400 and refused.json()["extras"]["invalid_field"] == "order"
