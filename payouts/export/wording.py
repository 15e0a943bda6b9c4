"""The farmer's words for eligibilities and payment states: the one source for the status site
(published in `data/meta.json`) and the farmer CSV columns. Keyed by the enums' values; a test
holds every Eligibility and PaymentStatus to having words here."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

#: a node-month's eligibility, as a farmer reads it: (short status, one sentence)
ELIGIBILITY_WORDS: dict[str, tuple[str, str]] = {
    "ok": ("rewarded", "the node met the rules for this month and earned TFT"),
    "violation": ("not rewarded: uptime rule broken", "an uptime report broke a minting rule (see the reason)"),
    "below_sla": ("not rewarded: uptime too low", "the node was online less than the minimum for a reward"),
    "no_uptime": ("not rewarded: no uptime reports", "the node sent no uptime report in this month"),
    "virtualized": ("not rewarded: virtualized", "virtualized nodes are not rewarded"),
    "invalid_record": ("not rewarded: invalid node record", "the node's record on the grid is not valid"),
    "opted_out": ("not rewarded here: moved to v4", "the node moved to the revenue model (v4)"),
    "no_address": ("rewarded, but no payout address", "the farm has no payout address: set one to be paid"),
    "invalid_address": ("rewarded, but the address is invalid", "the farm's payout address is not a Stellar address"),
}


class EntryStatus(StrEnum):
    """An export entry's status as the farmer export and the status site write it (SPEC 7):
    the payment's state, with "calculated" (nothing sent, the run still needs its approvals)
    and "approved" (approved, not sent yet) for a pending payment."""

    CALCULATED = "calculated"
    APPROVED = "approved"
    SUBMITTED = "submitted"
    PAID = "paid"
    HELD = "held"
    FAILED = "failed"
    RETRIED = "retried"
    CORRECTED = "corrected"
    PENDING = "pending"
    CLAIMABLE = "claimable"

    @property
    def shows_hold_reason(self) -> bool:
        """The entry names why its payment was held (or refused)."""
        return self in HOLD_REASON_STATUSES

    @property
    def counts_as_held(self) -> bool:
        """The entry is owed and cannot be paid now: a month's held count and amount."""
        return self in HELD_STATUSES


#: entries whose hold reason is shown: held, refused, or held then retried by a later run
HOLD_REASON_STATUSES = frozenset({EntryStatus.HELD, EntryStatus.FAILED, EntryStatus.RETRIED})
#: entries a month counts as held
HELD_STATUSES = frozenset({EntryStatus.HELD, EntryStatus.FAILED})

#: an entry's payment state, as a farmer reads it: (short status, one sentence)
STATUS_WORDS: dict[EntryStatus, tuple[str, str]] = {
    EntryStatus.CALCULATED: ("calculated", "the reward is calculated; the run still needs its approvals"),
    EntryStatus.APPROVED: ("approved", "approved and about to be sent"),
    EntryStatus.SUBMITTED: ("sent", "sent to Stellar; waiting for the ledger to confirm it"),
    EntryStatus.PAID: ("paid", "paid on Stellar"),
    EntryStatus.HELD: ("held", "cannot be paid yet: something on the payout wallet needs fixing"),
    EntryStatus.FAILED: ("refused", "the payout wallet refused the payment; it is retried once fixed"),
    EntryStatus.RETRIED: (
        "retried",
        "held at first, then retried by a later month's run: the note says whether it is paid",
    ),
    EntryStatus.CORRECTED: ("corrected", "a correction entry supersedes this amount"),
    EntryStatus.PENDING: ("calculated", "the reward is calculated; the run still needs its approvals"),
    EntryStatus.CLAIMABLE: (
        "sent as a claimable balance",
        "sent to your wallet as a claimable balance: add the TFT trustline and claim it before the date shown",
    ),
}


def claimable_note(until: datetime | None) -> str:
    """What a farmer reads for a payment sent as a claimable balance (one wording everywhere)."""
    when = f"{until.astimezone(UTC):%d %B %Y %H:%M} UTC" if until is not None else "the reclaim date"
    return f"sent as a claimable balance; claim it in your wallet before {when} (add the TFT trustline first)"


#: what the calculation made of an uptime report or a power event (payouts/calculation/uptime.py's
#: OUTCOME_* words), for a node-month's event list: (short, one sentence)
EVENT_WORDS: dict[str, tuple[str, str]] = {
    "first": ("counted: first report", "the month's first report: credited from the month's start, at most 41 minutes"),
    "counted": ("counted", "the uptime rose with the time since the previous report"),
    "clock_skew": ("counted, clock skew", "counted, but the boot time moved by 2 minutes or more (ClockSkew)"),
    "reboot": ("reboot", "the node restarted: its uptime since the restart is credited"),
    "too_early": (
        "too early: more uptime than time passed",
        "the uptime rose more than the time since the previous report (UptimeTooHigh)",
    ),
    "too_low": (
        "not counted: uptime too low",
        "the uptime rose less than the time passed, without a restart (UptimeTooLow)",
    ),
    "invalid_reboot": (
        "not counted: uptime went down",
        "the uptime went down, yet the node cannot have restarted since the previous report (InvalidReboot)",
    ),
    "post_period": (
        "after the month: counted up to its end",
        "the first report after the month ends credits up to the end",
    ),
    "late": ("after the month: not read", "only the first report after the month's end counts"),
    "woke": ("woke up: sleep counted", "the node woke in time after farmerbot's request: its sleep counts as uptime"),
    "woke_late": (
        "woke up late: boot failure",
        "the node booted more than 30 minutes after the wake-up request: the sleep is not counted",
    ),
    "slept_too_long": ("slept too long", "the node was asleep for more than a day: the sleep is not counted"),
    "not_woken": ("ignored: not woken yet", "the report shows no restart since the node went to sleep"),
    "asleep_ignored": (
        "ignored: asleep",
        "the node is asleep, or a wake-up is pending: reports count again once it wakes",
    ),
    "target_up": ("power target: on", "farmerbot set the node's power target to on"),
    "target_down": ("power target: off", "farmerbot set the node's power target to off"),
    "wake_request": ("wake-up request", "farmerbot asked the sleeping node to wake: it must boot within 30 minutes"),
    "state_up": ("power state: on", "the node's power state became on"),
    "state_down": ("power state: off", "the node's power state became off"),
    "asleep": ("went to sleep", "the node powered off as farmerbot asked: the sleep counts if it wakes in time"),
}

#: shown for the period that is still running (no receipts until it ends)
RUNNING_PERIOD = "this month has not ended yet"


def eligibility_status(eligibility: str) -> str:
    """'below_sla' -> 'not rewarded: uptime too low' (an unknown value is shown as it is)."""
    return ELIGIBILITY_WORDS.get(eligibility, (eligibility, ""))[0]


def payment_status(status: str) -> str:
    """'failed' -> 'refused' (an unknown value is shown as it is)."""
    try:
        return STATUS_WORDS[EntryStatus(status)][0]
    except ValueError:
        return status


def wording_document() -> dict[str, object]:
    """The words for the site's `data/meta.json`."""
    return {
        "eligibility": {key: list(words) for key, words in ELIGIBILITY_WORDS.items()},
        "status": {key.value: list(words) for key, words in STATUS_WORDS.items()},
        "event": {key: list(words) for key, words in EVENT_WORDS.items()},
        "running_period": RUNNING_PERIOD,
    }


#: the one phrase for what a run or period needs before it moves on
WAITS_FOR = "waits for"


def waits_for_line(waits_for: str) -> str:
    """The operator's line: 'waits for: two approvals'."""
    return f"{WAITS_FOR}: {waits_for}"


def not_paid_waiting(waits_for: str) -> str:
    """The farmer's note for a payment whose run has not paid yet."""
    return f"not paid yet: the run {WAITS_FOR} {waits_for}"
