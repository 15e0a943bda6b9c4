"""Bad user input gives a clear error naming what and where, and no secret is shown: `payouts
approve` given a key file that is not one (non-UTF-8 bytes, empty, a public key, a directory,
5 MB of zeros, a dangling link, a seed readable by others), through a real `payouts` process.
Holds: each is one line naming the file, exit 2, no traceback, the seed never echoed, nothing
recorded."""

from __future__ import annotations

import os

import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.ledger.db import make_engine
from payouts.ledger.models import Approval
from tests.cli.test_operator_failures import assert_short_failure, payouts


def _write(path, data: bytes, mode: int = 0o600):
    path.write_bytes(data)
    os.chmod(path, mode)


SEED = Keypair.random().secret

CASES = {
    "non_utf8": (lambda p: _write(p, b"\xff\xfe\x00bad"), "cannot be read"),
    "empty": (lambda p: _write(p, b""), "does not hold a valid Stellar secret seed"),
    "public_key": (
        lambda p: _write(p, Keypair.random().public_key.encode()),
        "does not hold a valid Stellar secret seed",
    ),
    "directory": (lambda p: p.mkdir(), "cannot be read"),
    "huge": (lambda p: _write(p, bytes(5_000_000)), "does not hold a valid Stellar secret seed"),
    "dangling_link": (lambda p: p.symlink_to(p.parent / "nowhere"), "does not exist"),
    "readable_by_others": (lambda p: _write(p, SEED.encode(), 0o644), "readable by others (mode 644)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_a_hostile_key_file_is_named_in_one_line(tmp_path, sqlite_url, case):
    make, words = CASES[case]
    path = tmp_path / f"{case}.key"
    make(path)
    result = payouts("approve", "1", "-k", str(path), "-y", env={"PAYOUTS_DATABASE_URL": sqlite_url})
    assert result.returncode == 2
    text = assert_short_failure(result, str(path), words)
    assert SEED not in text and SEED.lower() not in text
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        assert session.exec(select(Approval)).all() == []
    engine.dispose()
