"""Fixtures shared by the whole suite: real databases, migrated with Alembic."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from payouts.ledger.db import make_engine, migrate
from tests.support.servers import PostgresServer


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


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    """A freshly migrated ledger on each backend: the ledger's tests run on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        return url
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    return _new_postgres_database(server, template)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


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
