"""No secret shown, and bad user input gives a clear error: a ledger URL whose password holds the
characters URL parsers trip on (`/`, `?`, `#`, `[`, a second `@`), pointed at a database that does
not answer, or with a malformed port, through a real `payouts` process.

Found here and fixed: a port that is not a number (`host:abc`, or an unclosed `[::1`) crashed
with sqlalchemy's ValueError and a traceback; it is now the ledger URL error. A password holding a
second `@` was shown from that `@` on (`payer:***@<rest of the password>@host`); it is masked
whole now."""

from __future__ import annotations

import pytest

from tests.cli.test_operator_failures import assert_short_failure, payouts

PASSWORD = "Zq7-secret-pw"

UNREACHABLE = [
    f"postgresql://payer:{PASSWORD}@127.0.0.1:1/ledger",
    f"postgresql://payer:pa/{PASSWORD}@127.0.0.1:1/ledger",
    f"postgresql://payer:pa?{PASSWORD}@127.0.0.1:1/ledger",
    f"postgresql://payer:pa#{PASSWORD}@127.0.0.1:1/ledger",
    f"postgresql://payer:pa[{PASSWORD}@127.0.0.1:1/ledger",
    f"postgres://payer:p@{PASSWORD}@127.0.0.1:1/ledger",
]


@pytest.mark.parametrize("url", UNREACHABLE, ids=["plain", "slash", "question", "hash", "bracket", "second_at"])
@pytest.mark.parametrize("command", [["runs"], ["db", "status"]])
def test_no_secret_an_unreachable_ledger_never_shows_its_password(url, command):
    result = payouts(*command, env={"PAYOUTS_DATABASE_URL": url})
    text = assert_short_failure(result, "cannot open the ledger", "127.0.0.1:1")
    assert PASSWORD not in text
    assert "***" in text


@pytest.mark.parametrize(
    "url",
    [f"postgresql://payer:{PASSWORD}@host:abc/ledger", f"postgresql://payer:{PASSWORD}@[::1:1/ledger"],
    ids=["letters", "unclosed_bracket"],
)
def test_bad_input_a_ledger_url_with_a_malformed_port_is_named_without_a_traceback(url):
    result = payouts("runs", env={"PAYOUTS_DATABASE_URL": url})
    text = assert_short_failure(result, "PAYOUTS_DATABASE_URL is not a ledger URL")
    assert PASSWORD not in text
