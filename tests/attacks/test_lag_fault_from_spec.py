"""The `lag=S` fault set on a running sandbox (as the `paying` fixture sets every fault) makes
its reads lag at once, like the fault given at start."""

from __future__ import annotations

import time

from tests.runs.conftest import paying  # noqa: F401


def test_the_lag_fault_set_after_start_makes_reads_lag(paying):  # noqa: F811
    sandbox, _document, _db, _run_id, engine = paying(faults="lag=2", fund=False)
    time.sleep(0.5)
    assert sandbox.view.lagging
    assert engine.client.lookup("0" * 64).latest_ledger < sandbox.chain.latest.sequence
