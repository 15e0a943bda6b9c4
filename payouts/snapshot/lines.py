"""The decompressed lines of a snapshot file, with the size limit and the SHA-256 of its bytes.

Reading, hashing and inflating run on a reader thread (zlib and hashlib let go of the
interpreter while they work), so they overlap with the parsing of the lines on the caller's
thread. The thread hands on bounded pieces through a short queue: memory stays flat, and a gzip
bomb is refused at the size limit before it fills memory.
"""

from __future__ import annotations

import gzip
import hashlib
import queue
import threading
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path

from payouts.snapshot.errors import SnapshotError
from payouts.snapshot.limits import open_error, too_large

#: one node line is held at a time; a month's longest is tens of kB
MAX_LINE_BYTES = 64 * 2**20
_READ_CHUNK_BYTES = 1 << 20
#: stored bytes read, and decompressed bytes handed on, at a time (memory stays flat)
_INFLATE_CHUNK_BYTES = 128 << 10
_PIECE_BYTES = 256 << 10
#: pieces waiting for the parser at most (a few MB)
_QUEUED_PIECES = 8
_END = object()


def raw_sha256(path: Path) -> str:
    """SHA-256 of a file's stored bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class Lines:
    """The decompressed lines of a file, with the size limit and the SHA-256."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        #: SHA-256 of the decompressed bytes, complete once every line was read
        self.digest = hashlib.sha256()
        #: SHA-256 of the file's bytes as stored (compressed), taken as they are read
        self.raw_digest = hashlib.sha256()

    def _pieces(self) -> Iterator[bytes]:
        """The decompressed bytes in pieces of at most _PIECE_BYTES (gzip members one after the
        other, zero padding between them skipped, as the gzip module reads them), each stored
        byte hashed as it is read."""
        gzipped = self.path.name.endswith(".gz")
        with self.path.open("rb") as raw:
            inflater = None
            while chunk := raw.read(_INFLATE_CHUNK_BYTES):
                self.raw_digest.update(chunk)
                if not gzipped:
                    yield chunk
                    continue
                while chunk:
                    if inflater is None:  # between members
                        chunk = chunk.lstrip(b"\0")
                        if not chunk:
                            break
                        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    # bounded pieces: a gzip bomb never inflates past one piece at a time
                    piece = inflater.decompress(chunk, _PIECE_BYTES)
                    if piece:
                        yield piece
                    chunk = inflater.unconsumed_tail
                    if inflater.eof:
                        chunk, inflater = inflater.unused_data, None
            if inflater is not None:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")

    def _read_ahead(self, pieces: queue.Queue, stop: threading.Event) -> None:
        """The reader thread: pieces (hashed) into the queue, then _END or the exception."""
        size = 0
        try:
            for piece in self._pieces():
                size += len(piece)
                if size <= self.limit:
                    self.digest.update(piece)
                while not stop.is_set():
                    try:
                        pieces.put(piece, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or size > self.limit:
                    break  # the parser stopped, or refuses the next piece (size limit)
            else:
                pieces.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the parser's thread, raised there
            pieces.put(exc)

    def _queued(self) -> Iterator[bytes]:
        pieces: queue.Queue = queue.Queue(_QUEUED_PIECES)
        stop = threading.Event()
        reader = threading.Thread(target=self._read_ahead, args=(pieces, stop), name="snapshot-reader", daemon=True)
        reader.start()
        try:
            while (piece := pieces.get()) is not _END:
                if isinstance(piece, BaseException):
                    raise piece
                yield piece
        finally:
            stop.set()
            while reader.is_alive():  # let the thread see the stop (it may wait on a full queue)
                try:
                    pieces.get_nowait()
                except queue.Empty:
                    reader.join(0.05)

    def __iter__(self) -> Generator[tuple[int, bytes], None, None]:
        """(line number, line) for every non-empty line."""
        number = 0
        pending = bytearray()
        try:
            for piece in self._queued():
                self.size += len(piece)
                if self.size > self.limit:
                    raise too_large(self.path, self.limit)
                pending += piece
                start = 0
                while (end := pending.find(b"\n", start)) >= 0:
                    number += 1
                    line = bytes(pending[start : end + 1])
                    start = end + 1
                    if len(line) > MAX_LINE_BYTES + 1:
                        raise self._too_long(number)
                    if line.strip():
                        yield number, line
                del pending[:start]
                if len(pending) > MAX_LINE_BYTES:
                    raise self._too_long(number + 1)
            if pending:
                number += 1
                if pending.strip():
                    yield number, bytes(pending)
        except SnapshotError:
            raise
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise SnapshotError(self.path, "$", f"not a valid gzip file ({exc})") from None
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
                raise open_error(self.path, exc) from None
            raise SnapshotError(self.path, "$", f"not a valid gzip file or cannot be read ({exc})") from None

    def _too_long(self, number: int) -> SnapshotError:
        return SnapshotError(self.path, f"line {number}", f"longer than {MAX_LINE_BYTES:,} bytes; refused")
