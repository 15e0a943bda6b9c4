"""The size limit on a snapshot's decompressed bytes (a gzip bomb is refused before it fills
memory), and reading a file's bytes within it."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from payouts.snapshot.errors import SnapshotError

#: Largest decompressed snapshot read by default (a setting: PAYOUTS_SNAPSHOT_MAX_BYTES); a
#: gzip file that inflates beyond it is refused before it fills memory.
DEFAULT_MAX_DECOMPRESSED_BYTES = 4 * 2**30
_READ_CHUNK_BYTES = 1 << 20


def too_large(path: Path, limit: int) -> SnapshotError:
    return SnapshotError(
        path,
        "$",
        f"decompresses to more than {limit:,} bytes, the largest snapshot read "
        "(setting PAYOUTS_SNAPSHOT_MAX_BYTES); refused before it fills memory",
    )


def open_error(path: Path, exc: OSError) -> SnapshotError:
    if isinstance(exc, FileNotFoundError):
        return SnapshotError(path, "$", "file not found")
    if isinstance(exc, IsADirectoryError):
        return SnapshotError(path, "$", "is a directory, not a snapshot file")
    return SnapshotError(path, "$", f"cannot be read: {exc.strerror}")


def read_bytes(path: Path, limit: int) -> bytes:
    """The file's bytes (decompressed when the name ends in .gz), at most `limit` of them."""
    try:
        if not path.name.endswith(".gz"):
            with path.open("rb") as plain:
                raw = plain.read(limit + 1)
            if len(raw) > limit:
                raise too_large(path, limit)
            return raw
        chunks: list[bytes] = []
        size = 0
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_READ_CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise too_large(path, limit)
                chunks.append(chunk)
        return b"".join(chunks)
    except SnapshotError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SnapshotError(path, "$", f"not a valid gzip file ({exc})") from None
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
            raise open_error(path, exc) from None
        raise SnapshotError(path, "$", f"not a valid gzip file or cannot be read ({exc})") from None
