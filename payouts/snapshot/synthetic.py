"""A realistic synthetic grid month in `tfgrid-snapshot/1` or `/2` form, for demos, tests and
benchmarks. `/2` puts every event in a block of a synthetic chain with 6-second blocks (the
first block stamped at or after the event's time).

Deterministic: the same arguments give a byte-identical file (each node draws from its own
seeded stream; no clock, no os.urandom). Streaming: nodes are written one by one, so memory
stays flat for 30,000 nodes x 1,100 reports. Events are grouped by node and sorted by time,
power events before uptime events in the file, as builders must write them.
"""

from __future__ import annotations

import gzip
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from stellar_sdk import StrKey

from payouts.periods import FIRST_PERIOD_START_TS, POST_PERIOD_WINDOW_S, Period
from payouts.snapshot.format2_writer import Format2Writer
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME

GIB = 2**30
REPORT_INTERVAL_S = 2400  # nodes report every 40 minutes
HOUR = 3600
DAY = 24 * HOUR
BLOCK_TIME_S = 6
#: the synthetic chain's block h is stamped GENESIS_TS + 6 h
GENESIS_TS = FIRST_PERIOD_START_TS - 10 * DAY

POLICIES = [
    {
        "id": 1,
        "name": "DIY",
        "cu": 2400,
        "su": 1000,
        "nu": 30,
        "ipv4": 5,
        "minimal_uptime": 95,
        "immutable": False,
        "default": True,
        "node_certification": "Diy",
        "farm_certification": "NotCertified",
    },
    {
        "id": 2,
        "name": "Certified",
        "cu": 3000,
        "su": 1250,
        "nu": 38,
        "ipv4": 6,
        "minimal_uptime": 95,
        "immutable": False,
        "default": True,
        "node_certification": "Certified",
        "farm_certification": "NotCertified",
    },
    # a custom policy: paid with the reference's quirk (no uptime scaling)
    {
        "id": 7,
        "name": "Partner",
        "cu": 2600,
        "su": 1100,
        "nu": 30,
        "ipv4": 5,
        "minimal_uptime": 95,
        "immutable": True,
        "default": False,
        "node_certification": "Diy",
        "farm_certification": "NotCertified",
    },
]
_FARM_NAMES = ["Freefarm", 'Ferme d\'été, "Nord"', "Grid & Co", "北京农场", "=SUM(A1)", "<b>farm</b>"]


@dataclass(frozen=True)
class SyntheticSummary:
    path: Path
    nodes: int
    farms: int
    uptime_events: int
    power_events: int
    bytes_written: int


@dataclass
class _NodePlan:
    """What happens to a node this month; reports are drawn from it in a second pass."""

    node_id: int
    behaviour: str
    boot_ts: int
    first_report_ts: int
    offline: list[tuple[int, int]] = field(default_factory=list)  # (down_ts, boot_ts) gaps
    power_events: list[dict] = field(default_factory=list)
    power_at_start: dict | None = None


def _node_rng(seed: int, node_id: int, stream: str) -> random.Random:
    return random.Random(f"tfgrid-synthetic:{seed}:{node_id}:{stream}")


def _pick_behaviour(rng: random.Random) -> str:
    roll = rng.random()
    for behaviour, share in (
        ("silent", 0.02),
        ("below_sla", 0.05),
        ("too_high", 0.02),
        ("clock_skew", 0.005),
        ("farmerbot", 0.08),
    ):
        if roll < share:
            return behaviour
        roll -= share
    return "steady"


def _plan(seed: int, node_id: int, period: Period) -> _NodePlan:
    rng = _node_rng(seed, node_id, "plan")
    start, end = period.start_ts, period.end_ts
    behaviour = _pick_behaviour(rng)
    plan = _NodePlan(
        node_id,
        behaviour,
        boot_ts=start - rng.randint(HOUR, 60 * DAY),
        first_report_ts=start + rng.randint(1, REPORT_INTERVAL_S),
    )
    # ordinary life: a reboot or two, sometimes an outage of a few hours
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        down = rng.randint(start + DAY, end - DAY)
        plan.offline.append((down, down + rng.randint(5 * 60, 20 * 60)))
    if rng.random() < 0.15:
        down = rng.randint(start + DAY, end - 2 * DAY)
        plan.offline.append((down, down + rng.randint(2 * HOUR, 12 * HOUR)))
    if behaviour == "below_sla":
        down = rng.randint(start + DAY, end - 7 * DAY)
        plan.offline.append((down, down + rng.randint(2 * DAY, 5 * DAY)))
    if behaviour == "farmerbot":
        late = rng.random() < 0.2  # sometimes a node boots too late after the wake request
        t = start + rng.randint(2 * HOUR, DAY)
        if rng.random() < 0.3:
            # asleep at the period start, woken at START
            plan.power_at_start = {
                "node_id": node_id,
                "state": "Down",
                "down_since": start - rng.randint(HOUR, 10 * HOUR),
                "target": "Up",
            }
            boot = start + rng.randint(120, 900)
            plan.boot_ts = boot
            plan.first_report_ts = boot + rng.randint(60, 300)
            plan.power_events.append({"node_id": node_id, "timestamp": boot - 30, "kind": "state", "value": "Up"})
        while t < end - DAY:
            sleep_ts = t
            wake_ts = sleep_ts + rng.randint(4 * HOUR, 20 * HOUR)
            boot_delay = rng.randint(40 * 60, 60 * 60) if late and rng.random() < 0.5 else rng.randint(60, 600)
            plan.power_events += [
                {"node_id": node_id, "timestamp": sleep_ts, "kind": "target", "value": "Down"},
                {"node_id": node_id, "timestamp": sleep_ts + 60, "kind": "state", "value": "Down"},
                {"node_id": node_id, "timestamp": wake_ts, "kind": "target", "value": "Up"},
                {"node_id": node_id, "timestamp": wake_ts + boot_delay - 30, "kind": "state", "value": "Up"},
            ]
            plan.offline.append((sleep_ts + 60, wake_ts + boot_delay))
            t = wake_ts + boot_delay + rng.randint(DAY, 4 * DAY)
    plan.offline.sort()
    plan.power_events.sort(key=lambda e: e["timestamp"])
    return plan


def _reports(seed: int, plan: _NodePlan, period: Period) -> list[tuple[int, int]]:
    """(timestamp, uptime) reports from the first report to 27 h after the period end."""
    if plan.behaviour == "silent":
        return []
    rng = _node_rng(seed, plan.node_id, "reports")
    last_ts = period.end_ts + POST_PERIOD_WINDOW_S
    reports: list[tuple[int, int]] = []
    boot = plan.boot_ts
    t = plan.first_report_ts
    gaps = iter(plan.offline)
    gap = next(gaps, None)
    jump_at = rng.randint(100, 900) if plan.behaviour == "too_high" else -1
    drift_s = 0
    while t <= last_ts:
        if gap is not None and t >= gap[0]:
            # offline until the reboot; the first report comes a few minutes after boot
            boot = gap[1]
            t = max(t, boot + rng.randint(60, 300))
            gap = next(gaps, None)
            while gap is not None and gap[0] <= t:
                boot, gap = gap[1], next(gaps, None)
            continue
        uptime = t - boot + rng.randint(-3, 3)
        if plan.behaviour == "clock_skew":
            drift_s += 4
            uptime += drift_s
        if len(reports) == jump_at:
            uptime += rng.randint(5_000, 50_000)
        reports.append((t, max(uptime, 0)))
        t += REPORT_INTERVAL_S + rng.randint(-20, 20)
    return reports


def _farm_address(rng: random.Random, farm_id: int, farm_addresses: list[str] | None) -> str:
    roll = rng.random()
    if roll < 0.03:
        return ""  # no payout address set
    if roll < 0.04:
        return "GINVALIDADDRESS" + str(farm_id)
    if farm_addresses:
        return farm_addresses[(farm_id - 1) % len(farm_addresses)]
    return StrKey.encode_ed25519_public_key(rng.randbytes(32))


def _header(
    nodes: int, farms: int, period: Period, seed: int, network: str, farm_addresses: list[str] | None
) -> tuple[dict, list[dict]]:
    rng = random.Random(f"tfgrid-synthetic:{seed}:grid")
    farm_rows, twins = [], []
    for farm_id in range(1, farms + 1):
        name = f"{rng.choice(_FARM_NAMES)} {farm_id}" if farm_id % 7 == 0 else f"farm-{farm_id}"
        farm_rows.append(
            {
                "farm_id": farm_id,
                "name": name,
                "twin_id": farm_id,
                "certification": "Gold" if rng.random() < 0.05 else "NotCertified",
                "stellar_address": _farm_address(rng, farm_id, farm_addresses),
            }
        )
        twins.append({"twin_id": farm_id, "relay": "relay.grid.tf", "pk": rng.randbytes(33).hex()})
    node_rows = []
    for node_id in range(1, nodes + 1):
        twin_id = farms + node_id
        roll = rng.random()
        relay = None if roll < 0.005 else "relay.grid.tf"
        pk = rng.randbytes(32).hex() if 0.005 <= roll < 0.01 else rng.randbytes(33).hex()
        twins.append({"twin_id": twin_id, "relay": relay, "pk": pk})
        certified = rng.random() < 0.15
        policy_id = 2 if certified and rng.random() < 0.7 else 1
        if rng.random() < 0.01:
            policy_id = 7
        used = rng.random() < 0.3
        cru = rng.choice((2, 4, 8, 16, 32, 64))
        mru = rng.choice((8, 16, 32, 64, 128, 256, 512)) * GIB
        sru = rng.choice((256, 512, 1024, 2048, 4096, 8192)) * GIB
        hru = rng.choice((0, 0, 2048, 4096, 8192, 16384, 32768)) * GIB
        length = period.end_ts - period.start_ts
        node_rows.append(
            {
                "node_id": node_id,
                "farm_id": rng.randint(1, farms),
                "twin_id": twin_id,
                "resources": {"cru": cru, "mru": mru, "sru": sru, "hru": hru},
                "certification": "Certified" if certified else "Diy",
                "farming_policy_id": policy_id,
                "connection_price": 80,
                "virtualized": rng.random() < 0.01,
                "created": period.start_ts - rng.randint(DAY, 900 * DAY),
                "consumption": {
                    "nru": rng.randint(0, 500) * GIB if used else 0,
                    "ip_seconds": rng.choice((0, 1, 2)) * length if used else 0,
                    "cru_seconds": rng.randint(0, cru) * length if used else 0,
                    "mru_seconds": rng.randint(0, min(mru // GIB, 1024)) * GIB * length if used else 0,
                    "sru_seconds": rng.randint(0, min(sru // GIB, 1024)) * GIB * length if used else 0,
                    "hru_seconds": 0,
                },
            }
        )
    header = {
        "format": "tfgrid-snapshot/1",
        "network": network,
        "period_offset": period.offset,
        "notes": [f"synthetic grid: {nodes} nodes, seed {seed}"],
        "source": {"builder": "synthetic", "seed": seed, "nodes": nodes},
        "farming_policies": POLICIES,
        "farms": farm_rows,
        "twins": twins,
        "nodes": node_rows,
    }
    return header, node_rows


def write_synthetic_snapshot(
    path: str | Path,
    *,
    nodes: int,
    period: Period,
    seed: int = 0,
    network: str = "dev",
    farm_addresses: list[str] | None = None,
    farms: int | None = None,
    progress: Callable[[int], None] | None = None,
    snapshot_format: int = 1,
) -> SyntheticSummary:
    """Write a synthetic month (`snapshot_format` 1 or 2); `.gz` paths are gzipped
    deterministically."""
    if nodes < 1:
        raise ValueError("a synthetic grid needs at least one node")
    if snapshot_format not in (1, 2):
        raise ValueError(f"snapshot format 1 or 2, not {snapshot_format}")
    path = Path(path)
    farms = farms or max(1, nodes // 10)
    header, _ = _header(nodes, farms, period, seed, network, farm_addresses)
    plans = [_plan(seed, node_id, period) for node_id in range(1, nodes + 1)]
    if snapshot_format == 2:
        return _write_format_2(path, header, plans, seed, period, farms, progress)
    header["power_at_start"] = [p.power_at_start for p in plans if p.power_at_start]

    raw = path.open("wb")
    out: io.BufferedIOBase = (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
        if path.name.endswith(".gz")
        else raw
    )
    written = uptime_count = power_count = 0
    try:

        def emit(data: bytes) -> None:
            nonlocal written
            out.write(data)
            written += len(data)

        emit(orjson.dumps(header)[:-1])
        emit(b',"power_events":[')
        first = True
        for plan in plans:
            for event in plan.power_events:
                emit((b"" if first else b",") + orjson.dumps(event))
                first = False
                power_count += 1
        emit(b'],"uptime_events":[')
        first = True
        for done, plan in enumerate(plans, 1):
            reports = _reports(seed, plan, period)
            if reports:
                node_id = plan.node_id
                text = ",".join(f'{{"node_id":{node_id},"timestamp":{t},"uptime":{u}}}' for t, u in reports)
                emit(((",") if not first else "").encode() + text.encode())
                first = False
                uptime_count += len(reports)
            if progress is not None and done % 100 == 0:
                progress(done)
        emit(b"]}")
    finally:
        out.close()
        if out is not raw:
            raw.close()
    if progress is not None:
        progress(nodes)
    return SyntheticSummary(path, nodes, farms, uptime_count, power_count, written)


def block_at_or_after(ts: int) -> int:
    """The synthetic chain's first block stamped at or after `ts`."""
    return -(-(ts - GENESIS_TS) // BLOCK_TIME_S)


def block_timestamp(height: int) -> int:
    return GENESIS_TS + BLOCK_TIME_S * height


def edge_blocks(period: Period) -> dict:
    """The first blocks stamped after the period's start and after its end (minting's edges)."""
    start = (period.start_ts - GENESIS_TS) // BLOCK_TIME_S + 1
    end = (period.end_ts - GENESIS_TS) // BLOCK_TIME_S + 1
    return {
        "start": {"height": start, "timestamp": block_timestamp(start)},
        "end": {"height": end, "timestamp": block_timestamp(end)},
    }


_POWER_KIND = {"target": EVENT_POWER_TARGET, "state": EVENT_POWER_STATE}


def chain_events(node_id: int, timed: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int, int]]:
    """(height, index, timestamp, kind, value) for events given as (timestamp, kind, value) in
    processing order: each goes into the first block at or after its time; a node's events of
    one block take consecutive indexes (node-specific, so two nodes never share one)."""
    out = []
    last_height, k = -1, 0
    for ts, kind, value in timed:
        height = block_at_or_after(ts)
        k = k + 1 if height == last_height else 0
        last_height = height
        out.append((height, node_id * 8 + k, block_timestamp(height), kind, value))
    return out


def _write_format_2(
    path: Path,
    header: dict,
    plans: list[_NodePlan],
    seed: int,
    period: Period,
    farms: int,
    progress: Callable[[int], None] | None,
) -> SyntheticSummary:
    node_rows = header.pop("nodes")
    header = {**header, "format": "tfgrid-snapshot/2", "blocks": edge_blocks(period)}
    header["notes"] = [*header["notes"], f"synthetic chain: {BLOCK_TIME_S}-second blocks"]
    uptime_count = power_count = 0
    with Format2Writer(path, header) as writer:
        for done, (plan, record) in enumerate(zip(plans, node_rows, strict=True), 1):
            timed = [(e["timestamp"], _POWER_KIND[e["kind"]], int(e["value"] == "Up")) for e in plan.power_events]
            timed += [(t, EVENT_UPTIME, u) for t, u in _reports(seed, plan, period)]
            timed.sort(key=lambda e: (e[0], e[1] == EVENT_UPTIME))  # a power event first in a second
            power_count += len(plan.power_events)
            uptime_count += len(timed) - len(plan.power_events)
            at_start = plan.power_at_start
            writer.node(
                record,
                {k: v for k, v in at_start.items() if k != "node_id"} if at_start else None,
                chain_events(plan.node_id, timed),
            )
            if progress is not None and done % 100 == 0:
                progress(done)
    if progress is not None:
        progress(len(plans))
    return SyntheticSummary(path, len(plans), farms, uptime_count, power_count, writer.bytes_written)
