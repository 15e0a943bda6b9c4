"""Load `tfgrid-snapshot/2` files: gzip-compressed JSON Lines, streamed node by node.

The first line is the header (format, network, period, the edge blocks, policies, farms, twins,
notes, source); every further line is one node: its record, its power state at the start and
its events in chain order, as columns (see FORMAT.md). Memory stays flat: only the node
records are kept (the calculation gives every node a receipt); events are read one node line
at a time and let go when the node is measured.

Loading reads the file once, decompressing as it goes: it checks the size limit (a gzip bomb
is refused before it fills memory), takes the SHA-256 of the decompressed bytes (and of the
stored bytes), validates the header and every node record and, while every line is ordinary,
measures every node from its event columns (`calculation.columns`), so that the calculation
needs no second read. Otherwise events are validated as the calculation reads them again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import orjson
from pydantic import BaseModel, ValidationError

from payouts.calculation.columns import EventColumns
from payouts.calculation.uptime import UptimeMeasurement, Window
from payouts.snapshot.errors import BOM_PROBLEM, BYTE_ORDER_MARKS, SnapshotError, describe, header_error
from payouts.snapshot.event_columns import Table, columns_from_table, split_node_line, table_from_lists
from payouts.snapshot.format2 import (
    EVENT_COLUMNS,
    KINDS,
    POST_PERIOD_BLOCKS,
    Blocks,
    Header2,
    NodeLine,
    check_blocks,
)
from payouts.snapshot.json_keys import StrictJsonError, loads_once_per_key
from payouts.snapshot.lines import Lines, raw_sha256
from payouts.snapshot.loaded import EventStats, LoadedSnapshot
from payouts.snapshot.measuring import Measuring, PlainLine, plain_node_line, power_of
from payouts.snapshot.node_lines import MIN_STORED_BYTES, UNREAD, Unread, Workers, workers
from payouts.snapshot.schema import (
    EVENT_UPTIME,
    FORMAT_2_TAG,
    NARROW_EVENT_LIMIT,
    U32_MAX,
    U64_MAX,
    Event,
    Node,
    PowerAtStart,
    SnapshotHeader,
)

_M = TypeVar("_M", bound=BaseModel)


class _Inexact(Exception):
    """A float where an integer belongs: orjson reads integers past 64 bits as floats, so the
    line is read again with the standard library, which keeps every integer exact."""


def _parse(path: Path, number: int, line: bytes, *, exact: bool = False) -> dict:
    if exact:
        value = _strict(path, number, line)
    else:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            # orjson refuses an integer past a double's range: the exact reader reads it, or
            # names what is wrong and where
            value = _strict(path, number, line)
    if not isinstance(value, dict):
        raise SnapshotError(path, f"line {number}", f"expected a JSON object, got {describe(value)}")
    return value


def _strict(path: Path, number: int, line: bytes) -> object:
    """The line read exactly, with every rule of `loads_once_per_key` (a key twice, NaN, an
    integer too long to read: refused naming the place)."""
    try:
        return loads_once_per_key(line, "$")
    except StrictJsonError as exc:
        raise SnapshotError(path, f"line {number}: {exc.path}", exc.problem) from None
    except RecursionError:
        raise SnapshotError(path, f"line {number}", "not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise SnapshotError(path, f"line {number}", f"not valid JSON: {exc}") from None


def load_snapshot_2(path: Path, *, max_decompressed_bytes: int, processes: int = 1) -> StreamedSnapshot:
    """Read and validate a `/2` file's header and node records (one pass, flat memory).

    `processes` above 1 lets a large month's node lines be read by that many worker processes
    (`node_lines`); the result is the same as in one process.

    Raises SnapshotError naming the file, the line or JSON path and the problem.
    """
    collecting = gc.isenabled()
    gc.disable()  # the pass makes millions of short-lived integers and no cycles
    try:
        measuring, header_line = _header_for_workers(path, max_decompressed_bytes, processes)
        with workers(measuring, header_line, processes) as pool:
            return _load_snapshot_2(path, max_decompressed_bytes, pool)
    finally:
        if collecting:
            gc.enable()


def _header_for_workers(path: Path, limit: int, processes: int) -> tuple[Measuring | None, bytes]:
    """The measuring the workers start with, from the header line read ahead; None (one
    process) for a small month, or when the header has any problem (the pass reports it)."""
    if processes < 2:
        return None, b""
    try:
        if path.stat().st_size < MIN_STORED_BYTES:
            return None, b""
        first = iter(Lines(path, limit))
        try:
            number, line = next(first)
        finally:
            first.close()  # stops the reader thread before the workers are forked
        header = _validate(Header2, _parse(path, number, line), path, number, line)
        check_blocks(path, header)
    except (OSError, StopIteration, SnapshotError, ValidationError):
        return None, b""
    return Measuring(header), line


def _load_snapshot_2(path: Path, max_decompressed_bytes: int, pool: Workers | None) -> StreamedSnapshot:
    lines = Lines(path, max_decompressed_bytes)
    changed = SnapshotError(path, "$", "the file changed while it was being read; calculate again")
    source = pool.lines(iter(lines), changed) if pool is not None else _unread(lines)
    header: Header2 | None = None
    nodes: list[Node] = []
    power: list[PowerAtStart] = []
    # Every node is measured in this same pass while every line is ordinary (see Measuring);
    # the calculation then needs no second read of the file.
    measuring: Measuring | None = None
    for number, line, read in source:
        if header is not None:
            plain = _read_here(measuring, line) if isinstance(read, Unread) else read
            if plain is not None:
                _keep_node(plain.record, nodes, power)
                if measuring is not None and not measuring.take(plain.record.node, plain.measured):
                    measuring = None  # something unusual: the calculation reads the file again
                continue
        if number == 1 and line.startswith(BYTE_ORDER_MARKS):
            raise SnapshotError(path, "line 1", BOM_PROBLEM)
        document = _parse(path, number, line, exact=True)  # every rule: a key once, integers exact
        if header is None:
            v1_keys = sorted({"nodes", "uptime_events", "power_events", "power_at_start"} & set(document))
            if v1_keys:
                raise SnapshotError(
                    path,
                    "$.format",
                    f"the format tag says {FORMAT_2_TAG!r} but the file has keys of tfgrid-snapshot/1 "
                    f"({', '.join(v1_keys)}); expected the format tag 'tfgrid-snapshot/1' for that layout",
                )
            try:
                header = _validate(Header2, document, path, number, line)
            except ValidationError as exc:
                raise header_error(path, exc, FORMAT_2_TAG, prefix="line 1") from None
            check_blocks(path, header)
            measuring = Measuring(header)
            continue
        try:
            record = _validate(NodeLine, document, path, number, line)
        except ValidationError as exc:
            raise header_error(path, exc, FORMAT_2_TAG, prefix=f"line {number}") from None
        at_start = _keep_node(record, nodes, power)
        if measuring is not None and not measuring.node(record.node, at_start, document.get("events")):
            measuring = None  # something unusual: the calculation reads the file again
    if header is None:
        raise SnapshotError(path, "$", "file is empty, expected a header line")
    model = SnapshotHeader.model_construct(
        format="tfgrid-snapshot/2",
        network=header.network,
        period_offset=header.period_offset,
        farming_policies=header.farming_policies,
        farms=header.farms,
        twins=header.twins,
        nodes=nodes,
        power_at_start=power,
        notes=header.notes,
        source=header.source,
    )
    snapshot = StreamedSnapshot(
        path, model, header.blocks, lines.digest.hexdigest(), lines.size, max_decompressed_bytes
    )
    if measuring is not None:
        snapshot.keep_measured(measuring.measured, measuring.stats, lines.raw_digest.hexdigest())
    return snapshot


def _unread(lines: Lines) -> Iterator[tuple[int, bytes, Unread]]:
    for number, line in lines:
        yield number, line, UNREAD


def _read_here(measuring: Measuring | None, line: bytes) -> PlainLine | None:
    """A node line read in this process: measured only while every line so far was ordinary."""
    if measuring is not None:
        return measuring.read_line(line)
    plain = plain_node_line(line)
    return None if plain is None else PlainLine(plain[0], None)


def _plain_columns(
    line: bytes, start_height: int, end_height: int, last_height: int
) -> tuple[int, EventColumns, Table] | None:
    """(node id, the events read for the period, the line's event table) of a plain node line
    whose events the columns reader takes; None otherwise (the line is read as JSON then)."""
    split = split_node_line(line)
    if split is None:
        return None
    head, table = split
    try:
        document = orjson.loads(head)
    except ValueError:
        return None
    node = document.get("node") if isinstance(document, dict) and "events" not in document else None
    node_id = node.get("node_id") if isinstance(node, dict) else None
    if type(node_id) is not int:
        return None
    columns = columns_from_table(table, start_height, end_height, last_height)
    return None if columns is None else (node_id, columns, table)


def _keep_node(record: NodeLine, nodes: list[Node], power: list[PowerAtStart]) -> PowerAtStart | None:
    nodes.append(record.node)
    at_start = power_of(record)
    if at_start is not None:
        power.append(at_start)
    return at_start


def _validate(model: type[_M], document: dict, path: Path, number: int, line: bytes) -> _M:
    """The line's model; on a validation error the line is read again exactly first (a float
    may stand for an integer past 64 bits). Events are checked later, column by column."""
    try:
        return model.model_validate(_without_events(document))
    except ValidationError:
        exact = _parse(path, number, line, exact=True)
        return model.model_validate(_without_events(exact))


def _without_events(document: dict) -> dict:
    return {**document, "events": {}} if "events" in document else document


def _columns_fast(
    heights: list,
    indexes: list,
    stamps: list,
    kinds: list,
    values: list,
    start_height: int,
    end_height: int,
    last_height: int,
) -> EventColumns | None:
    """The common case as whole columns (`columns_from_table`) from JSON lists; None when
    anything is unusual (the checked path then reads the line)."""
    table = table_from_lists(heights, indexes, stamps, kinds, values)
    return None if table is None else columns_from_table(table, start_height, end_height, last_height)


class StreamedSnapshot(LoadedSnapshot):
    """A validated `/2` snapshot: header and node records in memory, events streamed."""

    def __init__(
        self, path: Path, header: SnapshotHeader, blocks: Blocks, sha256: str, size_bytes: int, limit: int
    ) -> None:
        self.path = path
        self.header = header
        self.blocks = blocks
        self._sha256 = sha256
        self.size_bytes = size_bytes
        self._limit = limit
        self.stats = EventStats()
        self._measured: dict[int, UptimeMeasurement] | None = None
        self._measured_stats = EventStats()
        self._raw_sha256 = ""
        #: a node asleep at the start has the start block's timestamp as its wake-up request
        self.wake_at_start_ts: int | None = blocks.start.timestamp

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the bytes after gzip decompression."""
        return self._sha256

    def keep_measured(self, measured: dict[int, UptimeMeasurement] | None, stats: EventStats, raw_sha256: str) -> None:
        """Keep the measurements taken while loading (and the SHA-256 of the stored bytes)."""
        self._measured = measured
        self._measured_stats = stats
        self._raw_sha256 = raw_sha256

    def measured_in_load(self) -> dict[int, UptimeMeasurement] | None:
        """node id -> measurement taken while loading, when every line was ordinary (None
        otherwise: read the events again). The file must still be the one loaded: its stored
        bytes are hashed again (cheap: no decompression) and compared."""
        if self._measured is None:
            return None
        if raw_sha256(self.path) != self._raw_sha256:
            raise SnapshotError(self.path, "$", "the file changed while it was being read; calculate again")
        kept = self._measured_stats
        self.stats = EventStats(uptime_events=kept.uptime_events, power_events=kept.power_events)
        return dict(self._measured)

    def iter_node_events(self, *, buffered: bool = False) -> Iterator[tuple[int, list[Event]]]:
        """(node_id, events read for the period) per node line, in file order."""
        for node_id, events, _window in self.iter_node_windows(buffered=buffered):
            yield node_id, events

    def iter_node_windows(self, *, buffered: bool = False) -> Iterator[tuple[int, list[Event], Window | None]]:
        """(node_id, events, window) per node line: the events of the blocks minting reads, in
        chain order; `window.split` is the first one after the end block."""
        del buffered  # every line holds one whole node: nothing to buffer
        for node_id, read in self.iter_node_columns():
            if isinstance(read, EventColumns):
                events = read.events()
                yield node_id, events, Window(0, read.split, len(events))
            else:
                events, split = read
                yield node_id, events, Window(0, split, len(events))

    def iter_node_columns(self) -> Iterator[tuple[int, EventColumns | tuple[list[Event], int]]]:
        """Per node line, in file order: the events of the blocks minting reads, in chain order,
        as columns when every value is an ordinary narrow integer in chain order (the common
        case), else as (events, split) from the checked reader. `split` is the first event
        after the end block."""
        self.stats = EventStats()
        start_height = self.blocks.start.height
        end_height = self.blocks.end.height
        last_height = end_height + POST_PERIOD_BLOCKS
        reader = Lines(self.path, self._limit)
        lines = iter(reader)
        next(lines, None)  # the header
        for number, line in lines:
            plain = _plain_columns(line, start_height, end_height, last_height)
            if plain is not None:
                node_id, columns, table = plain
                uptime_events = int(np.count_nonzero(table[3] == EVENT_UPTIME))
                self.stats.uptime_events += uptime_events
                self.stats.power_events += table[3].size - uptime_events
                yield node_id, columns
                continue
            document = _parse(self.path, number, line)
            node = document.get("node")
            raw_id = node.get("node_id") if isinstance(node, dict) else None
            if type(raw_id) is not int:
                raise SnapshotError(self.path, f"line {number}: $.node.node_id", "missing or not an integer")
            node_id = raw_id
            stats = self.stats
            counts = (stats.uptime_events, stats.power_events, stats.duplicates_dropped)
            read: EventColumns | tuple[list[Event], int]
            try:
                read = self._events(number, node_id, document.get("events"), start_height, end_height, last_height)
            except _Inexact:
                stats.uptime_events, stats.power_events, stats.duplicates_dropped = counts
                exact = _parse(self.path, number, line, exact=True).get("events")
                read = self._events(number, node_id, exact, start_height, end_height, last_height, exact=True)
            yield node_id, read
        if reader.digest.hexdigest() != self._sha256:
            raise SnapshotError(self.path, "$", "the file changed while it was being read; calculate again")

    def _bad(self, number: int, column: str, problem: str) -> SnapshotError:
        return SnapshotError(self.path, f"line {number}: $.events.{column}", problem)

    def _events(
        self,
        number: int,
        node_id: int,
        columns: object,
        start_height: int,
        end_height: int,
        last_height: int,
        *,
        exact: bool = False,
    ) -> EventColumns | tuple[list[Event], int]:
        if not isinstance(columns, dict):
            raise SnapshotError(self.path, f"line {number}: $.events", f"expected an object, got {describe(columns)}")
        if set(columns) != set(EVENT_COLUMNS):
            missing = sorted(set(EVENT_COLUMNS) - set(columns))
            unknown = sorted(set(columns) - set(EVENT_COLUMNS))
            what = f"missing column {missing[0]!r}" if missing else f"unknown column {unknown[0]!r}"
            raise SnapshotError(self.path, f"line {number}: $.events", what)
        heights, indexes, stamps, kinds, values = (columns[name] for name in EVENT_COLUMNS)
        count = len(heights) if isinstance(heights, list) else -1
        for name in EVENT_COLUMNS:
            column = columns[name]
            if not isinstance(column, list):
                raise self._bad(number, name, f"expected an array, got {describe(column)}")
            if len(column) != count:
                raise self._bad(number, name, f"has {len(column)} entries, expected {count} like $.events.height")
        fast = _columns_fast(heights, indexes, stamps, kinds, values, start_height, end_height, last_height)
        if fast is not None:
            self.stats.uptime_events += kinds.count(EVENT_UPTIME)
            self.stats.power_events += count - kinds.count(EVENT_UPTIME)
            return fast
        return self._events_checked(
            number, node_id, heights, indexes, stamps, kinds, values, start_height, end_height, last_height, exact
        )

    @staticmethod
    def _events_fast(
        heights: list,
        indexes: list,
        stamps: list,
        kinds: list,
        values: list,
        start_height: int,
        end_height: int,
        last_height: int,
    ) -> tuple[list[Event], int] | None:
        """The columns reader's result as (events, split); None when it leaves the line to the
        checked reader."""
        columns = _columns_fast(heights, indexes, stamps, kinds, values, start_height, end_height, last_height)
        return None if columns is None else (columns.events(), columns.split)

    def _events_checked(
        self,
        number: int,
        node_id: int,
        heights: list,
        indexes: list,
        stamps: list,
        kinds: list,
        values: list,
        start_height: int,
        end_height: int,
        last_height: int,
        exact: bool,
    ) -> tuple[list[Event], int]:
        """Every rule, with the problem named: widths, chain order, duplicates."""
        count = len(heights)
        stats = self.stats
        events: list[Event] = []
        keys: list[tuple[int, int]] = []
        split = -1
        previous = (-1, -1)
        ordered = True
        for position in range(count):
            height, index, ts, kind, value = (
                heights[position],
                indexes[position],
                stamps[position],
                kinds[position],
                values[position],
            )
            if type(height) is not int or type(index) is not int or type(ts) is not int or type(value) is not int:
                if float in (type(height), type(index), type(ts), type(value)) and not exact:
                    raise _Inexact
                for name, item in zip(EVENT_COLUMNS, (height, index, ts, kind, value), strict=True):
                    if type(item) is not int:
                        raise self._bad(number, f"{name}[{position}]", f"expected an integer, got {describe(item)}")
            if kind not in KINDS or type(kind) is not int:
                raise self._bad(number, f"kind[{position}]", f"expected 0, 1 or 2, got {describe(kind)}")
            if kind == EVENT_UPTIME:
                stats.uptime_events += 1
            else:
                stats.power_events += 1
                if value not in (0, 1):
                    raise self._bad(number, f"value[{position}]", f"a power event's value is 0 or 1, got {value}")
            if not (0 <= height <= U32_MAX and 0 <= index <= U32_MAX):
                stats.invalid_event_nodes.setdefault(
                    node_id, f"events[{position}]: block {height} index {index} is outside the chain's u32"
                )
                continue
            if not 0 <= ts <= U64_MAX or not 0 <= value <= U64_MAX:
                field_name, bad = ("timestamp", ts) if not 0 <= ts <= U64_MAX else ("value", value)
                stats.invalid_event_nodes.setdefault(
                    node_id, f"events.{field_name}[{position}]: {bad} is out of range (the chain's u64 is 0..{U64_MAX})"
                )
                continue
            if height < start_height or height > last_height:
                continue  # blocks minting does not read for this period
            key = (height, index)
            if key <= previous:
                ordered = False
            previous = key
            if kind == EVENT_UPTIME:
                if value >= NARROW_EVENT_LIMIT:
                    stats.wide_nodes.add(node_id)
                events.append((ts, kind, value))
            else:
                events.append((ts, kind, bool(value)))
            keys.append(key)
        if not ordered:
            events, keys = self._chain_order(node_id, events, keys)
        split = len(events)
        for position, (height, _index) in enumerate(keys):
            if height > end_height:
                split = position
                break
        return events, split

    def _chain_order(
        self, node_id: int, events: list[Event], keys: list[tuple[int, int]]
    ) -> tuple[list[Event], list[tuple[int, int]]]:
        """Events sorted by (block, index); the same chain event twice is kept once, two
        different events at one place make the node invalid."""
        order = sorted(range(len(events)), key=keys.__getitem__)
        out: list[Event] = []
        out_keys: list[tuple[int, int]] = []
        for position in order:
            key, event = keys[position], events[position]
            if out_keys and out_keys[-1] == key:
                if out[-1] == event:
                    self.stats.duplicates_dropped += 1
                else:
                    self.stats.invalid_event_nodes.setdefault(
                        node_id, f"two different events at block {key[0]} index {key[1]}"
                    )
                continue
            out.append(event)
            out_keys.append(key)
        return out, out_keys
