"""What a run exceeds (review caps and hardware plausibility bounds) and what its approvers
accepted past them. The acceptance is written on the run before the first signature and is part
of the signed manifest, so a run past a cap is approved only with the exceedance on record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlmodel import Session

from payouts.ledger.events import record_event
from payouts.ledger.models import Run
from payouts.ledger.repository import id_of
from payouts.runs.errors import RunsError

#: what each kind measures: TFT units for caps; cores, GiB for the hardware bounds
KINDS = ("node_cap", "farm_cap", "run_cap", "cores", "memory_gib", "ssd_gib", "hdd_gib")


class ExceedancesNotAccepted(RunsError):
    """Approving a run past a cap or bound that its manifest does not record as accepted."""

    def __init__(self, exceedances: Sequence[Exceedance]) -> None:
        self.exceedances = list(exceedances)
        named = "; ".join(
            f"{e.kind} {'' if e.key is None else e.key} {e.value} > {e.limit}".replace("  ", " ")
            for e in self.exceedances
        )
        super().__init__(f"the run exceeds what its manifest does not record as accepted: {named}")


@dataclass(frozen=True, order=True)
class Exceedance:
    kind: str
    #: the node (node_cap and hardware bounds) or farm (farm_cap); None for the run
    key: int | None
    value: int
    limit: int

    def document(self) -> dict:
        return {"key": self.key, "kind": self.kind, "limit": self.limit, "value": self.value}


def accepted(run: Run) -> dict | None:
    """The acceptance on record: {"reason": ..., "items": [...]}, or None."""
    if not run.accepted_exceedances_json:
        return None
    document = orjson.loads(run.accepted_exceedances_json)
    return document if isinstance(document, dict) else None


def uncovered(run: Run, exceedances: Sequence[Exceedance]) -> list[Exceedance]:
    """The exceedances the run's recorded acceptance does not name."""
    record = accepted(run)
    items = record.get("items", []) if record else []
    return [e for e in exceedances if e.document() not in items]


def require_accepted(run: Run, exceedances: Sequence[Exceedance]) -> None:
    missing = uncovered(run, exceedances)
    if missing:
        raise ExceedancesNotAccepted(missing)


def record_acceptance(
    session: Session, run: Run, exceedances: Sequence[Exceedance], reason: str, *, approved: int
) -> bool:
    """Write what is accepted past the caps and bounds on the run (it goes into the manifest);
    False when the same acceptance is already recorded. `approved`: valid approvals so far (a
    different acceptance would void them, so it is refused)."""
    if not reason.strip():
        raise RunsError("accepting an exceedance needs a reason")
    if not exceedances:
        raise RunsError(f"run {run.id} exceeds no cap or bound; there is nothing to accept")
    document = {"items": [e.document() for e in sorted(exceedances)], "reason": reason.strip()}
    text = orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()
    if run.accepted_exceedances_json == text:
        return False
    if run.accepted_exceedances_json and approved:
        raise RunsError(
            f"run {run.id} already records accepted exceedances ({accepted(run)}) signed by {approved} "
            "approver(s); a different acceptance would void their approvals. Approve without "
            "--accept-exceedance to sign what is recorded"
        )
    run.accepted_exceedances_json = text
    session.add(run)
    session.flush()
    record_event(
        session,
        entity="runs",
        entity_id=id_of(run),
        run_id=id_of(run),
        event="run.exceedances.accepted",
        detail=document,
    )
    return True
