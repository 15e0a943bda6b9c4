"""Each node-month's uptime and power events for the status site, read from the run's frozen
snapshot.

The ledger keeps each receipt's measured uptime, not the reports behind it; the frozen snapshot
the run was calculated from has them. A snapshot is used only when its SHA-256 is the one the
run records: any other file (changed, replaced, a different month) could tell a story the
payout did not follow, so that month's lists say "unavailable" instead.

Reading a month's snapshot and noting every report takes seconds, and the site is published
after every step of every run; the lists are a pure function of the snapshot's bytes and this
module's FORMAT, so each run's lists are kept in the cache folder under the snapshot's SHA-256
and read from there on later publishes.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog
from sqlmodel import Session, col, select

from payouts.calculation.node_events import snapshot_node_events
from payouts.files import write_atomic
from payouts.ledger.kinds import RunKind
from payouts.ledger.models import Run
from payouts.ledger.states import LIVE_RUN_STATUSES
from payouts.periods import Period
from payouts.snapshot.load import DEFAULT_MAX_DECOMPRESSED_BYTES, SnapshotError, load_snapshot

log = structlog.get_logger(__name__)

#: the cached lists' shape; a change to it or to the machine's notes needs a new number
FORMAT = 1


@dataclass(frozen=True)
class EventSource:
    """Where runs' frozen snapshots are kept, and where their event lists are cached."""

    frozen_dir: Path
    cache_dir: Path | None = None
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES


@dataclass(frozen=True)
class MonthEvents:
    """One period's event lists (node id -> list as JSON), or why there are none
    (`unavailable`). Kept encoded: every month's lists are held while the site is written, and
    a node's few hundred bytes of JSON are a tenth of the same list as Python objects."""

    nodes: dict[int, bytes]
    unavailable: str = ""

    def node(self, node_id: int) -> dict | None:
        encoded = self.nodes.get(node_id)
        return None if encoded is None else orjson.loads(encoded)


def site_events(session: Session, source: EventSource) -> dict[str, MonthEvents]:
    """Period label -> its event lists, for each period with a live monthly run."""
    statement = (
        select(Run)
        .where(col(Run.status).in_(LIVE_RUN_STATUSES), Run.kind == RunKind.MONTHLY)
        .order_by(col(Run.period_offset))
    )
    return {Period(run.period_offset).label: run_events(run, source) for run in session.exec(statement)}


def run_events(run: Run, source: EventSource) -> MonthEvents:
    """The run's event lists from its cache or its frozen snapshot, verified by SHA-256."""
    sha256 = run.snapshot_sha256
    cache = source.cache_dir / f"{sha256}.json.gz" if source.cache_dir is not None else None
    if cache is not None and cache.is_file():
        cached = _read_cache(cache, sha256)
        if cached is not None:
            return MonthEvents({node_id: orjson.dumps(events) for node_id, events in cached.items()})
    name = run.snapshot_name
    if not name or Path(name).name != name:
        return _unavailable(run, "the run does not name its snapshot file")
    path = source.frozen_dir / name
    if not path.is_file():
        return _unavailable(run, f"its snapshot {name} is not in the frozen folder")
    try:
        snapshot = load_snapshot(path, max_decompressed_bytes=source.max_decompressed_bytes)
        if snapshot.sha256 != sha256:
            return _unavailable(run, f"the frozen {name} is not the snapshot the run was calculated from")
        if snapshot.header.period_offset != run.period_offset:
            return _unavailable(run, f"the frozen {name} is for another period")
        nodes = snapshot_node_events(snapshot)
    except (SnapshotError, OSError) as exc:
        # the reason is published: the file's name only, the details (with paths) in the log
        log.warning("site.node_events.unreadable", run_id=run.id, error=str(exc))
        return _unavailable(run, f"its snapshot {name} cannot be read")
    if cache is not None:
        document = {"format": FORMAT, "snapshot_sha256": sha256, "nodes": nodes}
        write_atomic(cache, gzip.compress(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS), compresslevel=6))
    return MonthEvents({node_id: orjson.dumps(events) for node_id, events in nodes.items()})


def _read_cache(path: Path, sha256: str) -> dict[int, dict] | None:
    try:
        document = orjson.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, orjson.JSONDecodeError):
        return None  # a damaged cache is made again
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("snapshot_sha256") != sha256:
        return None
    return {int(node_id): events for node_id, events in document["nodes"].items()}


def _unavailable(run: Run, why: str) -> MonthEvents:
    log.warning("site.node_events.unavailable", run_id=run.id, period=Period(run.period_offset).label, why=why)
    return MonthEvents({}, unavailable=why)
