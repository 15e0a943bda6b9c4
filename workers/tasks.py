"""Thin tasks: open a session (PayoutTask), call a service, return a small summary.

Task names are stable strings: old and new workers share a queue during a deploy.
"""

from __future__ import annotations

from sqlmodel import Session

from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from workers.base import PayoutTask
from workers.celery_app import app


@app.task(base=PayoutTask, name="payouts.runs.calculate")
def calculate_snapshot(session: Session, snapshot_path: str) -> dict:
    outcome = calculate_run(session, load_snapshot(snapshot_path))
    return {"run_id": outcome.run.id, "created": outcome.created, "status": outcome.run.status}
