"""The 'can it still land' rule, one row per clause of SPEC sections 5 and 10: a transaction is
given up only on proof, never on a clock or a sequence number alone."""

import pytest

from payouts.stellar.submit import Verdict, landing_verdict

# built at ledger 100, valid below 160; Horizon has seen up to 160, history from ledger 1
BASE = {
    "found": False,
    "successful": None,
    "latest_ledger": 160,
    "max_ledger": 160,
    "built_ledger": 100,
    "elder_ledger": 1,
    "source_sequence_now": 41,
    "tx_sequence": 42,
}

ROWS = [
    ("found and successful: landed", {"found": True, "successful": True}, Verdict.LANDED),
    ("found and failed: rebuild", {"found": True, "successful": False}, Verdict.FAILED),
    ("found wins over a trimmed history", {"found": True, "successful": True, "elder_ledger": 500}, Verdict.LANDED),
    ("not found, Horizon at max_ledger, history covers, sequence free: never", {}, Verdict.NEVER),
    ("not found, Horizon past max_ledger: never", {"latest_ledger": 900}, Verdict.NEVER),
    ("not found, Horizon one ledger short of max_ledger: may land", {"latest_ledger": 159}, Verdict.MAYBE),
    ("not found, no Latest-Ledger header: wait", {"latest_ledger": None}, Verdict.MAYBE),
    ("not found, no ledger bound recorded: wait", {"max_ledger": None}, Verdict.MAYBE),
    ("not found, history starts after it was built: wait", {"elder_ledger": 101}, Verdict.MAYBE),
    ("not found, history starts at its build ledger: never", {"elder_ledger": 100}, Verdict.NEVER),
    ("not found, no history_elder_ledger: wait", {"elder_ledger": None}, Verdict.MAYBE),
    (
        "not found yet, sequence consumed, no proof: may land (a lagging replica)",
        {"latest_ledger": 120, "source_sequence_now": 42},
        Verdict.MAYBE,
    ),
    (
        "proven not landed, sequence consumed by a stranger: stop",
        {"source_sequence_now": 42},
        Verdict.FOREIGN,
    ),
    ("proven not landed, sequence far past: stop", {"source_sequence_now": 99}, Verdict.FOREIGN),
    (
        "proven not landed, sequence used by our own transaction: rebuild",
        {"source_sequence_now": 42, "sequence_used_by_us": True},
        Verdict.NEVER,
    ),
    ("proven not landed, source account unknown: never", {"source_sequence_now": None}, Verdict.NEVER),
]


@pytest.mark.parametrize(("clause", "overrides", "verdict"), ROWS, ids=[r[0] for r in ROWS])
def test_landing_rule(clause, overrides, verdict):
    assert landing_verdict(**{**BASE, **overrides}) == verdict
