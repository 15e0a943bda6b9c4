"""A large `/2` month's node lines read by worker processes, merged back in file order.

The node lines are independent of each other, so worker processes (forked from the loading
process before it starts its reader thread) split, validate and measure chunks of them
(`Measuring.read_line`) while the loading process inflates and hashes the file and keeps the
results in file order. At most a few chunks are in flight: memory stays flat. Whatever a worker
cannot give (a line that is not plain, a failed chunk, a lost worker) the loading process reads
itself, in its turn, so the result and any error are the same as reading in one process.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager

from payouts.snapshot.errors import SnapshotError
from payouts.snapshot.measuring import Measuring, PlainLine

#: a chunk handed to a worker at once: a few MB of lines
_CHUNK_LINES = 48
_CHUNK_BYTES = 2 << 20
#: chunks in flight per worker (read ahead of the merge)
_AHEAD_PER_WORKER = 2
#: stored bytes below which a month is read in one process (starting workers costs more)
MIN_STORED_BYTES = 8 << 20


class Unread:
    """A line the loading process reads itself (the header, or a chunk no worker gave back)."""


UNREAD = Unread()

_measuring: Measuring | None = None


def _start_worker(measuring: Measuring) -> None:
    global _measuring
    _measuring = measuring
    # Ctrl-C reaches the whole process group: the loading process stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ready() -> bool:
    return True


def _read_chunk(lines: list[bytes]) -> list[PlainLine | None]:
    if _measuring is None:
        raise RuntimeError("the worker was started without the month's header")
    return [_measuring.read_line(line) for line in lines]


class Workers:
    """Worker processes for one month, started before the file is read."""

    def __init__(self, executor: ProcessPoolExecutor, processes: int, header_line: bytes) -> None:
        self.executor = executor
        self.processes = processes
        #: the header line the workers' measuring was built from
        self.header_line = header_line

    def lines(
        self, lines: Iterator[tuple[int, bytes]], path_error: SnapshotError
    ) -> Iterator[tuple[int, bytes, PlainLine | None | Unread]]:
        """(line number, line, what a worker read of it) for every line in file order: the
        header and whatever no worker read come as UNREAD. `path_error` is raised when the
        header is not the one the workers were started with (the file changed)."""
        first = next(lines, None)
        if first is None:
            return
        if first[1] != self.header_line:
            raise path_error
        yield first[0], first[1], UNREAD
        pending: deque[tuple[list[int], list[bytes], Future[list[PlainLine | None]] | None]] = deque()
        numbers: list[int] = []
        chunk: list[bytes] = []
        size = 0
        ahead = self.processes * _AHEAD_PER_WORKER
        try:
            for number, line in lines:
                numbers.append(number)
                chunk.append(line)
                size += len(line)
                if len(chunk) >= _CHUNK_LINES or size >= _CHUNK_BYTES:
                    pending.append((numbers, chunk, self._submit(chunk)))
                    numbers, chunk, size = [], [], 0
                    while len(pending) > ahead:
                        yield from _merged(*pending.popleft())
        except SnapshotError:
            # the lines before the problem come first, as when reading in one process
            pending.append((numbers, chunk, None))
            while pending:
                yield from _merged(*pending.popleft())
            raise
        pending.append((numbers, chunk, self._submit(chunk) if chunk else None))
        while pending:
            yield from _merged(*pending.popleft())

    def _submit(self, chunk: list[bytes]) -> Future[list[PlainLine | None]] | None:
        try:
            return self.executor.submit(_read_chunk, chunk)
        except RuntimeError:  # the pool is broken or shut down: read here
            return None


def _merged(
    numbers: list[int], chunk: list[bytes], future: Future[list[PlainLine | None]] | None
) -> Iterator[tuple[int, bytes, PlainLine | None | Unread]]:
    read: list[PlainLine | None] | None = None
    if future is not None:
        try:
            read = future.result()
        except Exception:  # noqa: BLE001 - the loading process reads the chunk, and reports as it would
            read = None
    if read is None or len(read) != len(chunk):
        for number, line in zip(numbers, chunk, strict=True):
            yield number, line, UNREAD
        return
    yield from zip(numbers, chunk, read, strict=True)


@contextmanager
def workers(measuring: Measuring | None, header_line: bytes, processes: int) -> Iterator[Workers | None]:
    """Worker processes reading node lines with `measuring` (None: one process, also when
    processes cannot be started here). Call before the file's reader thread starts: the
    workers are forked at once."""
    executor = _start(measuring, processes) if measuring is not None and processes > 1 else None
    if executor is None:
        yield None
        return
    try:
        yield Workers(executor, processes, header_line)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _start(measuring: Measuring, processes: int) -> ProcessPoolExecutor | None:
    if "fork" not in multiprocessing.get_all_start_methods() or multiprocessing.current_process().daemon:
        return None  # a daemon process (a worker pool's) cannot start processes of its own
    try:
        executor = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_start_worker,
            initargs=(measuring,),
        )
        executor.submit(_ready).result()  # fork now, while this is the only thread
    except (OSError, RuntimeError):
        return None
    return executor
