"""The 'can it still land' rule, one row per clause of SPEC section 5, rule 5."""

import pytest

from payouts.stellar.submit import Verdict, landing_verdict

BASE = {"latest_closed_ts": 1000, "max_time_ts": 1300, "source_sequence_now": 41, "tx_sequence": 42}

ROWS = [
    ("found and successful: landed", {"found": True, "successful": True}, Verdict.LANDED),
    ("found and failed: rebuild", {"found": True, "successful": False}, Verdict.FAILED),
    ("found wins over an expired bound", {"found": True, "successful": True, "latest_closed_ts": 5000}, Verdict.LANDED),
    ("not found, before max time, sequence free: may land", {"found": False, "successful": None}, Verdict.MAYBE),
    (
        "not found, latest ledger exactly at max time: may land",
        {"found": False, "successful": None, "latest_closed_ts": 1300},
        Verdict.MAYBE,
    ),
    (
        "not found, latest ledger past max time: never",
        {"found": False, "successful": None, "latest_closed_ts": 1301},
        Verdict.NEVER,
    ),
    (
        "not found, sequence consumed by another: never",
        {"found": False, "successful": None, "source_sequence_now": 42},
        Verdict.NEVER,
    ),
    (
        "not found, sequence far past: never",
        {"found": False, "successful": None, "source_sequence_now": 99},
        Verdict.NEVER,
    ),
    (
        "not found, source account unknown: may land",
        {"found": False, "successful": None, "source_sequence_now": None},
        Verdict.MAYBE,
    ),
]


@pytest.mark.parametrize(("clause", "overrides", "verdict"), ROWS, ids=[r[0] for r in ROWS])
def test_landing_rule(clause, overrides, verdict):
    assert landing_verdict(**{**BASE, **overrides}) == verdict
