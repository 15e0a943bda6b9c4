"""Writing `tfgrid-snapshot/2` files: the header line, then one line per node."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import IO, Self

import orjson

from payouts.snapshot.format2 import EVENT_COLUMNS
from payouts.snapshot.schema import FORMAT_2_TAG


class Format2Writer:
    """Writes a `/2` file: the header line, then one line per node (deterministic gzip when the
    name ends in .gz: no name, no time in the gzip header)."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        self.bytes_written = 0
        self._raw = path.open("wb")
        self._out: IO[bytes] = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=6, mtime=0)  # type: ignore[assignment]
            if path.name.endswith(".gz")
            else self._raw
        )
        self._emit({"format": FORMAT_2_TAG, **{k: v for k, v in header.items() if k != "format"}})

    def _emit(self, document: dict) -> None:
        try:
            data = orjson.dumps(document)
        except TypeError:  # integers past 64 bits: the standard library writes them exactly
            data = json.dumps(document, separators=(",", ":")).encode()
        self._out.write(data + b"\n")
        self.bytes_written += len(data) + 1

    def node(self, record: dict, power_at_start: dict | None, events: list[tuple[int, int, int, int, int]]) -> None:
        """One node line; `events` are (height, index, timestamp, kind, value) in chain order
        (value 1/0 for a power event's Up/Down)."""
        columns: dict[str, list[int]] = {name: [] for name in EVENT_COLUMNS}
        for event in events:
            for name, value in zip(EVENT_COLUMNS, event, strict=True):
                columns[name].append(value)
        self._emit({"node": record, "power_at_start": power_at_start, "events": columns})

    def close(self) -> None:
        self._out.close()
        if self._out is not self._raw:
            self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
