"""Column types shared by the ledger tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class WideInteger(TypeDecorator):
    """Exact integers beyond 64 bits (the chain's u64 and u128 values and sums of them).

    SQLite's INTEGER is signed 64-bit and its NUMERIC goes through a float, so the value is
    kept there as decimal text; PostgreSQL stores NUMERIC(39,0), exact for every u128. Values
    come back as Python ints on both.
    """

    impl = Text
    cache_ok = True

    #: NUMERIC(39,0) holds 39 decimal digits: every u128 (and sums of many u64) fits
    DIGITS = 39

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(self.DIGITS, 0, asdecimal=True))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Decimal | str | None:
        if value is None:
            return None
        if type(value) is not int:
            raise TypeError(f"a wide integer column takes an int, got {type(value).__name__}")
        if len(str(abs(value))) > self.DIGITS:
            raise ValueError(f"{value} has more than {self.DIGITS} digits")
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: object, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return int(value)
        if isinstance(value, int | str):
            return int(value)
        raise TypeError(f"unexpected stored value {value!r} in a wide integer column")
