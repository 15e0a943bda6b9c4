"""Revision 0005 (revenue bridge) goes up and down on SQLite and PostgreSQL, and the models
match the migrated schema."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from payouts.ledger.db import alembic_config
from payouts.ledger.models import metadata


def _columns(engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_revision_0005_upgrades_downgrades_and_matches_the_models(engine):
    tables = set(inspect(engine).get_table_names())
    assert {"node_transitions", "farm_signons"} <= tables
    assert "connection_price_musd" in _columns(engine, "receipts")
    assert "correction_of_payment_id" in _columns(engine, "payments")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []

    command.downgrade(alembic_config(engine), "0004")
    engine.dispose()
    tables = set(inspect(engine).get_table_names())
    assert not {"node_transitions", "farm_signons"} & tables
    assert "connection_price_musd" not in _columns(engine, "receipts")
    assert "correction_of_payment_id" not in _columns(engine, "payments")

    command.upgrade(alembic_config(engine), "0005")
    engine.dispose()
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0005"
    assert {"node_transitions", "farm_signons"} <= set(inspect(engine).get_table_names())
    # later revisions chain onto 0005; at head the models match again
    command.upgrade(alembic_config(engine), "head")
    engine.dispose()
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
