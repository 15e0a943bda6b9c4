"""Streaming writers: CSV, JSON and JSON Lines, one entry at a time.

Each writer consumes an iterator and writes every row as soon as it has it, so an export of a
million entries needs the memory of one. CSV cells that a spreadsheet would run as a formula
(starting with = + - @, a tab or a carriage return) get a leading single quote; quoting of
commas, quotes and newlines is the csv module's.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TextIO

import orjson

from payouts.export.rows import FIELDS

FORMATS = ("csv", "json", "jsonl")
EXPORT_FORMAT = "tft-payouts-export/1"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A cell safe to open in a spreadsheet: text that would be a formula is quoted with '."""
    # exact types, not isinstance: a str or int subclass (an enum) is written as its str()
    if type(value) is str:
        return "'" + value if value.startswith(_FORMULA_START) else value
    if type(value) is int:
        return value
    if value is None:
        return ""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is list:
        return csv_cell(" ".join(str(item) for item in value))
    return csv_cell(str(value))


def write_csv(entries: Iterable[dict], out: TextIO, fields: Sequence[str] = FIELDS) -> int:
    """Header, then one line per entry. `out` is a text stream opened with newline=""."""
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(fields)
    count = 0
    cell = csv_cell
    for entry in entries:
        # inline fast path for the common cells (plain text, integers); the rest via csv_cell
        row = []
        for name in fields:
            value = entry.get(name)
            if type(value) is str:
                if value.startswith(_FORMULA_START):
                    value = "'" + value
            elif type(value) is not int:
                value = cell(value)
            row.append(value)
        writer.writerow(row)
        count += 1
    return count


def dumps_json(document: object) -> str:
    """Compact UTF-8 JSON; exact for integers of any size."""
    try:
        return orjson.dumps(document).decode()
    except TypeError:
        # an integer past 64 bits (a run's or a farm's total): exact, in the same compact shape
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=_plain)


def _plain(value: object) -> str:
    if isinstance(value, datetime):  # as orjson writes it
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def write_json(header: dict, runs: list[dict], entries: Iterable[dict], out: TextIO) -> int:
    """One JSON document: the header's keys, `runs` (manifests and signatures), then `entries`
    written one by one into the array."""
    out.write("{")
    out.writelines(f"{dumps_json(key)}:{dumps_json(value)}," for key, value in header.items())
    out.write(f'"runs":{dumps_json(runs)},"entries":[\n')
    count = 0
    for entry in entries:
        if count:
            out.write(",\n")
        out.write(dumps_json(entry))
        count += 1
    out.write("\n]}\n")
    return count


def write_jsonl(header: dict, runs: list[dict], entries: Iterable[dict], out: TextIO) -> int:
    """One JSON object a line: a `header` record, one `run` record per run, then `entry` records."""
    out.write(dumps_json({"record": "header", **header}) + "\n")
    out.writelines(dumps_json({"record": "run", **run}) + "\n" for run in runs)
    count = 0
    for entry in entries:
        out.write(dumps_json({"record": "entry", **entry}) + "\n")
        count += 1
    return count


def write_export(fmt: str, header: dict, runs: list[dict], entries: Iterable[dict], out: TextIO) -> int:
    if fmt == "csv":
        return write_csv(entries, out)
    if fmt == "json":
        return write_json(header, runs, entries, out)
    if fmt == "jsonl":
        return write_jsonl(header, runs, entries, out)
    raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
