"""How a refused snapshot is described: the error naming the file, the JSON path and the problem,
and the wording of a value or a validation error in it."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from payouts.snapshot.schema import FORMAT_TAG

#: UTF-8's, then UTF-16's and UTF-32's byte order marks
BYTE_ORDER_MARKS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
#: RFC 8259 lets a reader ignore a byte order mark, but a mark says someone's editor re-saved
#: the frozen inputs: such a file is refused rather than read as something it may not be.
BOM_PROBLEM = (
    "starts with a byte order mark; a snapshot is UTF-8 without one (RFC 8259): "
    "freeze it again, or remove the mark (the file's SHA-256 changes)"
)


class SnapshotError(ValueError):
    """A snapshot file that is refused; names the file, the JSON path and the problem."""

    def __init__(self, file: str | Path, json_path: str, problem: str) -> None:
        self.file = str(file)
        self.json_path = json_path
        self.problem = problem
        super().__init__(f"{self.file}: {json_path}: {problem}")


class EventsNotGrouped(Exception):
    """The uptime reports of a node are not contiguous: read again with buffered=True."""


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_path(loc: tuple) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def header_error(path: Path, exc: ValidationError, tag: str = FORMAT_TAG, prefix: str = "") -> SnapshotError:
    """The first validation error of a header (or a `/2` node line) in the SPEC's words."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    kind = error["type"]
    lead = f"{prefix}: " if prefix else ""
    if kind == "missing":
        return SnapshotError(path, lead + _json_path(loc[:-1]), f"missing required key {loc[-1]!r}")
    if kind == "extra_forbidden":
        return SnapshotError(path, lead + _json_path(loc), f"unknown key {loc[-1]!r}")
    problem = error["msg"][0].lower() + error["msg"][1:]
    if kind == "literal_error" and loc == ("format",):
        problem = f"expected the format tag {tag!r}"
    return SnapshotError(path, lead + _json_path(loc), f"{problem}, got {describe(error.get('input'))}")
