"""The sandbox's network time moved forward while a payer waits out a previous payer.

A payer that takes a claim over (`payouts recover`, a restored ledger) waits on the network's
clock until whatever the previous payer built has expired: its claim's ledger close plus the
transaction timeout. Where that wait is not what a test is about, the network's time is moved
forward as soon as the wait begins, as if those seconds had passed: the takeover is recorded
(`claim.taken_over`, with the network time it waits for) before the wait, so the time it needs
is read from the ledger the payer writes, not guessed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlmodel import Session, col, select

from payouts.ledger.db import make_engine
from payouts.ledger.models import LedgerEvent
from payouts.sandbox import SandboxServer

POLL_S = 0.1
#: past the wait's end by more than a ledger of the sandbox, so the next ledger closes after it
MARGIN_S = 2


@contextmanager
def takeover_waits_passed(sandbox: SandboxServer, ledger_url: str) -> Iterator[list[int]]:
    """While inside, each takeover recorded in the ledger at `ledger_url` has the network's
    clock moved past the time it waits for. Yields the network times waited for, in order."""
    engine = make_engine(ledger_url)
    stop = threading.Event()
    waited_for: list[int] = []
    handled: set[int] = set()
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            while not stop.is_set():
                with Session(engine) as session:
                    events = session.exec(
                        select(LedgerEvent).where(LedgerEvent.event == "claim.taken_over").order_by(col(LedgerEvent.id))
                    ).all()
                for event in events:
                    if event.id in handled:
                        continue
                    assert event.id is not None
                    handled.add(event.id)
                    until_s = int(json.loads(event.detail_json)["wait_until"])
                    waited_for.append(until_s)
                    ahead_s = until_s + MARGIN_S - sandbox.chain.now_s()
                    if ahead_s > 0:
                        sandbox.chain.advance_clock(ahead_s)
                stop.wait(POLL_S)
        except BaseException as error:  # noqa: BLE001 - raised again in the test's thread
            failures.append(error)

    thread = threading.Thread(target=watch, name="takeover-waits", daemon=True)
    thread.start()
    try:
        yield waited_for
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()
    if failures:
        raise failures[0]
