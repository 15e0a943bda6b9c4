"""Writing a `tfgrid-snapshot/1` file in one atomic step: a temp file, then os.replace."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import orjson


def write_format_1(out_path: Path, header: dict, node_ids: list[int], uptime: dict, power: list[list]) -> int:
    """Write the snapshot to a temp file and move it into place: never a half-written file."""
    temp = out_path.with_name(f"{out_path.name}.tmp-{os.getpid()}")
    written = 0
    raw = temp.open("wb")
    out = (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        if out_path.name.endswith(".gz")
        else raw
    )
    try:

        def emit(data: bytes) -> None:
            nonlocal written
            out.write(data)
            written += len(data)

        # the standard library keeps any integer exact (an odd, huge resource value included)
        emit(json.dumps(header, ensure_ascii=False, separators=(",", ":"))[:-1].encode())
        emit(b',"power_events":[')
        first = True
        for node_id, ts, kind, value in power:
            emit(b"" if first else b",")
            emit(orjson.dumps({"node_id": node_id, "timestamp": ts, "kind": kind, "value": value}))
            first = False
        emit(b'],"uptime_events":[')
        first = True
        for node_id in node_ids:  # grouped by node, each node's reports in chain order
            stamps, values = uptime[node_id]
            if not stamps:
                continue
            text = ",".join(
                f'{{"node_id":{node_id},"timestamp":{t},"uptime":{u}}}' for t, u in zip(stamps, values, strict=True)
            )
            emit((text if first else "," + text).encode())
            first = False
        emit(b"]}")
        if out is not raw:
            out.close()
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        os.replace(temp, out_path)
    except BaseException:
        raw.close()
        temp.unlink(missing_ok=True)
        raise
    return written
