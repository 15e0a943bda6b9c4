"""Alembic environment: migrations run on the engine the caller passes in.

`payouts db upgrade` (and every command, with PAYOUTS_AUTO_MIGRATE) passes the ledger's engine;
`payouts db revision` passes a scratch ledger at the newest migration and autogenerates the
next one against the SQLModel tables. The `alembic` command itself (with alembic.ini) needs the
ledger's URL: `alembic -x url=sqlite:///var/ledger.sqlite3 current`.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import create_engine
from sqlmodel.sql.sqltypes import AutoString

from payouts.ledger import types
from payouts.ledger.models import metadata

config = context.config


def render_item(type_: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Types in a generated migration as the existing migrations write them."""
    if type_ == "type" and type(item).__module__ == types.__name__:  # the ledger's own column types
        autogen_context.imports.add(f"from {types.__name__} import {type(item).__name__}")
        return "UtcDateTime()" if isinstance(item, types.UtcDateTime) else repr(item)
    if type_ == "type" and isinstance(item, AutoString):  # SQLModel's str column is a String
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False  # the default rendering


def _engine():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit(
            "no ledger to migrate: use `payouts db upgrade` (PAYOUTS_DATABASE_URL), or pass -x url=... to alembic"
        )
    return create_engine(url)


def run_migrations() -> None:
    with _engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
            process_revision_directives=config.attributes.get("process_revision_directives"),
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
