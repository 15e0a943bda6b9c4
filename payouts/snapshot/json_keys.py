"""Exact, strict JSON reading: integers of any size exact, and refused with their JSON path:
an object that names one key twice, a NaN or Infinity literal, an integer too long to read.

JSON parsers disagree on which of two equal keys wins, so a file that names one twice means
different months to different readers; the calculation must not pick one quietly. NaN and
Infinity are not JSON (RFC 8259), though Python's reader takes them. An integer longer than
Python converts (`sys.get_int_max_str_digits`, 4,300 digits) is far past every chain width;
it is refused naming its place rather than as a whole piece that is "not valid JSON"."""

from __future__ import annotations

import json
import sys


class StrictJsonError(ValueError):
    """A value refused at `path`; `problem` names it (and the node, when the value is in one)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


class DuplicateKey(StrictJsonError):
    def __init__(self, path: str, key: str, node: str = "") -> None:
        super().__init__(path, f"{node}the key {key!r} appears twice in one object")
        self.key = key


class _Twice(dict):
    """An object in which `key` appeared more than once (kept only to be found by the walk)."""

    key: str = ""


class _Constant:
    """A NaN, Infinity or -Infinity literal (kept only to be found by the walk)."""

    def __init__(self, text: str) -> None:
        self.text = text


class _LongInt:
    """An integer literal past the conversion limit (kept only to be found by the walk)."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))


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


def _owner(value: dict, outer: str) -> str:
    """ "node N: " for an object that is a node's (its `node_id`, or its `node`'s)."""
    node_id = value.get("node_id")
    if type(node_id) is not int:
        node = value.get("node")
        node_id = node.get("node_id") if isinstance(node, dict) else None
    return f"node {node_id}: " if type(node_id) is int else outer


def _first_problem(value: object, path: str, node: str = "") -> StrictJsonError | None:
    if isinstance(value, _Constant):
        return StrictJsonError(path, f"{node}{value.text} is not a JSON number (JSON has no NaN or Infinity)")
    if isinstance(value, _LongInt):
        limit = sys.get_int_max_str_digits()
        return StrictJsonError(
            path, f"{node}an integer of {value.digits:,} digits is too long to read (at most {limit:,} digits)"
        )
    if isinstance(value, dict):
        node = _owner(value, node)
        if isinstance(value, _Twice):
            return DuplicateKey(f"{path}.{value.key}", value.key, node)
        for key, item in value.items():
            found = _first_problem(item, f"{path}.{key}", node)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_problem(item, f"{path}[{index}]", node)
            if found is not None:
                return found
    return None


def _long_int(text: str) -> int | _LongInt:
    limit = sys.get_int_max_str_digits()
    if limit and len(text.lstrip("-")) > limit:
        return _LongInt(text)
    return int(text)


def marking_decoder() -> json.JSONDecoder:
    """A decoder that reads integers too long to convert, and NaN and Infinity, as marks for
    `marked_problem` to name (a piece that did not parse is read item by item with it)."""
    return json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_Constant, parse_int=_long_int)


def marked_problem(value: object, path: str) -> StrictJsonError | None:
    """The first repeated key, NaN or Infinity, or integer too long in a value read by
    `marking_decoder`."""
    return _first_problem(value, path)


def loads_once_per_key(data: bytes | str, path: str) -> object:
    """`json.loads` of UTF-8 text (integers of any size exact), refusing an object that names a
    key twice, NaN and Infinity, and an integer too long to convert.

    Raises StrictJsonError (DuplicateKey for a repeated key) with the JSON path under `path`;
    ValueError (or RecursionError) for text that is not JSON."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    odd = False

    def pairs(items: list[tuple[str, object]]) -> dict:
        nonlocal odd
        document = _pairs(items)
        odd = odd or isinstance(document, _Twice)
        return document

    def constant(literal: str) -> _Constant:
        nonlocal odd
        odd = True
        return _Constant(literal)

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        # an integer past the conversion limit: read again, the long integers kept as marks
        try:
            marked = marking_decoder().decode(text)
        except (ValueError, RecursionError):
            raise exc from None
        found = _first_problem(marked, path)
        if found is not None:
            raise found from None
        raise
    if odd:
        found = _first_problem(value, path)
        if found is not None:
            raise found
    return value
