"""The `tfgrid-snapshot/2` format (see FORMAT.md): how a file is recognised, the models of its
header line and node lines, and the checks of the header's edge blocks."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from payouts.periods import Period
from payouts.snapshot.errors import SnapshotError
from payouts.snapshot.schema import (
    EVENT_POWER_STATE,
    EVENT_POWER_TARGET,
    EVENT_UPTIME,
    U32_MAX,
    U64_MAX,
    Farm,
    FarmingPolicy,
    Network,
    Node,
    PowerWord,
    Twin,
)

#: minting reads 27 hours of blocks after the end block: 600 blocks an hour
POST_PERIOD_BLOCKS = 27 * 600
_FORMAT_2_START = re.compile(
    rb'\A(?:\xef\xbb\xbf)?[ \t\r\n]*\{[ \t\r\n]*"format"[ \t\r\n]*:[ \t\r\n]*"tfgrid-snapshot/2"'
)
KINDS = (EVENT_POWER_TARGET, EVENT_POWER_STATE, EVENT_UPTIME)
EVENT_COLUMNS = ("height", "index", "timestamp", "kind", "value")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Block(_Strict):
    height: int
    timestamp: int


class Blocks(_Strict):
    """The first block after the period's start time and the first block after its end time."""

    start: Block
    end: Block


class Header2(_Strict):
    format: Literal["tfgrid-snapshot/2"]
    network: Network
    period_offset: int
    blocks: Blocks
    farming_policies: list[FarmingPolicy]
    farms: list[Farm]
    twins: list[Twin]
    notes: list[str] = []
    source: dict = {}


class NodePower(_Strict):
    state: PowerWord
    down_since: int | None
    target: PowerWord


class NodeLine(_Strict):
    node: Node
    power_at_start: NodePower | None
    events: dict


def is_format_2(path: Path) -> bool:
    """Whether the file starts like a `/2` header line (the format key comes first)."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                head = stream.read(256)
        else:
            with path.open("rb") as plain:
                head = plain.read(256)
    except (OSError, EOFError, zlib.error):
        return False  # the /1 reader reports the problem
    return _FORMAT_2_START.match(head) is not None


def check_blocks(path: Path, header: Header2) -> None:
    period = Period(header.period_offset)
    start, end = header.blocks.start, header.blocks.end
    for name, block in (("start", start), ("end", end)):
        if not 0 <= block.height <= U32_MAX:
            raise SnapshotError(path, f"line 1: $.blocks.{name}.height", f"{block.height} is outside the chain's u32")
        if not 0 <= block.timestamp <= U64_MAX:
            raise SnapshotError(
                path, f"line 1: $.blocks.{name}.timestamp", f"{block.timestamp} is outside the chain's u64"
            )
    if not start.timestamp > period.start_ts:
        raise SnapshotError(
            path,
            "line 1: $.blocks.start.timestamp",
            f"the first block after the period's start ({period.start_ts}) must be stamped after it, "
            f"got {start.timestamp}",
        )
    if not end.timestamp > period.end_ts:
        raise SnapshotError(
            path,
            "line 1: $.blocks.end.timestamp",
            f"the first block after the period's end ({period.end_ts}) must be stamped after it, got {end.timestamp}",
        )
    if not (start.height < end.height and start.timestamp < end.timestamp):
        raise SnapshotError(path, "line 1: $.blocks", "the end block must come after the start block")
