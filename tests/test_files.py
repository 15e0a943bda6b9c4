"""Files written all or nothing (payouts/files.py): the target is the old file or the whole new
one, private files are 0600, and a file that must not be overwritten never is."""

from __future__ import annotations

import os
import stat

import pytest

from payouts.files import atomic_path, temporary_name, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_private_file_is_0600_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "deep" / "keys.json"
    write_atomic(target, "old")
    write_atomic(target, b"new", private=True)
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["keys.json"]


def test_a_leftover_temporary_file_does_not_lend_its_mode(tmp_path):
    target = tmp_path / "seed"
    leftover = temporary_name(target)
    leftover.write_text("stale")
    leftover.chmod(0o644)
    write_atomic(target, "S...\n", private=True)
    assert _mode(target) == 0o600 and not leftover.exists()


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "export.csv"
    target.write_text("complete\n")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("stopped half way")
    assert target.read_text() == "complete\n"
    assert list(tmp_path.iterdir()) == [target]


def test_never_overwritten_means_never(tmp_path):
    target = tmp_path / "treasury.seed"
    target.write_text("first")
    with pytest.raises(FileExistsError):
        write_atomic(target, "second", private=True, overwrite=False)
    assert target.read_text() == "first"
    assert list(tmp_path.iterdir()) == [target]
    fresh = tmp_path / "payout.seed"
    write_atomic(fresh, "only", private=True, overwrite=False)
    assert fresh.read_text() == "only" and _mode(fresh) == 0o600


def test_the_temporary_name_keeps_the_ending_a_reader_judges_by(tmp_path):
    target = tmp_path / "tfgrid-snapshot-91.json.gz"
    with atomic_path(target, keep_suffix=".gz") as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".gz")
        assert temporary.name.startswith(f"{target.name}.tmp-{os.getpid()}")
        temporary.write_bytes(b"x")
    assert target.read_bytes() == b"x"
