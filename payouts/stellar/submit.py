"""Can this transaction still land? The rule that makes rebuilding safe (SPEC section 5).

A transaction whose outcome is unknown is never treated as failed. Its payments may go into a
new transaction only when the old one provably can never land:
- found on chain and failed (fee and sequence consumed), or
- not found, and the network's latest closed ledger is past its max time, or
- not found, and its source account's sequence has reached or passed its own (another
  transaction used the number).
"Not found" must come from a lookup made after the reads of the latest ledger and of the source
account: a transaction that lands between an earlier lookup and those reads uses up its own
sequence number, which proves nothing. A caller that looked up first looks up again before it
acts on NEVER.
A pure function, tested one row per clause.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    LANDED = "landed"  # found, successful: its payments are paid
    FAILED = "failed"  # found, failed: its payments can be rebuilt
    NEVER = "never"  # not found and provably never will be: rebuild
    MAYBE = "maybe"  # not found yet and could still land: resubmit the identical bytes, wait


def landing_verdict(
    *,
    found: bool,
    successful: bool | None,
    latest_closed_ts: int,
    max_time_ts: int,
    source_sequence_now: int | None,
    tx_sequence: int,
) -> Verdict:
    if found:
        return Verdict.LANDED if successful else Verdict.FAILED
    if max_time_ts and latest_closed_ts > max_time_ts:
        return Verdict.NEVER  # the network's clock is past the time bound: tx_too_late forever
    if source_sequence_now is not None and source_sequence_now >= tx_sequence:
        return Verdict.NEVER  # another transaction consumed this sequence number
    return Verdict.MAYBE
