"""Farms' sign-on to the revenue model, imported from the CSV file the operators keep.

The file has a header with `farm_id`, `contact_confirmed_at` and `sla_accepted_at`; times are
ISO 8601 with a zone (`2025-11-03T10:00:00Z`) or a date (`2025-11-03`, read as midnight UTC);
an empty cell means "not yet". Importing the same file again changes nothing; a later file
updates the farms it lists and leaves the others as they were. The whole file is checked
before anything is written, and an error names the line and the column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from payouts.ledger.errors import LedgerError
from payouts.ledger.models import FarmSignon
from payouts.ledger.types import utcnow

COLUMNS = ("farm_id", "contact_confirmed_at", "sla_accepted_at")


class SignonFileError(LedgerError):
    """The operators' file is not what the import expects."""


@dataclass(frozen=True)
class ImportReport:
    added: int
    updated: int
    unchanged: int


def _time(text: str, where: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SignonFileError(f"{where}: {text!r} is not an ISO 8601 time or date") from None
    if value.tzinfo is None:
        raise SignonFileError(f"{where}: {text!r} has no time zone; write it in UTC, e.g. {text}Z")
    return value.astimezone(UTC)


def read_signons(path: Path) -> dict[int, tuple[datetime | None, datetime | None]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SignonFileError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SignonFileError(f"{path}: the header lacks {', '.join(missing)} (expected {', '.join(COLUMNS)})")
        rows: dict[int, tuple[datetime | None, datetime | None]] = {}
        for line, record in enumerate(reader, start=2):
            where = f"{path.name} line {line}"
            farm_text = (record.get("farm_id") or "").strip()
            if not farm_text.isdigit():
                raise SignonFileError(f"{where}: farm_id {farm_text!r} is not a farm id")
            farm_id = int(farm_text)
            if farm_id in rows:
                raise SignonFileError(f"{where}: farm {farm_id} is listed twice")
            rows[farm_id] = (
                _time(record.get("contact_confirmed_at") or "", f"{where} contact_confirmed_at"),
                _time(record.get("sla_accepted_at") or "", f"{where} sla_accepted_at"),
            )
    return rows


def import_signons(session: Session, path: Path) -> ImportReport:
    """Upsert every farm of the file; the caller commits."""
    rows = read_signons(path)
    added = updated = unchanged = 0
    now = utcnow()
    for farm_id, (contact, sla) in rows.items():
        existing = session.execute(select(FarmSignon).where(FarmSignon.farm_id == farm_id)).scalar()
        if existing is None:
            session.add(FarmSignon(farm_id=farm_id, contact_confirmed_at=contact, sla_accepted_at=sla,
                                   updated_at=now))
            added += 1
        elif (existing.contact_confirmed_at, existing.sla_accepted_at) == (contact, sla):
            unchanged += 1
        else:
            existing.contact_confirmed_at, existing.sla_accepted_at, existing.updated_at = contact, sla, now
            session.add(existing)
            updated += 1
    session.flush()
    return ImportReport(added=added, updated=updated, unchanged=unchanged)
