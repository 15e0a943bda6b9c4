"""The operator's line and the farmer's note name what a run waits for in the same words."""

from __future__ import annotations

import pytest

from payouts.export.wording import WAITS_FOR, not_paid_waiting, waits_for_line
from payouts.ledger.states import RunStatus

_WAITING = [status for status in RunStatus if status.waits_for]


def test_some_run_status_waits() -> None:
    assert _WAITING


@pytest.mark.parametrize("status", _WAITING)
def test_operator_and_farmer_share_the_waiting_words(status: RunStatus) -> None:
    line = waits_for_line(status.waits_for)
    note = not_paid_waiting(status.waits_for)
    assert line == f"{WAITS_FOR}: {status.waits_for}"
    assert note.endswith(f"{WAITS_FOR} {status.waits_for}")
    assert note.startswith("not paid yet: the run ")
