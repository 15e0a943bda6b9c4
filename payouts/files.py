"""Files written all or nothing: the bytes go to a temporary file in the same folder, are flushed
to disk, and the finished file is moved over the target in one step (`os.replace`), so a reader
sees the old file or the new one, never half of one. Private files (keys, seeds) are created
0600 from the first byte, so no other user ever sees them, even for a moment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_MODE = 0o600


def temporary_name(path: Path, keep_suffix: str = "") -> Path:
    """The temporary file beside `path` for this process: `<name>.tmp-<pid><keep_suffix>`
    (`keep_suffix` for readers that judge a file by its ending, e.g. ".gz")."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}{keep_suffix}")


@contextmanager
def atomic_path(path: Path, *, private: bool = False, keep_suffix: str = "", overwrite: bool = True) -> Iterator[Path]:
    """A temporary path to write the whole file to (with any writer); on a clean exit it is
    flushed to disk and put in place of `path`, on an error it is removed and `path` is left as
    it was. `private`: the file is 0600 from its creation. `overwrite=False`: an existing `path`
    is never replaced (FileExistsError), even one that appears while writing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path, keep_suffix)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE if private else 0o666)
    try:
        if private:
            os.fchmod(descriptor, PRIVATE_MODE)  # a leftover temporary file keeps its old mode otherwise
    finally:
        os.close(descriptor)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if `path` exists: nothing is overwritten
    finally:
        temporary.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes | str, *, private: bool = False, overwrite: bool = True) -> None:
    """Write `data` (str as UTF-8) to `path` all or nothing (see `atomic_path`)."""
    with atomic_path(path, private=private, overwrite=overwrite) as temporary:
        temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
