"""The append-only event history: one row per state change, written in the same transaction."""

from __future__ import annotations

import json

import orjson
from sqlmodel import Session

from payouts.ledger.models import LedgerEvent
from payouts.ledger.types import utcnow


def record_event(
    session: Session,
    *,
    entity: str,
    event: str,
    entity_id: int | None = None,
    run_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    detail: dict | None = None,
) -> None:
    session.add(
        LedgerEvent(
            occurred_at=utcnow(),
            run_id=run_id,
            entity=entity,
            entity_id=entity_id,
            event=event,
            from_status=from_status,
            to_status=to_status,
            detail_json=_detail_json(detail or {}),
        )
    )


def _detail_json(detail: dict) -> str:
    try:
        return orjson.dumps(detail, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # an integer past 64 bits (a month's total of u64 rewards): exact, the same shape
        return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
