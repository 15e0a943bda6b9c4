"""What every part of the payment engine shares: its errors, configuration, report, and the
state one engine keeps between calls (sequence numbers, fee bid, network clock)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from sqlmodel import Session

from payouts.ledger.errors import AlreadyDone
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.ledger.states import PaymentStatus
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.runs.approvals import Manifest
from payouts.runs.errors import RunsError
from payouts.runs.payment import queries
from payouts.stellar.build import MAX_OPERATIONS
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from payouts.stellar.network import DEFAULT_LEDGER_CLOSE_S
from payouts.stellar.preflight import Asset


class RunAlreadyPaid(AlreadyDone):
    pass


class RunNotPayable(RunsError):
    pass


class RunBusy(RunsError):
    """Another worker holds the run's lease and is paying it."""


class LeaseLost(RunBusy):
    """This payer's lease on the run was taken over (it stalled past the lease time); it stops,
    and the payer holding the lease now drives the run."""


class LedgerMoved(RunNotPayable):
    """This ledger was restored from a backup or copied (its database fingerprint is not the
    recorded one): it pays only after `payouts recover` took the period's claim over."""


class RunStopped(RunsError):
    """The run stopped and waits for an operator; the reason says why."""


@dataclass(frozen=True)
class PayConfig:
    network_passphrase: str
    asset_code: str
    asset_issuer: str
    approvers: tuple[str, ...]
    approvals_required: int
    memo_mode: Literal["per_receipt", "batch"] = "per_receipt"
    batch_size: int = MAX_OPERATIONS
    base_fee_stroops: int = 100  # per operation
    max_fee_stroops: int = 10_000  # per operation: congestion raises the bid up to here
    tx_timeout_s: int = 300
    #: the network's usual ledger close time: a transaction's ledger bound is its timeout in
    #: ledgers (5 s on the public and test networks)
    ledger_close_s: float = DEFAULT_LEDGER_CLOSE_S
    poll_interval_s: float = 0.5
    #: a multisig treasury funds the hot payout account per run before anything is paid
    two_tier: bool = False
    #: seconds a payer's hold on a run lasts without renewal (renewed while it works)
    lease_ttl_s: float = 60.0
    #: the treasury (two-tier mode): never a destination
    treasury_account: str | None = None
    #: a destination whose only problem is a missing TFT trustline is paid by a claimable
    #: balance, when the run's signed manifest allows it (and with the window it signed)
    claimable_for_no_trustline: bool = False


@dataclass
class PayReport:
    run_id: int
    status: str
    paid: int = 0
    held: int = 0
    #: sent as claimable balances (paid out; settled once the farmers claim them)
    claimable: int = 0
    transactions: int = 0
    rebuilt: int = 0
    unknown_outcomes: int = 0
    #: payments the chain scan found paid by transactions this ledger had lost
    adopted: int = 0
    ledgers: set[int] = field(default_factory=set)
    reason: str = ""


def ledger_window(config: PayConfig) -> int:
    """How many ledgers a transaction stays valid for: its timeout in ledgers, at least 2."""
    return max(2, math.ceil(config.tx_timeout_s / config.ledger_close_s))


class EngineState:
    """The engine's collaborators and the state it keeps between calls; the build, resolve and
    loop parts each read and write it."""

    units: UnitOfWorkFactory
    client: HorizonClient
    keys: SigningKeys
    config: PayConfig
    asset: Asset
    _fee_per_op: int
    #: next sequence number per source, known from our own confirmed transactions
    _next_sequence: dict[str, int]
    _clock: tuple[int, float] | None
    #: per run, the manifest its approvals signed
    _approved: dict[int, Manifest]

    def _payments(
        self, session: Session, run_id: int, status: PaymentStatus, limit: int | None = None
    ) -> list[Payment]:
        return queries.payments(session, run_id, status, limit)

    def _live(self, session: Session, run_id: int) -> list[StellarTransaction]:
        return queries.live(session, run_id)

    def _stop(self, session: Session, run: Run, reason: str) -> None:
        queries.stop_run(session, run, reason)
