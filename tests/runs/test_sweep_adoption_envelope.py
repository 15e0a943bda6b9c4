"""A transaction of ours that Horizon serves without its envelope is refused by name, not recorded."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from payouts.ledger.models import StellarTransaction
from payouts.runs.errors import RunsError
from payouts.runs.sweep import adopt_chain_transaction


@pytest.mark.parametrize("where", ["joined transaction", "record"])
def test_an_envelope_less_record_of_ours_is_refused_naming_the_transaction(session: Session, where: str) -> None:
    record = {
        "transaction_hash": "ab" * 32,
        "from": "GPAYOUT",
        "amount": "12.0000000",
        "transaction": {"source_account": "GPAYOUT", "source_account_sequence": "7", "ledger": 9},
    }
    if where == "record":
        record.pop("transaction")

    with pytest.raises(RunsError) as refused:
        adopt_chain_transaction(session, 1, "sweep", record, "00" * 32, "sweep.adopted")

    message = str(refused.value)
    assert "ab" * 32 in message
    assert "without its envelope" in message
    assert "nothing was recorded" in message
    assert session.exec(select(StellarTransaction)).all() == []
