"""Farms' sign-on to the revenue model and nodes' move to v4, imported from the CSV files the
operators keep.

The sign-on file has a header with `farm_id`, `contact_confirmed_at` and `sla_accepted_at`;
the nodes file `node_id`, `v3_opted_out_at` and `v4_account` (a Stellar or TFChain account,
free text). Times are
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
from payouts.ledger.models import FarmSignon, NodeTransition
from payouts.ledger.types import utcnow

COLUMNS = ("farm_id", "contact_confirmed_at", "sla_accepted_at")
NODE_COLUMNS = ("node_id", "v3_opted_out_at", "v4_account")


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
        value = datetime.fromisoformat(text)
    except ValueError:
        raise SignonFileError(f"{where}: {text!r} is not an ISO 8601 time or date") from None
    if value.tzinfo is None:
        raise SignonFileError(f"{where}: {text!r} has no time zone; write it in UTC, e.g. {text}Z")
    return value.astimezone(UTC)


def _read_rows(path: Path, columns: tuple[str, ...], parse) -> dict[int, tuple]:
    """Rows keyed by the first column (an id); `parse(record, where)` gives the rest."""
    key = columns[0]
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SignonFileError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise SignonFileError(f"{path}: the header lacks {', '.join(missing)} (expected {', '.join(columns)})")
        rows: dict[int, tuple] = {}
        for line, record in enumerate(reader, start=2):
            where = f"{path.name} line {line}"
            id_text = (record.get(key) or "").strip()
            if not id_text.isdigit():
                raise SignonFileError(f"{where}: {key} {id_text!r} is not an id")
            row_id = int(id_text)
            if row_id in rows:
                raise SignonFileError(f"{where}: {key} {row_id} is listed twice")
            rows[row_id] = parse(record, where)
    return rows


def read_signons(path: Path) -> dict[int, tuple[datetime | None, datetime | None]]:
    return _read_rows(
        path,
        COLUMNS,
        lambda record, where: (
            _time(record.get("contact_confirmed_at") or "", f"{where} contact_confirmed_at"),
            _time(record.get("sla_accepted_at") or "", f"{where} sla_accepted_at"),
        ),
    )


def read_node_transitions(path: Path) -> dict[int, tuple[datetime | None, str | None]]:
    def parse(record: dict, where: str) -> tuple[datetime | None, str | None]:
        account = (record.get("v4_account") or "").strip()
        if len(account) > 120 or any(ord(c) < 32 for c in account):
            raise SignonFileError(f"{where}: v4_account is not an account name")
        return _time(record.get("v3_opted_out_at") or "", f"{where} v3_opted_out_at"), account or None

    return _read_rows(path, NODE_COLUMNS, parse)


def _upsert(session: Session, model: type, key: str, fields: tuple[str, str], rows: dict[int, tuple]) -> ImportReport:
    """Insert or update one row per id of the file; rows the file does not list stay as they are."""
    added = updated = unchanged = 0
    now = utcnow()
    for row_id, values in rows.items():
        wanted = dict(zip(fields, values, strict=True))
        existing = session.execute(select(model).where(getattr(model, key) == row_id)).scalar()
        if existing is None:
            session.add(model(**{key: row_id}, **wanted, updated_at=now))
            added += 1
        elif all(getattr(existing, name) == value for name, value in wanted.items()):
            unchanged += 1
        else:
            for name, value in wanted.items():
                setattr(existing, name, value)
            existing.updated_at = now
            session.add(existing)
            updated += 1
    session.flush()
    return ImportReport(added=added, updated=updated, unchanged=unchanged)


def import_node_transitions(session: Session, path: Path) -> ImportReport:
    """Upsert every node of the file; the caller commits. A node's v3 opt-out time stops its
    proof-of-capacity payouts from the period that holds it (the next calculation reads it)."""
    return _upsert(session, NodeTransition, "node_id", ("v3_opted_out_at", "v4_account"), read_node_transitions(path))


def import_signons(session: Session, path: Path) -> ImportReport:
    """Upsert every farm of the file; the caller commits."""
    return _upsert(session, FarmSignon, "farm_id", ("contact_confirmed_at", "sla_accepted_at"), read_signons(path))
