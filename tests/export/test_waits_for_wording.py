"""The operator's line and the farmer's note name what a run waits for in the same words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import payouts
from payouts.export.rows.notes import _note
from payouts.export.wording import WAITS_FOR, not_paid_waiting, waits_for_line
from payouts.ledger.kinds import PaymentKind
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


@pytest.mark.parametrize("status", _WAITING)
def test_the_farmer_note_names_the_wait_as_the_operator_line_does(status: RunStatus) -> None:
    row = {"hold_reason": None, "kind": PaymentKind.RECEIPT, "in_manifest": True, "paying_run_status": status.value}
    note, fix, retry = _note(row, "pending", "")
    operator_line = waits_for_line(status.waits_for)
    assert (fix, retry) == ("", "")
    assert note == f"not paid yet: the run {operator_line.replace(': ', ' ', 1)}"


def test_no_other_module_spells_the_waiting_words() -> None:
    root = Path(payouts.__file__).parent
    home = root / "export" / "wording.py"
    spelled = [
        str(path.relative_to(root))
        for path in root.glob("**/*.py")
        if path != home and re.search(r"[\"']waits for[:\"' ]", path.read_text())
    ]
    assert spelled == []
