"""A `/2` node line's event columns as int64 numpy columns, read from the line's bytes in one pass.

The writer puts the events last, as five arrays of plain integers:
`...,"events":{"height":[..],"index":[..],"timestamp":[..],"kind":[..],"value":[..]}}`. When a
line has exactly that shape, `split_node_line` returns the rest of the line (the node record,
parsed as JSON by the caller) and the five columns, parsed straight from the bytes by numpy. The
integer grammar is checked on the bytes: only digits and single commas, every number non-empty
and without a leading zero. numpy saturates a number past int64 at 2^63-1: such a value is wide
(2^62 and above), so `columns_from_table` leaves the line to the checked reader, which reads
every value exactly. Anything else (spaces, signs, fractions, exponents, another key order) returns None:
the caller then parses the whole line as JSON and reads the events with every rule, as before.

`columns_from_table` takes the common case, narrow values in chain order, as whole columns;
`table_from_lists` builds the same columns from JSON lists (every value exactly an int).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from payouts.calculation.columns import EventColumns
from payouts.snapshot.schema import EVENT_UPTIME, NARROW_EVENT_LIMIT, U32_MAX

Int64s = npt.NDArray[np.int64]
#: rows height, index, timestamp, kind, value (a 5 x events int64 array)
Table = Int64s

_EVENTS_KEY = b',"events":{"height":['
_BETWEEN = (b'],"index":[', b'],"timestamp":[', b'],"kind":[', b'],"value":[')
_CLOSE = b"]}}"
_DIGITS_AND_COMMAS = b"0123456789,"
_TRAILING_SPACE = b" \t\r\n"
_EMPTY: Int64s = np.zeros(0, dtype=np.int64)
_I64_MAX = 2**63 - 1
#: 10 .. 10^18: a value's digits are one more than the powers of ten at or below it
_POWERS_OF_TEN = np.array([10**power for power in range(1, 19)], dtype=np.int64)


def split_node_line(line: bytes) -> tuple[bytes, Table] | None:
    """(the line without its events, as a JSON object's bytes; the event columns), or None when
    the line is not in the writer's plain shape (the caller reads it as JSON then)."""
    start = line.rfind(_EVENTS_KEY)
    if start <= 1:
        return None
    end = len(line.rstrip(_TRAILING_SPACE))
    if not line.startswith(_CLOSE, end - len(_CLOSE)):
        return None
    position = start + len(_EVENTS_KEY)
    texts: list[bytes] = []
    for between in _BETWEEN:
        stop = line.find(between, position)
        if stop < 0:
            return None
        texts.append(line[position:stop])
        position = stop + len(between)
    texts.append(line[position : end - len(_CLOSE)])
    commas = texts[0].count(b",")
    if not all(text.count(b",") == commas for text in texts[1:]):
        return None  # columns of different lengths (or an empty one): the JSON reader names it
    if not texts[0]:
        if any(texts):
            return None
        table: Table = np.zeros((5, 0), dtype=np.int64)
    else:
        # the five columns as one text: one pass of checks and one numpy parse for the line
        values = _integers(b",".join(texts), 5 * commas + 4)
        if values is None:
            return None
        table = values.reshape(5, commas + 1)
    # the record before the events, closed: a JSON object only when the events were its last member
    return line[:start] + b"}", table


def _integers(text: bytes, commas: int) -> Int64s | None:
    """The comma-separated JSON integers of `text` (digits and its `commas` commas only) as
    int64, or None when the text is anything else. Values past int64 come out saturated (wide:
    refused later)."""
    if not text:
        return None
    if text.translate(None, _DIGITS_AND_COMMAS):
        return None
    # an empty entry (",,", or a comma first) stops numpy's parse (an error), a comma last
    # gives one value fewer than entries: either way the text is refused
    try:
        values = np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:
        return None
    if values.size != commas + 1:
        return None
    # no leading zero: a number written in digits is at least as long as its shortest form, and
    # as long only without a leading zero ("05", "00"), so the digits written add up to the
    # shortest forms' exactly when no number has one. (A saturated value's written length is
    # unknown: such a text is checked on its bytes.)
    if int(values.max()) == _I64_MAX:
        return values if _no_leading_zero(text, values) else None
    shortest = values.size + int(np.searchsorted(_POWERS_OF_TEN, values, side="right").sum())
    return values if shortest == len(text) - commas else None


def _no_leading_zero(text: bytes, values: Int64s) -> bool:
    """A number after a comma (or first) starting with 0 is exactly 0, so the text's ",0" starts
    are as many as its zero values, and no zero is written "00..."."""
    zeros_written = text.count(b",0") + (text[0] == 48)
    return not (b",00" in text or text.startswith(b"00") or zeros_written != int(np.count_nonzero(values == 0)))


def table_from_lists(heights: list, indexes: list, stamps: list, kinds: list, values: list) -> Table | None:
    """The five JSON lists as int64 columns when every value is exactly an int (not bool, not
    float, not str) within int64; None otherwise."""
    count = len(heights)
    together = heights + indexes + stamps + kinds + values
    # exactly int: the set of the values' types, in C
    if count and set(map(type, together)) != _INTEGERS_ONLY:
        return None
    try:
        return np.fromiter(together, dtype=np.int64, count=5 * count).reshape(5, count)
    except OverflowError:  # past i64: not narrow
        return None


_INTEGERS_ONLY = {int}


def columns_from_table(table: Table, start_height: int, end_height: int, last_height: int) -> EventColumns | None:
    """The common case as whole columns: every value a narrow integer, events in chain order, no
    two at one place. None when anything is unusual (the checked reader then reads the line)."""
    if not table.shape[1]:
        return EventColumns(_EMPTY, _EMPTY, _EMPTY, 0)
    lows: list[int] = table.min(axis=1).tolist()
    highs: list[int] = table.max(axis=1).tolist()
    if not (
        min(lows) >= 0
        and highs[0] <= U32_MAX
        and highs[1] <= U32_MAX
        and highs[2] < NARROW_EVENT_LIMIT
        and highs[3] <= EVENT_UPTIME
        and highs[4] < NARROW_EVENT_LIMIT
    ):
        return None
    height, index, stamp, kind, value = table
    if bool(((kind != EVENT_UPTIME) & (value > 1)).any()):
        return None
    read = (height >= start_height) & (height <= last_height)
    if not bool(read.all()):
        height, index, stamp, kind, value = height[read], index[read], stamp[read], kind[read], value[read]
    if height.size > 1:
        step = np.diff(height)
        if not bool(((step > 0) | ((step == 0) & (np.diff(index) > 0))).all()):
            return None  # out of order, or the same place twice
    split = int(np.searchsorted(height, end_height, side="right"))
    return EventColumns(stamp, kind, value, split)
