"""A published site over a ledger with real sandbox payments (batch memos), shared by the web
server and browser tests of a module, and served by the read-only web server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from payouts.export.corrections import record_correction
from payouts.export.rows import iter_entries
from payouts.export.server import make_server, serve_in_thread
from payouts.export.site import publish_site
from payouts.ledger.db import session_scope
from payouts.ledger.models import NodeTransition
from tests.export.support import paid_ledger


@pytest.fixture(scope="module")
def published(tmp_path_factory, new_sqlite_ledger):
    """(site folder, ledger url, paid ledger, entries as exported) after two batch-mode periods."""
    folder = tmp_path_factory.mktemp("published")
    url = new_sqlite_ledger(folder / "ledger.sqlite3")
    with paid_ledger(url, folder, "batch") as paid:
        with session_scope(paid.engine) as session:
            first_paid = next(e for e in iter_entries(session) if e["status"] == "paid" and e["node_id"] == 1020)
            record_correction(session, first_paid["receipt_hash"], 5 * 10**7, "uptime credited late")
            session.add(
                NodeTransition(
                    node_id=1021,
                    v3_opted_out_at=datetime(2025, 3, 1, tzinfo=UTC),
                    v4_account="GV4ACCOUNT",
                    updated_at=datetime(2025, 3, 1, tzinfo=UTC),
                )
            )
        with Session(paid.engine) as session:
            publish_site(session, folder / "site", network="dev", horizon_url=paid.horizon_url)
            entries = list(iter_entries(session))
        yield folder / "site", url, paid, entries


@pytest.fixture(scope="module")
def web(published):
    """The read-only web server on a free loopback port, serving the site and the ledger."""
    site, url, _paid, _entries = published
    server = make_server(url, "127.0.0.1", 0, site, network="dev")
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()
    server.engine.dispose()
