"""Finding the top-level keys of a `/1` snapshot object and the byte range of each value,
without parsing the event arrays."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from payouts.snapshot.errors import BOM_PROBLEM, BYTE_ORDER_MARKS, SnapshotError, describe
from payouts.snapshot.schema import EVENT_ARRAY_KEYS, OPTIONAL_KEYS, REQUIRED_KEYS

_WS = re.compile(rb"[ \t\n\r]*")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SCALAR = re.compile(rb"[^,\]}\s]+")
_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)

_KNOWN_KEYS = frozenset(REQUIRED_KEYS) | frozenset(OPTIONAL_KEYS)


def ws_end(data: bytes, pos: int) -> int:
    """Position after the whitespace at pos (the pattern also matches the empty string)."""
    match = _WS.match(data, pos)
    return pos if match is None else match.end()


def line_col(data: bytes, pos: int) -> str:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return f"line {line} column {col}"


class Scanner:
    """Finds the top-level keys of the snapshot object and the byte range of each value."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.data = data

    def fail(self, json_path: str, problem: str, pos: int) -> SnapshotError:
        return SnapshotError(self.path, json_path, f"{problem} at {line_col(self.data, pos)} (byte {pos})")

    def skip_ws(self, pos: int) -> int:
        return ws_end(self.data, pos)

    def top_level(self) -> dict[str, tuple[int, int]]:
        data = self.data
        if data.startswith(BYTE_ORDER_MARKS):
            raise SnapshotError(self.path, "$", BOM_PROBLEM)
        pos = self.skip_ws(0)
        if pos >= len(data):
            raise SnapshotError(self.path, "$", "file is empty, expected a JSON object")
        if data[pos : pos + 1] != b"{":
            raise self.fail("$", "not valid JSON: expected a JSON object '{'", pos)
        pos = self.skip_ws(pos + 1)
        spans: dict[str, tuple[int, int]] = {}
        if data[pos : pos + 1] == b"}":
            return spans
        while True:
            match = _STRING.match(data, pos)
            if match is None:
                raise self.fail("$", "not valid JSON: expected a quoted key", pos)
            try:
                key = orjson.loads(match.group())
            except orjson.JSONDecodeError:
                raise self.fail("$", "not valid JSON: bad key string", pos) from None
            pos = self.skip_ws(match.end())
            if data[pos : pos + 1] != b":":
                raise self.fail(f"$.{key}", "not valid JSON: expected ':' after the key", pos)
            pos = self.skip_ws(pos + 1)
            if key in spans:
                raise self.fail(f"$.{key}", "key appears twice", pos)
            if key not in _KNOWN_KEYS:
                known = ", ".join(sorted(_KNOWN_KEYS))
                raise self.fail(f"$.{key}", f"unknown key {key!r} (known keys: {known})", pos)
            if key in EVENT_ARRAY_KEYS:
                end = self.event_array_end(key, pos)
            else:
                end = self.value_end(f"$.{key}", pos)
            spans[key] = (pos, end)
            pos = self.skip_ws(end)
            sep = data[pos : pos + 1]
            if sep == b"}":
                rest = self.skip_ws(pos + 1)
                if rest != len(data):
                    raise self.fail("$", "not valid JSON: extra data after the object", rest)
                return spans
            if sep != b",":
                raise self.fail(f"$.{key}", "not valid JSON: expected ',' or '}'", pos)
            pos = self.skip_ws(pos + 1)

    def value_end(self, json_path: str, pos: int) -> int:
        """End (exclusive) of the JSON value starting at pos; brackets balanced, strings skipped."""
        data = self.data
        first = data[pos : pos + 1]
        if first == b'"':
            match = _STRING.match(data, pos)
            if match is None:
                raise self.fail(json_path, "not valid JSON: unterminated string", pos)
            return match.end()
        if first not in (b"[", b"{"):
            match = _SCALAR.match(data, pos)
            if match is None:
                raise self.fail(json_path, "not valid JSON: expected a value", pos)
            return match.end()
        depth = 0
        for token in _STRUCTURE.finditer(data, pos):
            char = data[token.start()]
            if char in b"[{":
                depth += 1
            elif char in b"]}":
                depth -= 1
                if depth == 0:
                    return token.end()
        raise self.fail(json_path, "not valid JSON: unterminated array or object", pos)

    def event_array_end(self, key: str, pos: int) -> int:
        """End of an event array: its first ']' (events hold no arrays and no ']' in strings;
        a file where they do fails when the events are parsed)."""
        data = self.data
        if data[pos : pos + 1] != b"[":
            try:
                end = self.value_end(f"$.{key}", pos)
                shown = describe(orjson.loads(data[pos:end]))
            except (SnapshotError, orjson.JSONDecodeError):
                shown = "something else"
            raise SnapshotError(self.path, f"$.{key}", f"expected an array, got {shown}")
        end = data.find(b"]", pos)
        if end < 0:
            raise self.fail(f"$.{key}", "not valid JSON: unterminated array", pos)
        after = self.skip_ws(end + 1)
        if data[after : after + 1] == b"," and data[self.skip_ws(after + 1) : self.skip_ws(after + 1) + 1] == b'"':
            return end + 1
        if data[after : after + 1] == b"}":
            return end + 1
        # not followed by the next key or the end of the object: something inside the array
        # holds a ']' (a nested array, a string); find the real end the slow, exact way
        return self.value_end(f"$.{key}", pos)
