"""Checks of a `/1` event's values: JSON types and the chain's integer widths."""

from __future__ import annotations

from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, NARROW_EVENT_LIMIT, U64_MAX

#: Timestamps and uptimes are u64 on the chain. Below `NARROW_EVENT_INT` no arithmetic of
#: the uptime machine can wrap; a node with a larger uptime is measured with minting's
#: wrapping arithmetic (`EventStats.wide_nodes`); past u64 the node is `invalid_record`.
MAX_EVENT_INT = U64_MAX
NARROW_EVENT_INT = NARROW_EVENT_LIMIT - 1

UPTIME_KEYS = frozenset(("node_id", "timestamp", "uptime"))
POWER_KEYS = frozenset(("node_id", "timestamp", "kind", "value"))
POWER_KINDS = {"target": EVENT_POWER_TARGET, "state": EVENT_POWER_STATE}
POWER_VALUES = {"Up": True, "Down": False}


def huge_int(value: object) -> int:
    """An event's integer; any other JSON type is refused. (Pieces holding integers orjson
    cannot read exactly are parsed with the standard library, so no float stands for one.)"""
    if type(value) is int:
        return value
    raise TypeError(value)


def has_float(item: object) -> bool:
    return isinstance(item, dict) and any(type(value) is float for value in item.values())


def event_field_problem(node_id: int, ts: int, uptime_s: int | None = None) -> str:
    """Words for an event value outside the chain's u64."""
    if not 0 <= ts <= MAX_EVENT_INT:
        return f"node {node_id}: an event's timestamp {ts} is out of range (the chain's u64 is 0..{U64_MAX})"
    return f"node {node_id}: an uptime report's uptime {uptime_s} is out of range (the chain's u64 is 0..{U64_MAX})"
