"""The ledger's identity, named in every run manifest: a random id recorded when the ledger is
created, and the payout account its runs are paid from (recorded once, by `payouts db init`,
the first approval or the first payer that knows it; never silently changed afterwards)."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from payouts.ledger.errors import LedgerError
from payouts.ledger.events import record_event
from payouts.ledger.models import LedgerIdentity
from payouts.ledger.types import utcnow

_ROW_ID = 1


class PayoutAccountMismatch(LedgerError):
    """The ledger is bound to another payout account than the one given."""


def ledger_identity(session: Session) -> LedgerIdentity:
    """The identity row, created (with a fresh id) when a ledger has none."""
    row = session.get(LedgerIdentity, _ROW_ID)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(LedgerIdentity(id=_ROW_ID, ledger_id=str(uuid.uuid4()), created_at=utcnow()))
    except IntegrityError:
        pass  # created by a concurrent unit of work: read theirs
    row = session.exec(select(LedgerIdentity).where(col(LedgerIdentity.id) == _ROW_ID)).one()
    return row


def bind_payout_account(session: Session, payout_account: str) -> LedgerIdentity:
    """Record the payout account this ledger pays from, the first time; afterwards the same
    account is accepted and another one refused (PayoutAccountMismatch)."""
    identity = ledger_identity(session)
    if identity.payout_account is None:
        identity.payout_account = payout_account
        session.add(identity)
        session.flush()
        record_event(
            session,
            entity="ledger_identity",
            entity_id=identity.id,
            event="ledger.payout_account.recorded",
            detail={"payout_account": payout_account, "ledger_id": identity.ledger_id},
        )
    elif identity.payout_account != payout_account:
        raise PayoutAccountMismatch(
            f"this ledger pays from {identity.payout_account}, not {payout_account}: its manifests name "
            "that account (a ledger is bound to one payout account)"
        )
    return identity
