"""The models and the migrations agree on SQLite and PostgreSQL, and `payouts db revision`
writes the next migration from what the models have that the migrations lack."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import ALEMBIC_INI, alembic_config, write_revision
from payouts.ledger.models import metadata

ROOT = ALEMBIC_INI.parent


def _differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_the_migrated_schema_is_the_models_schema(engine):
    assert _differences(engine) == []


def _checkout_without(tmp_path: Path, revision: str) -> Path:
    """A copy of alembic.ini and the migrations, missing `revision` (the newest)."""
    shutil.copy(ALEMBIC_INI, tmp_path / "alembic.ini")
    versions = tmp_path / "payouts" / "ledger" / "migrations"
    shutil.copytree(ROOT / "payouts" / "ledger" / "migrations", versions, ignore=shutil.ignore_patterns("__pycache__"))
    (missing,) = (versions / "versions").glob(f"{revision}_*.py")
    missing.unlink()
    return tmp_path / "alembic.ini"


def test_a_generated_migration_is_numbered_next_and_brings_the_schema_to_the_models(engine, tmp_path):
    newest = max((ROOT / "payouts" / "ledger" / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    number = newest.name[:4]
    ini = _checkout_without(tmp_path, number)

    path = write_revision("columns of the newest migration, again", ini=ini)

    assert path is not None and path.parent.name == "versions"
    assert path.name == f"{number}_columns_of_the_newest_migration_again.py"
    text = path.read_text()
    assert f'revision = "{number}"' in text
    assert f'down_revision = "{int(number) - 1:04d}"' in text
    # linted and formatted like the tree (the post-write hooks of alembic.ini)
    for check in (["check"], ["format", "--check"]):
        result = subprocess.run([sys.executable, "-m", "ruff", *check, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    # the ledger one migration back, then the generated one: the schema is the models' again
    command.downgrade(alembic_config(engine), f"{int(number) - 1:04d}")
    engine.dispose()
    assert _differences(engine) != []
    config = Config(str(ini))
    config.attributes["engine"] = engine
    command.upgrade(config, "head")
    engine.dispose()
    assert _differences(engine) == []


def test_no_migration_is_written_when_the_models_and_migrations_agree(tmp_path):
    shutil.copy(ALEMBIC_INI, tmp_path / "alembic.ini")
    shutil.copytree(
        ROOT / "payouts" / "ledger" / "migrations",
        tmp_path / "payouts" / "ledger" / "migrations",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    before = sorted(p.name for p in (tmp_path / "payouts" / "ledger" / "migrations" / "versions").iterdir())
    assert write_revision("nothing", ini=tmp_path / "alembic.ini") is None
    after = sorted(p.name for p in (tmp_path / "payouts" / "ledger" / "migrations" / "versions").iterdir())
    assert after == before


def test_the_revision_command_needs_a_message():
    result = CliRunner().invoke(app, ["db", "revision", "-m", "  "])
    assert result.exit_code == 2 and "needs a message" in result.stderr


@pytest.mark.parametrize("command", ["upgrade", "status"])
@pytest.mark.parametrize(
    "url",
    # a server nobody listens on; a SQLite file below a plain file, which no folder can hold
    ["postgresql+psycopg://payouts:Pw-not-shown@127.0.0.1:1/ledger", "sqlite:///{tmp}/a-file/ledger.db"],
)
def test_db_commands_on_a_ledger_that_cannot_be_opened_say_so_without_a_traceback(monkeypatch, tmp_path, command, url):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", url.format(tmp=tmp_path))
    result = CliRunner().invoke(app, ["db", command])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "cannot open the ledger at" in result.output
    assert "Traceback" not in result.output and "Pw-not-shown" not in result.output


def test_a_sqlite_ledger_path_that_cannot_be_made_is_named_by_any_command(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", f"sqlite:///{tmp_path}/a-file/ledger.db")
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert f"the ledger file {tmp_path}/a-file/ledger.db cannot be created" in result.output
