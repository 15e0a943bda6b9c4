"""Can this transaction still land? The rule that makes rebuilding safe (SPEC sections 5 and 10).

A transaction whose outcome is unknown is never treated as failed. Its payments may go into a
new transaction only on proof that it can never land:
- found on chain and failed (fee and sequence consumed), or
- not found by a Horizon whose `Latest-Ledger` is at or past the transaction's `max_ledger`
  (it was valid in ledgers below it only), and whose history reaches back to the ledger it was
  built at (`history_elder_ledger`): not found in every ledger it could have landed in.
A Horizon that lags or trims its history makes the engine wait. A source sequence number that
moved on is never a reason to rebuild: once the transaction provably did not land, a sequence
number consumed by a transaction this ledger did not build means someone else pays from the
account, and the run stops.
A pure function, tested one row per clause.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    LANDED = "landed"  # found, successful: its payments are paid
    FAILED = "failed"  # found, failed: its payments can be rebuilt
    NEVER = "never"  # not found and provably never will be: rebuild
    MAYBE = "maybe"  # not found yet and could still land (or no proof yet): same bytes, wait
    FOREIGN = "foreign"  # provably not landed, but its sequence number was used by a stranger: stop


def landing_verdict(
    *,
    found: bool,
    successful: bool | None,
    latest_ledger: int | None,
    max_ledger: int | None,
    built_ledger: int | None,
    elder_ledger: int | None,
    source_sequence_now: int | None,
    tx_sequence: int,
    sequence_used_by_us: bool = False,
) -> Verdict:
    """`latest_ledger`: the lowest `Latest-Ledger` among the not-found answers (None when one
    had no header); `elder_ledger`: Horizon's `history_elder_ledger`; `sequence_used_by_us`:
    another transaction this ledger built landed with the same source and sequence."""
    if found:
        return Verdict.LANDED if successful else Verdict.FAILED
    if latest_ledger is None or max_ledger is None or latest_ledger < max_ledger:
        return Verdict.MAYBE  # Horizon has not seen every ledger it could land in
    if elder_ledger is None or built_ledger is None or elder_ledger > built_ledger:
        return Verdict.MAYBE  # history trimmed: it may have landed where Horizon cannot look
    if source_sequence_now is not None and source_sequence_now >= tx_sequence and not sequence_used_by_us:
        return Verdict.FOREIGN
    return Verdict.NEVER
