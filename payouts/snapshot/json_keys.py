"""JSON objects that name one key twice, refused with the key's path.

JSON parsers disagree on which of two equal keys wins, so a file that names one twice means
different months to different readers; the calculation must not pick one quietly."""

from __future__ import annotations

import json


class _Twice(dict):
    """An object in which `key` appeared more than once (kept only to be found by the walk)."""

    key: str = ""


class DuplicateKey(ValueError):
    def __init__(self, path: str, key: str) -> None:
        super().__init__(f"key {key!r} appears twice in one object")
        self.path = path
        self.key = key


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    document = dict(pairs)
    if len(document) == len(pairs):
        return document
    seen: set[str] = set()
    twice = _Twice(document)
    for key, _ in pairs:
        if key in seen:
            twice.key = key
            break
        seen.add(key)
    return twice


def _first_twice(value: object, path: str) -> DuplicateKey | None:
    if isinstance(value, _Twice):
        return DuplicateKey(f"{path}.{value.key}", value.key)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_twice(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_twice(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def loads_once_per_key(data: bytes | str, path: str) -> object:
    """`json.loads` (integers of any size exact), refusing an object that names a key twice.

    Raises DuplicateKey with the JSON path of the repeated key under `path`."""
    twice_seen = False

    def pairs(items: list[tuple[str, object]]) -> dict:
        nonlocal twice_seen
        document = _pairs(items)
        twice_seen = twice_seen or isinstance(document, _Twice)
        return document

    value = json.loads(data, object_pairs_hook=pairs)
    if twice_seen:
        found = _first_twice(value, path)
        if found is not None:
            raise found
    return value
