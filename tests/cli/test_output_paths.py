"""Commands that write files or listen on a port: a path or address that cannot be used is
named in one line, not a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from payouts.cli.main import app


@pytest.fixture
def blocked(monkeypatch, tmp_path):
    """A plain file where a folder would have to be."""
    monkeypatch.setenv("PAYOUTS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PAYOUTS_DATABASE_URL", raising=False)
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["publish", "--out", "{blocked}"], "cannot publish the site to {blocked}"),
        (["export", "--out", "{blocked}/entries.csv"], "cannot write the export to {blocked}/entries.csv"),
        (["synth", "-o", "{blocked}/month.jsonl.gz", "--nodes", "2"], "the folder of --out ({blocked}) does not exist"),
        (["web", "--host", "256.1.1.1", "--port", "0", "--site", "{blocked}"], "cannot listen on 256.1.1.1:0"),
        (["web", "--port", "65536"], "Invalid value for '--port'"),
    ],
)
def test_a_path_or_address_that_cannot_be_used_is_named(blocked, args, said):
    result = CliRunner().invoke(app, [arg.format(blocked=blocked) for arg in args])
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert said.format(blocked=blocked) in " ".join(result.output.split())
