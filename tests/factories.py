"""Builders of snapshot documents for tests: the SPEC's worked example as the default node."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import orjson

from payouts.periods import Period

GIB = 2**30
EXAMPLE_ADDRESS = "GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAWHF"
POLICY_DIY = {
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
}
POLICY_CERTIFIED = {
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
}


def node(node_id: int = 1234, *, farm_id: int = 42, twin_id: int = 5678, **overrides) -> dict:
    record = {
        "node_id": node_id,
        "farm_id": farm_id,
        "twin_id": twin_id,
        "resources": {"cru": 4, "mru": 16 * GIB, "sru": 512 * GIB, "hru": 4096 * GIB},
        "certification": "Diy",
        "farming_policy_id": 1,
        "connection_price": 80,
        "virtualized": False,
        "created": 1735000000,
        "consumption": {
            "nru": 0,
            "ip_seconds": 0,
            "cru_seconds": 0,
            "mru_seconds": 0,
            "sru_seconds": 0,
            "hru_seconds": 0,
        },
    }
    record.update(overrides)
    return record


def full_uptime_reports(node_id: int, period: Period, *, every_s: int = 2400, boot_ts: int | None = None) -> list[dict]:
    """Reports every `every_s` from just after the start to just after the end (full uptime)."""
    boot_ts = period.start_ts - 600 if boot_ts is None else boot_ts
    reports = []
    ts = period.start_ts + 60
    while ts <= period.end_ts + every_s:
        reports.append({"node_id": node_id, "timestamp": ts, "uptime": ts - boot_ts})
        ts += every_s
    return reports


def snapshot(
    *,
    period_offset: int = 81,
    nodes: list[dict] | None = None,
    uptime_events: list[dict] | None = None,
    farms: list[dict] | None = None,
    twins: list[dict] | None = None,
    **extra,
) -> dict:
    period = Period(period_offset)
    nodes = [node()] if nodes is None else nodes
    document = {
        "format": "tfgrid-snapshot/1",
        "network": "dev",
        "period_offset": period_offset,
        "farming_policies": [copy.deepcopy(POLICY_DIY), copy.deepcopy(POLICY_CERTIFIED)],
        "farms": farms
        if farms is not None
        else [
            {
                "farm_id": 42,
                "name": "my_farm",
                "twin_id": 7,
                "certification": "NotCertified",
                "stellar_address": EXAMPLE_ADDRESS,
            },
        ],
        "twins": twins
        if twins is not None
        else [
            {"twin_id": 7, "relay": "relay.grid.tf", "pk": None},
            {"twin_id": 5678, "relay": "relay.grid.tf", "pk": None},
        ],
        "nodes": nodes,
        "power_events": [],
        "power_at_start": [],
        "uptime_events": uptime_events
        if uptime_events is not None
        else [event for n in nodes for event in full_uptime_reports(n["node_id"], period)],
    }
    document.update(extra)
    return document


def write(path: Path, document: dict) -> Path:
    try:
        data = orjson.dumps(document)
    except TypeError:  # integers past 64 bits: the standard library writes them exactly
        data = json.dumps(document, separators=(",", ":")).encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
