"""Fixtures shared by the whole suite: real databases, migrated with Alembic once per test
process and copied for each test, and the markers that sort the suite into tiers."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from payouts import retry
from payouts.ledger.db import make_engine, migrate
from tests.support.markers import GroupNodeIds, mark_items
from tests.support.servers import PostgresServer


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`slow`, `postgres`, `redis`, `browser` and `network` from what each test starts (see
    tests/support/markers.py); under xdist, tests sharing a module's server stay on one worker
    and the longest modules are handed out first."""
    mark_items(config, items)


# retries in the clients' reads wait no time here; tests that measure a wait inject a sleep
retry.set_testing(True)

_TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: tell each worker the terminal size variables this process has (workers start
    with COLUMNS=80 and LINES=24 set, which would fix the CLI's table width at import)."""
    node.workerinput["terminal_env"] = {name: os.environ.get(name) for name in _TERMINAL_ENV}


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(GroupNodeIds(), "group-node-ids")
    terminal_env = getattr(config, "workerinput", {}).get("terminal_env")
    for name, value in (terminal_env or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A database migrated once; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = "payouts_template"
    with psycopg.connect(
        f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    engine = make_engine(postgres_server.url(name))
    migrate(engine)
    engine.dispose()
    return name


def _new_postgres_database(server: PostgresServer, template: str) -> str:
    name = f"payouts_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return server.url(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite ledger migrated once per test process (each xdist worker has its own); each
    test gets a copy of the file."""
    path = tmp_path_factory.mktemp("sqlite-template") / "ledger.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    # the last connection closed checkpoints the write-ahead log into the file: the file alone
    # is the whole migrated ledger
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the SQLite template left {leftovers} beside the ledger file"
    return path


@pytest.fixture(scope="session")
def new_sqlite_ledger(sqlite_template: Path) -> Callable[[Path], str]:
    """Make a migrated SQLite ledger at a path (a copy of the template, owner-only like a ledger
    the product creates) and return its URL."""

    def make(path: Path) -> str:
        if path.exists():
            raise FileExistsError(f"a ledger already exists at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sqlite_template, path)
        os.chmod(path, 0o600)
        return f"sqlite:///{path}"

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path, new_sqlite_ledger) -> str:
    """A freshly migrated ledger on each backend: the ledger's tests run on both."""
    if request.param == "sqlite":
        return new_sqlite_ledger(tmp_path / "ledger.sqlite3")
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    return _new_postgres_database(server, template)


@pytest.fixture
def sqlite_url(tmp_path, new_sqlite_ledger) -> str:
    return new_sqlite_ledger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    engine = make_engine(ledger_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session
        session.rollback()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path) -> None:
    """No test reads a developer's .env or writes the default ledger."""
    for key in list(os.environ):
        if key.startswith("PAYOUTS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PAYOUTS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
