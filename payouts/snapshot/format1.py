"""Load and validate `tfgrid-snapshot/1` files (JSON, or gzip when the name ends in `.gz`).

Two layers of validation (shared spec, section 3):

- Structure and JSON types: a file that is not JSON, has the wrong format tag, lacks a required
  key, has an unknown key or a value of the wrong JSON type is refused with a `SnapshotError`
  naming the file, the JSON path and the problem. Nothing is written before the whole file has
  been read, so a refused file leaves the ledger untouched.
- Odd but well-typed values pass here; the calculation zeroes only the node concerned.

A month of today's grid holds millions of uptime reports, so the event arrays are never turned
into one big Python structure. The file's bytes are kept, the header is parsed from them, and
the events are decoded in chunks of a few MB (orjson) and handed out node by node. Builders
write events grouped by node; a file that is not is still read correctly, by buffering
(`iter_node_events(buffered=True)`), at the cost of memory.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path

import orjson
from pydantic import ValidationError

from payouts.calculation.uptime import Window
from payouts.snapshot.errors import EventsNotGrouped, SnapshotError, describe, header_error
from payouts.snapshot.event_checks import (
    MAX_EVENT_INT,
    NARROW_EVENT_INT,
    POWER_KEYS,
    POWER_KINDS,
    POWER_VALUES,
    UPTIME_KEYS,
    event_field_problem,
    has_float,
    huge_int,
)
from payouts.snapshot.json_keys import (
    DuplicateKey,
    StrictJsonError,
    loads_once_per_key,
    marked_problem,
    marking_decoder,
)
from payouts.snapshot.json_scan import Scanner, line_col, ws_end
from payouts.snapshot.limits import read_bytes
from payouts.snapshot.loaded import EventStats, LoadedSnapshot
from payouts.snapshot.schema import (
    EVENT_ARRAY_KEYS,
    EVENT_UPTIME,
    FORMAT_TAG,
    REQUIRED_KEYS,
    U32_MAX,
    Event,
    SnapshotHeader,
)

_CHUNK_BYTES = 4 * 1024 * 1024
#: quote characters of one well-formed event: two per key, and a power event's two words. A
#: piece of events with any other count is checked exactly for a key written twice (readers
#: disagree on which one wins); a count over the bytes costs about 1 % of a load.
_EVENT_QUOTES = {"uptime_events": 2 * len(UPTIME_KEYS), "power_events": 2 * len(POWER_KEYS) + 4}
#: A cut that lands inside a string makes the chunk unparsable; try this many later cuts
#: before reporting the chunk as malformed.
_MAX_CUT_RETRIES = 64


class _Digest:
    """SHA-256 of a large buffer, computed on a thread: hashlib releases the GIL on big
    updates, so hashing overlaps with parsing and validating the header."""

    def __init__(self, data: bytes) -> None:
        self._hex: str | None = None
        self._thread = threading.Thread(target=self._run, args=(data,), daemon=True)
        self._thread.start()

    def _run(self, data: bytes) -> None:
        self._hex = hashlib.sha256(data).hexdigest()

    def result(self) -> str:
        self._thread.join()
        assert self._hex is not None
        return self._hex


class JsonSnapshot(LoadedSnapshot):
    """A validated `tfgrid-snapshot/1` header plus lazy, chunked access to its events."""

    def __init__(self, path: Path, data: bytes, header: SnapshotHeader, spans: dict, sha256: _Digest) -> None:
        self.path = path
        self._data = data
        self.header = header
        self._spans = spans
        self._sha256 = sha256
        self.size_bytes = len(data)
        self.stats = EventStats()
        self._node_ids = frozenset(node.node_id for node in header.nodes)
        #: the span of the event piece being read, and its exact parse once one was needed
        self._piece = (0, 0)
        self._exact_piece: tuple[tuple[int, int], list] | None = None
        #: `/1` has no blocks: a node asleep at the start has START as its implied wake request
        self.wake_at_start_ts: int | None = None

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the JSON bytes after gzip decompression."""
        return self._sha256.result()

    # -- event chunks ---------------------------------------------------------------------

    def _array_items(self, key: str) -> Iterator[tuple[int, list]]:
        """Yield (index of first item, items) for the event array `key`, a few MB at a time."""
        data = self._data
        start, end = self._spans[key]
        pos = ws_end(data, start + 1)
        close = end - 1  # position of the closing ']'
        index = 0
        while pos < close:
            cut = pos + _CHUNK_BYTES
            items = None
            for _attempt in range(_MAX_CUT_RETRIES):
                if cut >= close:
                    piece_end = close
                else:
                    brace = data.find(b"}", cut, close)
                    piece_end = close if brace < 0 else brace + 1
                items = self._parse_piece(data, pos, piece_end)
                if items is not None or piece_end == close:
                    break
                cut = piece_end  # the cut fell inside a string: try the next '}'
            if items is None:
                raise self._locate_error(key, index, pos, piece_end)
            self._piece = (pos, piece_end)
            if data.count(b'"', pos, piece_end) != _EVENT_QUOTES[key] * len(items):
                self._refuse_repeated_keys(key, index, pos, piece_end)
            yield index, items
            index += len(items)
            pos = ws_end(data, piece_end)
            if pos < close:
                if data[pos : pos + 1] != b",":
                    raise self._locate_error(key, index, pos, close)
                pos = ws_end(data, pos + 1)

    @staticmethod
    def _parse_piece(data: bytes, start: int, end: int, *, exact: bool = False) -> list | None:
        piece = bytearray(b"[")
        piece += data[start:end]
        piece += b"]"
        if not exact:
            try:
                return orjson.loads(piece)
            except orjson.JSONDecodeError:
                pass
        try:  # the standard library: every integer exact
            return json.loads(piece)
        except (ValueError, RecursionError):
            return None

    def _exact_item(self, items: list, item: object) -> object:
        """`item` parsed again exactly: orjson reads integers past 64 bits as floats, so a
        float where an integer belongs is read again with the standard library (the slow path
        only; the piece is parsed once and kept while its items are read)."""
        start, end = self._piece
        if self._exact_piece is None or self._exact_piece[0] != (start, end):
            self._exact_piece = ((start, end), self._parse_piece(self._data, start, end, exact=True) or [])
        exact = self._exact_piece[1]
        position = next(i for i, other in enumerate(items) if other is item)
        return exact[position] if position < len(exact) else item

    def _refuse_repeated_keys(self, key: str, index: int, start: int, end: int) -> None:
        """The exact check of a piece whose quote count is not its events' (a key written twice
        adds two); any other problem is named by the event checks."""
        try:
            loads_once_per_key(b"[" + self._data[start:end] + b"]", "$")
        except DuplicateKey as exc:
            position, rest = exc.path.removeprefix("$[").split("]", 1)
            raise SnapshotError(self.path, f"$.{key}[{index + int(position)}]{rest}", exc.problem) from None
        except (ValueError, RecursionError):
            return

    def _locate_error(self, key: str, index: int, start: int, end: int) -> SnapshotError:
        """Find the first bad item between start and end and describe it precisely."""
        text = self._data[start:end].decode("utf-8", errors="replace")
        decoder = marking_decoder()
        pos = 0
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text):
                problem = "not valid JSON (unterminated array, or a ']' inside a string)"
                return SnapshotError(self.path, f"$.{key}[{index}]", problem)
            try:
                marked, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                byte = start + len(text[: exc.pos].encode())
                problem = f"not valid JSON: {exc.msg} at {line_col(self._data, byte)}"
                return SnapshotError(self.path, f"$.{key}[{index}]", problem)
            except RecursionError:
                return SnapshotError(self.path, f"$.{key}[{index}]", "not valid JSON: nested too deeply")
            found = marked_problem(marked, f"$.{key}[{index}]")
            if found is not None:  # an integer too long to convert
                return SnapshotError(self.path, found.path, found.problem)
            index += 1

    def _bad_event(self, key: str, index: int, item: object) -> SnapshotError:
        path = f"$.{key}[{index}]"
        if not isinstance(item, dict):
            return SnapshotError(self.path, path, f"expected an object, got {describe(item)}")
        wanted = UPTIME_KEYS if key == "uptime_events" else POWER_KEYS
        for name in sorted(set(item) - wanted):
            return SnapshotError(self.path, f"{path}.{name}", f"unknown key {name!r}")
        for name in sorted(wanted - set(item)):
            return SnapshotError(self.path, path, f"missing required key {name!r}")
        for name in ("node_id", "timestamp", "uptime"):
            if name in item and type(item[name]) is not int:
                got = describe(item[name])
                return SnapshotError(self.path, f"{path}.{name}", f"expected an integer, got {got}")
        if key == "power_events":
            if item["kind"] not in POWER_KINDS:
                got = describe(item["kind"])
                return SnapshotError(self.path, f"{path}.kind", f'expected "target" or "state", got {got}')
            if item["value"] not in POWER_VALUES:
                got = describe(item["value"])
                return SnapshotError(self.path, f"{path}.value", f'expected "Up" or "Down", got {got}')
        return SnapshotError(self.path, path, "malformed event")

    def _invalid(self, node_id: int, why: str) -> None:
        self.stats.invalid_event_nodes.setdefault(node_id, why)

    def _wide_event(self, node_id: int, ts: int, uptime_s: int) -> bool:
        """An uptime report past the narrow range: kept (the node measured with wrapping
        arithmetic) when both values are u64, else the node is invalid. True when kept."""
        if 0 <= ts <= MAX_EVENT_INT and 0 <= uptime_s <= MAX_EVENT_INT:
            if uptime_s > NARROW_EVENT_INT:
                self.stats.wide_nodes.add(node_id)
            return True
        self._invalid(node_id, f"uptime_events: {event_field_problem(node_id, ts, uptime_s)}")
        return False

    # -- power events (few: read whole) ---------------------------------------------------

    def _power_by_node(self) -> dict[int, list[Event]]:
        by_node: dict[int, list[Event]] = {}
        stats = self.stats
        kinds, values = POWER_KINDS, POWER_VALUES
        for base, items in self._array_items("power_events"):
            for offset, item in enumerate(items):
                try:
                    if type(item) is not dict or item.keys() != POWER_KEYS:
                        raise KeyError
                    node_id, ts = item["node_id"], item["timestamp"]
                    kind, value = kinds[item["kind"]], values[item["value"]]
                    if type(node_id) is not int or type(ts) is not int:
                        exact = self._exact_item(items, item) if has_float(item) else item
                        if type(exact) is not dict:
                            raise KeyError
                        node_id, ts = huge_int(exact["node_id"]), huge_int(exact["timestamp"])
                except (KeyError, TypeError):
                    raise self._bad_event("power_events", base + offset, item) from None
                stats.power_events += 1
                if node_id not in self._node_ids:
                    stats.unknown_node_events += 1
                    if 0 <= node_id <= U32_MAX:  # no node has an id past the chain's u32
                        stats.unknown_node_ids.add(node_id)
                    continue
                if not 0 <= ts <= MAX_EVENT_INT:
                    self._invalid(
                        node_id, f"power_events[{base + offset}].timestamp: {event_field_problem(node_id, ts)}"
                    )
                    continue
                by_node.setdefault(node_id, []).append((ts, kind, value))
        for node_id, events in by_node.items():
            events.sort(key=itemgetter(0))  # stable: same-second events keep file order
            by_node[node_id] = self._dedupe(events)
        return by_node

    def _dedupe(self, events: list[Event]) -> list[Event]:
        """Drop exact duplicates (same timestamp, kind and value) from a time-sorted list."""
        out: list[Event] = []
        same_second: set[Event] = set()
        last_ts = None
        for event in events:
            if event[0] != last_ts:
                last_ts = event[0]
                same_second = {event}
                out.append(event)
            elif event in same_second:
                self.stats.duplicates_dropped += 1
            else:
                same_second.add(event)
                out.append(event)
        return out

    def _finish(self, events: list[Event], needs_sort: bool, has_ties: bool, power: list[Event] | None) -> list[Event]:
        if needs_sort:
            events.sort(key=itemgetter(0))
        if needs_sort or has_ties:
            events = self._dedupe(events)
        if power:
            events = power + events
            # a power event before an uptime report of the same second; stable otherwise
            events.sort(key=lambda e: (e[0], e[1] == EVENT_UPTIME))
        return events

    # -- node by node ---------------------------------------------------------------------

    def iter_node_events(self, *, buffered: bool = False) -> Iterator[tuple[int, list[Event]]]:
        """Yield (node_id, events) once per known node that has events, in processing order.

        Streaming (default) needs each node's uptime reports to be contiguous in the file and
        raises EventsNotGrouped otherwise; buffered=True reads everything first.
        """
        self.stats = EventStats()
        power = self._power_by_node()
        if buffered:
            yield from self._iter_buffered(power)
        else:
            yield from self._iter_streaming(power)

    def iter_node_windows(self, *, buffered: bool = False) -> Iterator[tuple[int, list[Event], Window | None]]:
        """(node_id, events, None): `/1` events are read by timestamp (the window is found from
        the period's bounds)."""
        for node_id, events in self.iter_node_events(buffered=buffered):
            yield node_id, events, None

    def _coerce_uptime(self, items: list, item: object, base: int) -> tuple[int, int, int]:
        """Slow path for a report that failed the fast checks: big integers pass as
        out-of-range values, anything else is refused with its JSON path."""
        try:
            if not isinstance(item, dict) or len(item) != 3:
                raise KeyError
            exact = self._exact_item(items, item) if has_float(item) else item
            if not isinstance(exact, dict):
                raise KeyError
            return (huge_int(exact["node_id"]), huge_int(exact["timestamp"]), huge_int(exact["uptime"]))
        except (KeyError, TypeError):
            index = base + next(i for i, other in enumerate(items) if other is item)
            raise self._bad_event("uptime_events", index, item) from None

    def _uptime_records(self) -> Iterator[tuple[int, int, int, int]]:
        """(index, node_id, timestamp, uptime_s) per uptime report, type-checked."""
        stats = self.stats
        for base, items in self._array_items("uptime_events"):
            stats.uptime_events += len(items)
            for offset, item in enumerate(items):
                yield (base + offset, *self._coerce_uptime(items, item, base))

    def _iter_streaming(self, power: dict[int, list[Event]]) -> Iterator[tuple[int, list[Event]]]:
        # One flat loop over the decoded chunks: this runs once per uptime report (millions
        # a month), so checks are inlined and anything unusual goes to the slow path.
        stats, node_ids = self.stats, self._node_ids
        seen: set[int] = set()
        current: int | None = None
        known = False
        events: list[Event] = []
        append = events.append
        needs_sort = has_ties = False
        last_ts = -1
        limit = NARROW_EVENT_INT
        for base, items in self._array_items("uptime_events"):
            stats.uptime_events += len(items)
            for item in items:
                try:
                    node_id = item["node_id"]
                    ts = item["timestamp"]
                    uptime_s = item["uptime"]
                    if type(ts) is not int or type(uptime_s) is not int or type(node_id) is not int or len(item) != 3:
                        raise TypeError
                except (KeyError, TypeError):
                    node_id, ts, uptime_s = self._coerce_uptime(items, item, base)
                if node_id != current:
                    if known and current is not None:
                        yield current, self._finish(events, needs_sort, has_ties, power.pop(current, None))
                    if node_id in seen:
                        raise EventsNotGrouped(f"uptime reports of node {node_id} are not contiguous")
                    seen.add(node_id)
                    current, known = node_id, node_id in node_ids
                    events = []
                    append = events.append
                    needs_sort = has_ties = False
                    last_ts = -1
                if not known:
                    stats.unknown_node_events += 1
                    if 0 <= node_id <= U32_MAX:  # no node has an id past the chain's u32
                        stats.unknown_node_ids.add(node_id)
                    continue
                if not (0 <= ts <= limit and 0 <= uptime_s <= limit) and not self._wide_event(node_id, ts, uptime_s):
                    continue
                if ts <= last_ts:
                    if ts < last_ts:
                        needs_sort = True
                    else:
                        has_ties = True
                last_ts = ts
                append((ts, EVENT_UPTIME, uptime_s))
        if known and current is not None:
            yield current, self._finish(events, needs_sort, has_ties, power.pop(current, None))
        for node_id in sorted(power):  # nodes with power events but no uptime report
            yield node_id, power[node_id]

    def _iter_buffered(self, power: dict[int, list[Event]]) -> Iterator[tuple[int, list[Event]]]:
        stats, node_ids = self.stats, self._node_ids
        by_node: dict[int, list[Event]] = {}
        for index, node_id, ts, uptime_s in self._uptime_records():
            if node_id not in node_ids:
                stats.unknown_node_events += 1
                if 0 <= node_id <= U32_MAX:  # no node has an id past the chain's u32
                    stats.unknown_node_ids.add(node_id)
                continue
            if not (0 <= ts <= NARROW_EVENT_INT and 0 <= uptime_s <= NARROW_EVENT_INT) and not self._wide_event(
                node_id, ts, uptime_s
            ):
                continue
            by_node.setdefault(node_id, []).append((ts, EVENT_UPTIME, uptime_s))
        for node_id in sorted(by_node.keys() | power.keys()):
            yield node_id, self._finish(by_node.get(node_id, []), True, True, power.get(node_id))


def load_snapshot_1(path: Path, *, max_decompressed_bytes: int) -> JsonSnapshot:
    """Read a `tfgrid-snapshot/1` file and validate its structure; events are checked as they
    are read. A file larger than `max_decompressed_bytes` once decompressed is refused.

    Raises SnapshotError naming the file, the JSON path and the problem.
    """
    data = read_bytes(path, max_decompressed_bytes)
    digest = _Digest(data)
    spans = Scanner(path, data).top_level()
    header: dict = {}
    for key, (start, end) in spans.items():
        if key in EVENT_ARRAY_KEYS:
            continue
        try:
            # the standard library keeps integers of any size exact (orjson turns huge ones
            # into floats), so an impossible resource reaches the calculation as an odd value
            header[key] = loads_once_per_key(data[start:end], f"$.{key}")
        except StrictJsonError as exc:
            raise SnapshotError(path, exc.path, exc.problem) from None
        except (ValueError, RecursionError) as exc:
            raise SnapshotError(path, f"$.{key}", f"not valid JSON: {exc}") from None
    if "format" in header and header["format"] != FORMAT_TAG:
        raise SnapshotError(
            path, "$.format", f"expected the format tag {FORMAT_TAG!r}, got {describe(header['format'])}"
        )
    for key in REQUIRED_KEYS:
        if key not in spans:
            raise SnapshotError(path, "$", f"missing required key {key!r}")
    try:
        model = SnapshotHeader.model_validate(header)
    except ValidationError as exc:
        raise header_error(path, exc) from None
    _one_start_state_per_node(path, model)
    return JsonSnapshot(path, data, model, spans, digest)


def _one_start_state_per_node(path: Path, model: SnapshotHeader) -> None:
    """Two `power_at_start` entries for one node give it two start states: which one is meant
    cannot be told, so the file is refused naming the node."""
    first: dict[int, int] = {}
    for index, entry in enumerate(model.power_at_start):
        earlier = first.setdefault(entry.node_id, index)
        if earlier != index:
            raise SnapshotError(
                path,
                f"$.power_at_start[{index}].node_id",
                f"node {entry.node_id} has a second start state (the first is $.power_at_start[{earlier}]); "
                "one entry per node",
            )
