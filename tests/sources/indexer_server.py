"""A loopback stand-in for TFChain's GraphQL indexer (Subsquid) and the grid proxy's `/stats`.

A real HTTP server on 127.0.0.1, in a thread (tests) or its own process (the benchmark:
`python -m tests.sources.indexer_server --snapshot FILE`). It serves a grid translated from a
`tfgrid-snapshot/1` file into indexer records shaped like tfchain_graphql's schema (Node with
resourcesTotal and power, Farm, Twin, FarmingPolicy, UptimeEvent, PowerTargetReport,
PowerStateReport, NodeContract with resourcesUsed, ContractBillReport, NruConsumption), with
BigInt fields as strings and event ids that sort in chain order.

It parses the GraphQL it receives (a small subset: aliases, arguments with variables,
literals, lists and objects, nested selections) and answers `where` filters (`_eq`, `_in`,
`_gt`, `_gte`, `_lt`, `_lte`), `orderBy`, `limit`/`offset`, `<entity>Connection { totalCount }`
and `squidStatus { height }`. Unknown fields are refused like a real server would.

Faults for the tests: a burst of 5xx, slow answers, failing every request after N, an
indexer that has only processed the chain up to some time, and malformed records (tests edit
`data.tables[...]` rows or `data.uptime_overrides`).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import socket
import sys
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import orjson

from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.schema import EVENT_POWER_TARGET, EVENT_UPTIME

GENESIS_TS = 1_500_000_000
BLOCK_S = 6
DELETED_NODE_ID = 9_000_000  # reports from a node the indexer no longer has


class GraphQLError(Exception):
    pass


# -- a small GraphQL parser ----------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,]+|\#[^\n]*)
  | (?P<punct>\.\.\.|[!$():=@\[\]{}|])
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*")
""",
    re.VERBOSE,
)


@dataclass
class Var:
    name: str


@dataclass
class Field:
    alias: str
    name: str
    args: dict
    selection: list[Field] | None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise GraphQLError(f"Syntax Error: unexpected character {text[pos]!r} at {pos}")
            if match.lastgroup != "skip":
                self.tokens.append((match.lastgroup, match.group()))
            pos = match.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, text: str | None = None) -> str:
        token = self.peek()
        if token is None or (text is not None and token[1] != text):
            raise GraphQLError(f"Syntax Error: expected {text or 'a token'}, got {token and token[1]!r}")
        self.i += 1
        return token[1]

    def document(self) -> list[Field]:
        if self.peek() and self.peek()[1] == "query":
            self.take()
            if self.peek() and self.peek()[0] == "name":
                self.take()
            if self.peek() and self.peek()[1] == "(":
                depth = 0
                while True:  # variable definitions: types are not checked here
                    text = self.take()
                    depth += text == "("
                    depth -= text == ")"
                    if depth == 0:
                        break
        selection = self.selection_set()
        if self.peek() is not None:
            raise GraphQLError("Syntax Error: unexpected text after the query")
        return selection

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() and self.peek()[1] != "}":
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        name = self.take()
        alias = name
        if self.peek() and self.peek()[1] == ":":
            self.take(":")
            name = self.take()
        args = {}
        if self.peek() and self.peek()[1] == "(":
            self.take("(")
            while self.peek()[1] != ")":
                key = self.take()
                self.take(":")
                args[key] = self.value()
            self.take(")")
        selection = self.selection_set() if self.peek() and self.peek()[1] == "{" else None
        return Field(alias, name, args, selection)

    def value(self) -> object:
        kind, text = self.peek()
        if text == "$":
            self.take()
            return Var(self.take())
        if text == "[":
            self.take()
            items = []
            while self.peek()[1] != "]":
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            self.take()
            obj = {}
            while self.peek()[1] != "}":
                key = self.take()
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        self.take()
        if kind == "number":
            return json.loads(text)
        if kind == "string":
            return json.loads(text)
        return {"true": True, "false": False, "null": None}.get(text, text)  # enum values as str


def _substitute(value: object, variables: dict) -> object:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


# -- data ----------------------------------------------------------------------------------

#: Fields each entity has (where filters and selections are checked against them).
SCHEMA = {
    "farmingPolicies": {
        "id",
        "gridVersion",
        "farmingPolicyID",
        "name",
        "cu",
        "su",
        "nu",
        "ipv4",
        "minimalUptime",
        "policyCreated",
        "policyEnd",
        "immutable",
        "default",
        "nodeCertification",
        "farmCertification",
    },
    "farms": {
        "id",
        "gridVersion",
        "farmID",
        "name",
        "twinID",
        "pricingPolicyID",
        "certification",
        "stellarAddress",
        "dedicatedFarm",
    },
    "twins": {"id", "gridVersion", "twinID", "accountID", "relay", "publicKey"},
    "nodes": {
        "id",
        "gridVersion",
        "nodeID",
        "farmID",
        "twinID",
        "country",
        "city",
        "uptime",
        "created",
        "farmingPolicyId",
        "certification",
        "secure",
        "virtualized",
        "serialNumber",
        "createdAt",
        "updatedAt",
        "connectionPrice",
        "power",
        "dedicated",
        "extraFee",
        "resourcesTotal",
    },
    "uptimeEvents": {"id", "nodeID", "uptime", "timestamp"},
    "powerTargetReports": {"id", "farmID", "nodeID", "newPowerTarget", "block", "timestamp"},
    "powerStateReports": {"id", "farmID", "nodeID", "newPowerState", "block", "timestamp"},
    "nodeContracts": {
        "id",
        "gridVersion",
        "contractID",
        "twinID",
        "nodeID",
        "deploymentData",
        "deploymentHash",
        "numberOfPublicIPs",
        "state",
        "resourcesUsed",
        "createdAt",
        "solutionProviderID",
    },
    "contractBillReports": {"id", "contractID", "discountReceived", "amountBilled", "timestamp"},
    "nruConsumptions": {"id", "contractID", "timestamp", "window", "nru"},
}
_OPS = ("eq", "in", "gt", "gte", "lt", "lte", "not_eq")


#: Blocks missed by the served chain: [after height, seconds without a block], or empty (none).
#: Set with `missed_blocks()` for a test; ids are computed when served, so it must stay set
#: while the server answers.
_MISSED: list[int] = []


@contextmanager
def missed_blocks(after_ts: int, seconds: int) -> Iterator[None]:
    """A chain where no block was produced for `seconds` after the block at `after_ts`: every
    later block is stamped `seconds` later than block h at GENESIS_TS + 6 h would be."""
    _MISSED[:] = [block_of(after_ts), seconds]
    try:
        yield
    finally:
        _MISSED.clear()


def block_of(ts: int) -> int:
    """The served chain's block of an event at `ts`: the first block stamped at or after it
    (block h is stamped GENESIS_TS + 6 h), so every event of a block is at or before its stamp."""
    height = -(-(ts - GENESIS_TS) // BLOCK_S)
    if _MISSED and height > _MISSED[0]:
        height = max(_MISSED[0] + 1, -(-(ts - GENESIS_TS - _MISSED[1]) // BLOCK_S))
    return height


def block_stamp(height: int) -> int:
    missed = _MISSED[1] if _MISSED and height > _MISSED[0] else 0
    return GENESIS_TS + BLOCK_S * height + missed


def _event_id(ts: int, seq: int) -> str:
    # Subsquid event ids: zero-padded block height, then the event's index: they sort in chain order
    # (the FireSquid layout the indexer uses: height, index in the block, hash prefix)
    return f"{block_of(ts):010d}-{seq % 10**6:06d}-{seq * 2654435761 % 16**5:05x}"


def _comparable(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)  # BigInt strings compare as numbers
    return value


def _matches(row: dict, where: dict, entity: str) -> bool:
    for key, wanted in where.items():
        name, _, op = key.partition("_")
        if op == "not_eq" or key.endswith("_not_eq"):
            name, op = key[: -len("_not_eq")], "not_eq"
        if name not in SCHEMA[entity] or op not in _OPS:
            raise GraphQLError(f"Field '{key}' is not defined by type '{entity}WhereInput'")
        # ids are strings (a zero-padded block height first), compared as strings
        comparable = (lambda v: v) if name == "id" else _comparable
        value = comparable(row.get(name))
        if op == "in":
            if value not in {comparable(w) for w in wanted}:
                return False
            continue
        wanted = comparable(wanted)
        if value is None:
            return False
        if op == "eq" and value != wanted or op == "not_eq" and value == wanted:
            return False
        if op == "gt" and not value > wanted or op == "gte" and not value >= wanted:
            return False
        if op == "lt" and not value < wanted or op == "lte" and not value <= wanted:
            return False
    return True


def _order_keys(order: object, entity: str) -> list[tuple[str, bool]]:
    items = order if isinstance(order, list) else [order] if order else []
    keys = []
    for item in items:
        name, _, direction = str(item).rpartition("_")
        if name not in SCHEMA[entity] or direction not in ("ASC", "DESC"):
            raise GraphQLError(f"Value '{item}' does not exist in '{entity}OrderByInput' enum")
        keys.append((name, direction == "DESC"))
    return keys


def _sort(rows: list, keys: list[tuple[str, bool]], get) -> list:
    for name, descending in reversed(keys):
        # PostgreSQL puts NULLs after every value in ascending order
        rows.sort(key=lambda row: (get(row, name) is None, _comparable(get(row, name))), reverse=descending)
    return rows


def _project(row: dict, selection: list[Field] | None, entity: str | None = None) -> object:
    if selection is None or row is None:
        return row
    out = {}
    for item in selection:
        if entity is not None and item.name not in SCHEMA[entity]:
            raise GraphQLError(f"Cannot query field '{item.name}' on type '{entity}'")
        if item.name not in row:
            continue  # a malformed record: the field is missing from the answer
        value = row[item.name]
        out[item.alias] = _project(value, item.selection) if isinstance(value, dict) else value
    return out


class UptimeTable:
    """Uptime reports per node in compact arrays (a 3,000-node month is 3.4 million)."""

    def __init__(self) -> None:
        self.by_node: dict[int, tuple[array, array, array]] = {}
        self._by_id: list[tuple[str, int, int]] | None = None
        self._ids: list[str] = []
        self._index_lock = threading.Lock()

    def by_id(self) -> list[tuple[str, int, int]]:
        """(event id, node id, index) of every report in id order (chain order), built once.

        Under a lock, `_ids` set before `_by_id`: requests are answered in parallel threads (a
        client that timed out asks again while the first answer is still being computed), and
        a thread that saw `_by_id` set before `_ids` was filled answered "no report"."""
        with self._index_lock:
            if self._by_id is None:
                by_id = sorted(
                    (_event_id(ts, seq), node_id, i)
                    for node_id, (tss, _, seqs) in self.by_node.items()
                    for i, (ts, seq) in enumerate(zip(tss, seqs, strict=True))
                )
                self._ids = [entry[0] for entry in by_id]
                self._by_id = by_id
            return self._by_id

    def _id_ranges(
        self, where: dict, cap_ts: int, take: int | None = None, descending: bool = False
    ) -> list[tuple[int, int]]:
        """Refs of the reports an id-bounded filter selects, in id order (the first `take` of
        them in that order or in reverse: a page reads no further than its own end)."""
        index = self.by_id()
        ids = self._ids
        lo = 0
        if "id_gte" in where:
            lo = max(lo, bisect_left(ids, where["id_gte"]))
        if "id_gt" in where:
            lo = max(lo, bisect_right(ids, where["id_gt"]))
        hi = len(ids)
        if "id_lt" in where:
            hi = min(hi, bisect_left(ids, where["id_lt"]))
        if "id_lte" in where:
            hi = min(hi, bisect_right(ids, where["id_lte"]))
        rest = {k: v for k, v in where.items() if not k.startswith("id_")}
        low = int(rest.pop("timestamp_gte", -(2**62)))
        high = min(int(rest.pop("timestamp_lte", 2**62)), cap_ts)
        nodes = {int(n) for n in rest.pop("nodeID_in")} if "nodeID_in" in rest else None
        if rest:
            raise GraphQLError(f"Field '{min(rest)}' is not supported by this test server")
        refs: list[tuple[int, int]] = []
        if take == 0:
            return refs
        for position in range(hi - 1, lo - 1, -1) if descending else range(lo, hi):
            _, node_id, i = index[position]
            ts = self.by_node[node_id][0][i]
            if low <= ts <= high and (nodes is None or node_id in nodes):
                refs.append((node_id, i))
                if len(refs) == take:
                    break
        return refs

    def copy(self) -> UptimeTable:
        """An independent table with the same reports (and the same id index, which is only
        ever replaced, never changed in place)."""
        clone = UptimeTable()
        clone.by_node = {
            node_id: (array("q", ts), array("q", up), array("q", seq))
            for node_id, (ts, up, seq) in self.by_node.items()
        }
        with self._index_lock:
            clone._ids, clone._by_id = self._ids, self._by_id
        return clone

    def add(self, node_id: int, ts: int, uptime: int, seq: int) -> None:
        columns = self.by_node.setdefault(node_id, (array("q"), array("q"), array("q")))
        self._by_id = None
        columns[0].append(ts)
        columns[1].append(uptime)
        columns[2].append(seq)

    def count(self) -> int:
        return sum(len(c[0]) for c in self.by_node.values())

    def _ranges(self, where: dict, cap_ts: int):
        unknown = set(where) - {
            "nodeID_in",
            "nodeID_eq",
            "timestamp_gte",
            "timestamp_gt",
            "timestamp_lte",
            "timestamp_lt",
        }
        if unknown:
            raise GraphQLError(f"Field '{min(unknown)}' is not supported by this test server")
        if "nodeID_in" in where:
            nodes = sorted({int(n) for n in where["nodeID_in"]} & self.by_node.keys())
        elif "nodeID_eq" in where:
            nodes = [int(where["nodeID_eq"])] if int(where["nodeID_eq"]) in self.by_node else []
        else:
            nodes = sorted(self.by_node)
        low = int(where.get("timestamp_gte", -(2**62)))
        if "timestamp_gt" in where:
            low = max(low, int(where["timestamp_gt"]) + 1)
        high = min(int(where.get("timestamp_lte", 2**62)), cap_ts)
        if "timestamp_lt" in where:
            high = min(high, int(where["timestamp_lt"]) - 1)
        for node_id in nodes:
            ts = self.by_node[node_id][0]
            lo, hi = bisect_left(ts, low), bisect_right(ts, high)
            if lo < hi:
                yield node_id, lo, hi

    def select(self, where: dict, keys: list, cap_ts: int, offset: int, limit: int | None) -> list:
        if any(key.startswith("id_") for key in where):
            if keys not in ([("id", False)], [("id", True)]):
                raise GraphQLError("this test server answers id-bounded uptime queries in id order only")
            refs = self._id_ranges(where, cap_ts, None if limit is None else offset + limit, keys[0][1])
            return refs[offset:]
        natural = [name for name, desc in keys if not desc] == [name for name, _ in keys] and [
            name for name, _ in keys
        ] in (["nodeID", "timestamp", "id"], ["nodeID", "timestamp"], ["nodeID"])
        if natural:  # storage order: skip to the page without touching the rows before it
            refs = []
            skip = offset
            for node_id, lo, hi in self._ranges(where, cap_ts):
                if skip >= hi - lo:
                    skip -= hi - lo
                    continue
                first, skip = lo + skip, 0
                last = hi if limit is None else min(hi, first + limit - len(refs))
                refs.extend((node_id, i) for i in range(first, last))
                if limit is not None and len(refs) >= limit:
                    break
            return refs
        # any other order: each node's candidates at its ends, then a real sort
        take = None if limit is None else offset + limit
        refs = []
        for node_id, lo, hi in self._ranges(where, cap_ts):
            index = range(lo, hi)
            if take is not None:
                index = range(max(lo, hi - take), hi) if keys and keys[0][1] else range(lo, min(hi, lo + take))
            refs.extend((node_id, i) for i in index)
        _sort(refs, keys, self._get)
        return refs[offset : None if limit is None else offset + limit]

    def _get(self, ref: tuple[int, int], name: str) -> object:
        node_id, i = ref
        ts, up, seq = self.by_node[node_id]
        return {"nodeID": node_id, "timestamp": ts[i], "uptime": up[i], "id": _event_id(ts[i], seq[i])}[name]

    def row(self, ref: tuple[int, int]) -> dict:
        node_id, i = ref
        ts, up, seq = self.by_node[node_id]
        return {"id": _event_id(ts[i], seq[i]), "nodeID": node_id, "timestamp": str(ts[i]), "uptime": str(up[i])}

    def total(self, where: dict, cap_ts: int) -> int:
        if any(key.startswith("id_") for key in where):
            return len(self._id_ranges(where, cap_ts))
        return sum(hi - lo for _, lo, hi in self._ranges(where, cap_ts))

    def newest_ts(self) -> int:
        return max((c[0][-1] for c in self.by_node.values() if c[0]), default=0)


def policy_file_for(snapshot_path: str | Path, out: Path) -> Path:
    """The operator's policy file for a snapshot's grid: the minimal uptime of every policy
    other than 1 and 2 (the values the indexer does not hold)."""
    header = load_snapshot(snapshot_path).header
    entries = [{"id": p.id, "minimal_uptime": p.minimal_uptime} for p in header.farming_policies if p.id > 2]
    out.write_bytes(orjson.dumps({"network": header.network, "farming_policies": entries}))
    return out


@dataclass
class IndexerData:
    period: Period
    tables: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in SCHEMA})
    uptime: UptimeTable = field(default_factory=UptimeTable)
    #: (node_id, index within the node) -> a raw record answered instead of the real one
    uptime_overrides: dict[tuple[int, int], object] = field(default_factory=dict)
    #: The chain time the indexer has processed; None = everything it holds.
    processed_ts: int | None = None
    _seq: int = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def cap_ts(self) -> int:
        return self.processed_ts if self.processed_ts is not None else 2**62

    def copy(self) -> IndexerData:
        """An independent copy to edit: the records of a month take seconds to build from its
        snapshot, a copy a fraction of that."""
        return replace(
            self,
            tables=copy.deepcopy(self.tables),
            uptime=self.uptime.copy(),
            uptime_overrides=copy.deepcopy(self.uptime_overrides),
        )

    @classmethod
    def from_snapshot(cls, path: str | Path) -> IndexerData:
        snapshot = load_snapshot(path)
        header = snapshot.header
        data = cls(Period(header.period_offset))
        start, end = data.period.start_ts, data.period.end_ts
        window_end = data.period.window_end_ts
        t = data.tables
        for p in header.farming_policies:
            t["farmingPolicies"].append(
                {
                    "id": f"policy-{p.id}",
                    "gridVersion": 3,
                    "farmingPolicyID": p.id,
                    "name": p.name,
                    "cu": p.cu,
                    "su": p.su,
                    "nu": p.nu,
                    "ipv4": p.ipv4,
                    # the indexer's mappings never write it: null on every policy it serves
                    "minimalUptime": None,
                    "policyCreated": 0,
                    "policyEnd": 0,
                    "immutable": p.immutable,
                    "default": p.default,
                    "nodeCertification": p.node_certification,
                    "farmCertification": p.farm_certification,
                }
            )
        for f in header.farms:
            t["farms"].append(
                {
                    "id": f"farm-{f.farm_id}",
                    "gridVersion": 3,
                    "farmID": f.farm_id,
                    "name": f.name,
                    "twinID": f.twin_id,
                    "pricingPolicyID": 1,
                    "certification": f.certification,
                    "stellarAddress": f.stellar_address or None,
                    "dedicatedFarm": False,
                }
            )
        for tw in header.twins:
            # the indexer writes "0x" + hex, and "" for a twin without a key on chain; some
            # twins are served without the prefix, as hex strings often are
            pk = "" if tw.pk is None else tw.pk if tw.twin_id % 2 else "0x" + tw.pk
            t["twins"].append(
                {
                    "id": f"twin-{tw.twin_id}",
                    "gridVersion": 3,
                    "twinID": tw.twin_id,
                    "accountID": f"5Account{tw.twin_id}",
                    "relay": tw.relay,
                    "publicKey": pk,
                }
            )
        power_start = {p.node_id: p for p in header.power_at_start}
        for n in header.nodes:
            r = n.resources
            t["nodes"].append(
                {
                    "id": f"node-{n.node_id}",
                    "gridVersion": 3,
                    "nodeID": n.node_id,
                    "farmID": n.farm_id,
                    "twinID": n.twin_id,
                    "country": "Belgium",
                    "city": "Ghent",
                    "uptime": "0",
                    "created": n.created,
                    "farmingPolicyId": n.farming_policy_id,
                    "certification": n.certification,
                    "secure": False,
                    "virtualized": n.virtualized,
                    "serialNumber": "Default string",
                    "createdAt": str(n.created),
                    "updatedAt": str(end),
                    "connectionPrice": n.connection_price,
                    "power": None,
                    "dedicated": False,
                    "extraFee": None,
                    "resourcesTotal": {
                        "id": f"res-{n.node_id}",
                        "cru": str(r.cru),
                        "mru": str(r.mru),
                        "sru": str(r.sru),
                        "hru": str(r.hru),
                    },
                }
            )
            data._add_power_at_start(n.node_id, n.farm_id, power_start.get(n.node_id), start)
            data._add_contracts(n, start, end)
        farm_of = {n.node_id: n.farm_id for n in header.nodes}
        for node_id, events in snapshot.iter_node_events(buffered=True):
            uptime_seen = False
            for ts, kind, value in events:
                if kind == EVENT_UPTIME:
                    if not uptime_seen:  # one report before the window: must not be read
                        data.uptime.add(node_id, start - 1200, 1000, data.next_seq())
                        uptime_seen = True
                    data.uptime.add(node_id, ts, value, data.next_seq())
                else:
                    data._add_power(node_id, farm_of[node_id], ts, kind == EVENT_POWER_TARGET, value)
            if uptime_seen:  # and one after it
                data.uptime.add(node_id, window_end + 600, 9_999_999, data.next_seq())
        # a node deleted since the period: its reports are in the indexer, the node is not
        for ts in range(start + 600, end, 86_400):
            data.uptime.add(DELETED_NODE_ID, ts, ts - start + 600, data.next_seq())
        # a node created after the period end, on an existing farm and twin
        late = dict(
            t["nodes"][0],
            id="node-late",
            nodeID=max(n.node_id for n in header.nodes) + 1,
            created=end + 86_400,
            createdAt=str(end + 86_400),
        )
        t["nodes"].append(late)
        data._refresh_power()
        return data

    # -- translation helpers -------------------------------------------------------------------

    def _add_power(self, node_id: int, farm_id: int, ts: int, target: bool, up: bool) -> None:
        seq = self.next_seq()
        row = {
            "id": _event_id(ts, seq),
            "farmID": farm_id,
            "nodeID": node_id,
            "block": block_of(ts),
            "timestamp": str(ts),
        }
        if target:
            self.tables["powerTargetReports"].append({**row, "newPowerTarget": "Up" if up else "Down"})
        else:
            self.tables["powerStateReports"].append({**row, "newPowerState": "Up" if up else "Down"})

    def _add_power_at_start(self, node_id: int, farm_id: int, power, start: int) -> None:
        if power is None:
            if node_id % 11 == 4:  # slept and woke up before the period: Up/Up at the start
                for ts, target, up in (
                    (start - 7200, True, False),
                    (start - 7100, False, False),
                    (start - 3600, True, True),
                    (start - 3000, False, True),
                ):
                    self._add_power(node_id, farm_id, ts, target, up)
            return
        down_since = power.down_since if power.down_since is not None else start - 1
        if power.state == "Down":
            self._add_power(node_id, farm_id, down_since - 60, True, False)
            self._add_power(node_id, farm_id, down_since, False, False)
        if power.target == "Up" and power.state == "Down":
            self._add_power(node_id, farm_id, start - 30, True, True)
        if power.target == "Down" and power.state == "Up":
            self._add_power(node_id, farm_id, start - 100, True, False)

    def _refresh_power(self) -> None:
        """Node.power holds the state after the node's last report (the indexer's current state)."""
        reports = sorted(
            self.tables["powerTargetReports"] + self.tables["powerStateReports"],
            key=lambda r: (int(r["timestamp"]), r["id"]),
        )
        power: dict[int, dict] = {}
        for report in reports:
            current = power.setdefault(report["nodeID"], {"state": "Up", "target": "Up"})
            if "newPowerTarget" in report:
                current["target"] = report["newPowerTarget"]
            else:
                current["state"] = report["newPowerState"]
        for node in self.tables["nodes"]:
            node["power"] = power.get(node["nodeID"])

    def _contract(self, node, created_ts: int, state: str, used: tuple, ips: int) -> int:
        contract_id = len(self.tables["nodeContracts"]) + 1
        self.tables["nodeContracts"].append(
            {
                "id": f"contract-{contract_id}",
                "gridVersion": 3,
                "contractID": str(contract_id),
                "twinID": 1,
                "nodeID": node.node_id,
                "deploymentData": "{}",
                "deploymentHash": "h",
                "numberOfPublicIPs": ips,
                "state": state,
                "createdAt": str(created_ts),
                "solutionProviderID": None,
                "resourcesUsed": {
                    "id": f"used-{contract_id}",
                    "cru": str(used[0]),
                    "mru": str(used[1]),
                    "sru": str(used[2]),
                    "hru": str(used[3]),
                },
            }
        )
        return contract_id

    def _bill(self, contract_id: int, ts: int) -> None:
        self.tables["contractBillReports"].append(
            {
                "id": _event_id(ts, self.next_seq()),
                "contractID": str(contract_id),
                "discountReceived": "Default",
                "amountBilled": "1000",
                "timestamp": str(ts),
            }
        )

    def _nru(self, contract_id: int, ts: int, nru: int) -> None:
        self.tables["nruConsumptions"].append(
            {
                "id": _event_id(ts, self.next_seq()),
                "contractID": str(contract_id),
                "timestamp": str(ts),
                "window": "3600",
                "nru": str(nru),
            }
        )

    def _add_contracts(self, node, start: int, end: int) -> None:
        """Contracts whose aggregate over the period is exactly the node's snapshot consumption."""
        c = node.consumption
        length = end - start
        amounts = (c.cru_seconds, c.mru_seconds, c.sru_seconds, c.hru_seconds, c.ip_seconds)
        first = None
        if any(amounts) and all(a % length == 0 for a in amounts):
            per = tuple(a // length for a in amounts)
            if node.node_id % 3 == 0:
                # deleted half-way (its last bill is the end), and a second one from then on
                half = length // 2
                first = self._contract(node, start - 5 * 86_400, "Deleted", per[:4], per[4])
                for ts in (start - 3600, start + 3600, start + half):
                    self._bill(first, ts)
                self._contract(node, start + half, "Created", per[:4], per[4])
            else:
                first = self._contract(node, start - 10 * 86_400, "Created", per[:4], per[4])
                for ts in (start + 3600, end - 3600, end + 3600):
                    self._bill(first, ts)
        elif any(amounts):
            # usage that is no whole multiple of the period: a contract active for its last second
            for index, amount in enumerate(amounts):
                if amount:
                    used = tuple(amount if i == index else 0 for i in range(4))
                    contract = self._contract(node, end - 1, "Created", used, amount if index == 4 else 0)
                    first = first or contract
        if c.nru:
            if first is None:
                first = self._contract(node, start - 86_400, "Created", (0, 0, 0, 0), 0)
            third = c.nru // 3
            for ts, nru in ((start + 1000, third), (start + length // 2, third), (end, c.nru - 2 * third)):
                self._nru(first, ts, nru)
            self._nru(first, start, 777)  # reported for the previous period
            self._nru(first, end + 100, 555)  # reported for the next one
        if node.node_id % 5 == 1:  # deleted before the period: its bills all lie before the start
            gone = self._contract(node, start - 100 * 86_400, "Deleted", (8, 8 * 2**30, 0, 0), 1)
            self._bill(gone, start - 3600)
        if node.node_id % 7 == 2:  # created after the period end
            self._contract(node, end + 3600, "Created", (4, 2**30, 0, 0), 1)

    # -- answering -----------------------------------------------------------------------------

    def height(self) -> int:
        newest = min(self.uptime.newest_ts(), self.cap_ts)
        return block_of(newest)

    def resolve(self, item: Field, variables: dict) -> object:
        args = _substitute(item.args, variables)
        name = item.name
        if name == "squidStatus":
            return _project({"height": self.height(), "finalizedHeight": self.height()}, item.selection)
        if name.endswith("Connection") and name[: -len("Connection")] in SCHEMA:
            entity = name[: -len("Connection")]
            if not args.get("orderBy"):
                raise GraphQLError(f"Argument 'orderBy' of field '{name}' is required")
            _order_keys(args["orderBy"], entity)
            where = args.get("where") or {}
            if entity == "uptimeEvents":
                total = self.uptime.total(where, self.cap_ts)
            else:
                total = sum(1 for row in self._visible(entity) if _matches(row, where, entity))
            return _project({"totalCount": total, "edges": [], "pageInfo": {}}, item.selection)
        if name not in SCHEMA:
            raise GraphQLError(f"Cannot query field '{name}' on type 'Query'")
        where = args.get("where") or {}
        keys = _order_keys(args.get("orderBy"), name)
        offset = int(args.get("offset") or 0)
        limit = args.get("limit")
        limit = None if limit is None else int(limit)
        if name == "uptimeEvents":
            refs = self.uptime.select(where, keys, self.cap_ts, offset, limit)
            if not self.uptime_overrides:  # the common case, kept fast for the benchmark
                for sub in item.selection:
                    if sub.name not in SCHEMA[name]:
                        raise GraphQLError(f"Cannot query field '{sub.name}' on type '{name}'")
                pairs = [(sub.alias, sub.name) for sub in item.selection]
                rows = []
                for ref in refs:
                    row = self.uptime.row(ref)
                    rows.append({alias: row[field] for alias, field in pairs})
                return rows
            out = []
            for node_id, i in refs:
                row = self.uptime_overrides.get((node_id, i - self._first_index(node_id)))
                row = self.uptime.row((node_id, i)) if row is None else row
                out.append(_project(row, item.selection, name) if isinstance(row, dict) else row)
            return out
        rows = [row for row in self._visible(name) if _matches(row, where, name)]
        _sort(rows, keys, lambda row, key: row.get(key))
        rows = rows[offset : None if limit is None else offset + limit]
        return [_project(row, item.selection, name) if isinstance(row, dict) else row for row in rows]

    def _first_index(self, node_id: int) -> int:
        # overrides count from the node's first report inside the period window
        ts = self.uptime.by_node[node_id][0]
        return bisect_left(ts, self.period.start_ts)

    def _visible(self, entity: str) -> list[dict]:
        rows = self.tables[entity]
        if self.processed_ts is None or entity not in (
            "powerTargetReports",
            "powerStateReports",
            "contractBillReports",
            "nruConsumptions",
        ):
            return rows
        return [row for row in rows if int(row.get("timestamp", 0)) <= self.processed_ts]

    def execute(self, query: str, variables: dict) -> dict:
        fields = _Parser(query).document()
        return {item.alias: self.resolve(item, variables) for item in fields}

    def stats(self) -> dict:
        return {
            "nodes": len(self.tables["nodes"]),
            "farms": len(self.tables["farms"]),
            "twins": len(self.tables["twins"]),
            "countries": 1,
            "totalCru": 0,
            "totalSru": 0,
            "totalMru": 0,
            "totalHru": 0,
            "publicIps": 0,
            "accessNodes": 0,
            "gateways": 0,
            "contracts": len(self.tables["nodeContracts"]),
        }


# -- the HTTP server ---------------------------------------------------------------------------


@dataclass
class Faults:
    """Injected by tests; each counter is consumed by the requests that follow."""

    error_status: int = 503
    errors_left: int = 0  # the next N GraphQL requests fail with error_status
    slow_left: int = 0  # the next N GraphQL requests wait slow_s before answering
    slow_s: float = 0.0
    fail_after: int | None = None  # after N more good answers, every request fails
    stats_override: dict = field(default_factory=dict)


class IndexerServer:
    def __init__(self, data: IndexerData) -> None:
        self.data = data
        self.faults = Faults()
        #: The operator's policy file the tests build with (PolicyFile), when they set one.
        self.policy_file: object = None
        self.lock = threading.Lock()
        #: One entry per GraphQL request: (root field names, variables, HTTP status).
        self.requests: list[tuple[tuple[str, ...], dict, int]] = []
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._http is not None
        return self._http.server_address[1]

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def gridproxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> IndexerServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle's algorithm and
                # delayed ACKs stall every keep-alive answer by 40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                if self.path.split("?")[0].rstrip("/") == "/stats":
                    self._send(200, orjson.dumps({**server.data.stats(), **server.faults.stats_override}))
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/graphql":
                    self._send(404, b'{"error":"not found"}')
                    return
                status, body, names, variables = server._answer(raw)
                with server.lock:
                    server.requests.append((names, variables, status))
                self._send(status, body)

        self._http = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _answer(self, raw: bytes) -> tuple[int, bytes, tuple[str, ...], dict]:
        try:
            request = orjson.loads(raw)
            query, variables = request["query"], request.get("variables") or {}
            names = tuple(f.name for f in _Parser(query).document())
        except (orjson.JSONDecodeError, KeyError, TypeError, GraphQLError) as exc:
            return 400, orjson.dumps({"errors": [{"message": str(exc)}]}), (), {}
        faults = self.faults
        with self.lock:
            delay = 0.0
            if faults.slow_left > 0:
                faults.slow_left -= 1
                delay = faults.slow_s
            fail = False
            if faults.errors_left > 0:
                faults.errors_left -= 1
                fail = True
            elif faults.fail_after is not None:
                if faults.fail_after <= 0:
                    fail = True
                else:
                    faults.fail_after -= 1
        if delay:
            time.sleep(delay)
        if fail:
            return faults.error_status, b'{"errors":[{"message":"upstream unavailable"}]}', names, variables
        status, body = self._execute(raw, query, variables)
        return status, body, names, variables

    def _execute(self, raw: bytes, query: str, variables: dict) -> tuple[int, bytes]:
        """The answer to a request that no fault took: from the data (a proxy forwards it)."""
        try:
            data = self.data.execute(query, variables)
        except GraphQLError as exc:
            return 400, orjson.dumps({"errors": [{"message": str(exc)}]})
        except Exception as exc:  # noqa: BLE001 - a bug here must show as a server error, not a dropped connection
            return 500, orjson.dumps({"errors": [{"message": repr(exc)}]})
        return 200, orjson.dumps({"data": data})

    def count(self, root_field: str) -> int:
        with self.lock:
            return sum(1 for names, _, status in self.requests if root_field in names and status == 200)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a snapshot as a loopback TFChain indexer.")
    parser.add_argument("--snapshot", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = IndexerServer(IndexerData.from_snapshot(args.snapshot)).start(args.port)
    print(f"port {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
