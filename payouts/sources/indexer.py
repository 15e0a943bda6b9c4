"""Build a period's `tfgrid-snapshot/1` file from TFChain's GraphQL indexer (shared spec, section 3).

Where each snapshot field comes from and how usage is aggregated: `INDEXER.md` next to this file.

The build runs in this order: check that the indexer has processed the chain past the period's
post-period window (else `IndexerBehind`), download every entity page by page, aggregate
contract usage per node, check references and counts (grid proxy included), then write the
file in one atomic step (temp file + os.replace). Each finished page is kept in `<out>.parts/`
so a build that stops half-way (killed, network down) picks up where it stopped; the folder
goes away once the snapshot is written.
"""

from __future__ import annotations

import builtins
import gzip
import json
import os
import re
import shutil
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, overload

import orjson

from payouts import CODE_VERSION
from payouts.periods import Period
from payouts.snapshot.schema import FORMAT_TAG
from payouts.sources.errors import IndexerBehind, IndexerDataError, IndexerQueryError
from payouts.sources.event_ids import event_position
from payouts.sources.graphql import GraphQLClient, JsonHttp, RetryPolicy
from payouts.sources.gridproxy import COMPARED, compare_counts, fetch_stats
from payouts.sources.policies import FIXED_SLA_POLICIES, PolicyFile, PolicyValueUnknown, how_to_supply

#: network -> (GraphQL indexer, grid proxy)
DEFAULT_ENDPOINTS = {
    "main": ("https://graphql.grid.tf/graphql", "https://gridproxy.grid.tf"),
    "test": ("https://graphql.test.grid.tf/graphql", "https://gridproxy.test.grid.tf"),
    "dev": ("https://graphql.dev.grid.tf/graphql", "https://gridproxy.dev.grid.tf"),
}
#: Used when a node has no connection price on chain (nodes from before prices were per node).
DEFAULT_CONNECTION_PRICE_MUSD = 80
#: Bumped whenever the layout of a part file changes, so old parts are never reused.
_PARTS_LAYOUT = 3
#: Blocks of margin around the period's blocks when an event table is paged by id: an hour for
#: tables stamped with their block's time, three days for traffic reports (the node's own time).
_BLOCK_MARGIN = 600
_NRU_BLOCK_MARGIN = 3 * 14_400
_U64_MAX = 2**64 - 1
_INT_STRING = re.compile(r"-?[0-9]+")
#: A BigInt "seconds" value above this is in milliseconds (10^11 s is the year 5138).
_MILLISECONDS_ABOVE = 10**11


class Progress(Protocol):
    """Where the builder reports what it downloads (a rich bar in the CLI, nothing in workers)."""

    def start(self, entity: str, total: int | None) -> None: ...
    def advance(self, entity: str, amount: int) -> None: ...


class NoProgress:
    def start(self, entity: str, total: int | None) -> None:
        pass

    def advance(self, entity: str, amount: int) -> None:
        pass


@dataclass(frozen=True)
class BuildOptions:
    #: Records per page for ordinary entities, and for events (uptime reports are millions).
    page_size: int = 1000
    event_page_size: int = 5000
    #: Nodes whose events are fetched together (one part folder step, one count check).
    nodes_per_chunk: int = 100
    #: Ids per `_in` filter, and aliased "last record before" lookups per request.
    ids_per_query: int = 100
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Relative count difference with the grid proxy above which the build stops.
    gridproxy_tolerance_ratio: float = 0.01
    #: Minimal uptimes of farming policies the indexer has none for (`--policies FILE`).
    policy_file: PolicyFile | None = None


@dataclass
class BuildSummary:
    path: Path
    period: Period
    nodes: int
    farms: int
    twins: int
    uptime_events: int
    power_events: int
    notes: list[str]
    indexer_height: int
    requests: int
    slowest_request_s: float
    parts_reused: int
    bytes_written: int


# -- entities and queries ----------------------------------------------------------------


@dataclass(frozen=True)
class _Entity:
    field: str  # root query field, e.g. "nodes"
    type_name: str  # GraphQL type, e.g. "Node" (NodeWhereInput, NodeOrderByInput)
    order: str  # a unique, stable order for offset paging
    selection: str

    @property
    def document(self) -> str:
        return (
            f"query {self.field}($where: {self.type_name}WhereInput, $limit: Int, $offset: Int) "
            f"{{ {self.field}(where: $where, orderBy: {self.order}, limit: $limit, offset: $offset) "
            f"{{ {self.selection} }} }}"
        )

    @property
    def keyset_document(self) -> str:
        """A page after a known id (the `where` bounds the ids): no offset to skip over."""
        return (
            f"query {self.field}($where: {self.type_name}WhereInput, $limit: Int) "
            f"{{ {self.field}(where: $where, orderBy: {self.order}, limit: $limit) {{ {self.selection} }} }}"
        )

    @property
    def count_document(self) -> str:
        return (
            f"query {self.field}Count($where: {self.type_name}WhereInput) "
            f"{{ {self.field}Connection(where: $where, orderBy: {self.order}) {{ totalCount }} }}"
        )


POLICIES = _Entity(
    "farmingPolicies",
    "FarmingPolicy",
    "farmingPolicyID_ASC",
    "farmingPolicyID name cu su nu ipv4 minimalUptime immutable default nodeCertification farmCertification",
)
NODES = _Entity(
    "nodes",
    "Node",
    "nodeID_ASC",
    "nodeID farmID twinID created farmingPolicyId certification virtualized "
    "connectionPrice resourcesTotal { cru mru sru hru } power { state target }",
)
FARMS = _Entity("farms", "Farm", "farmID_ASC", "farmID name twinID certification stellarAddress")
TWINS = _Entity("twins", "Twin", "twinID_ASC", "twinID relay publicKey")
UPTIME = _Entity("uptimeEvents", "UptimeEvent", "[nodeID_ASC, timestamp_ASC, id_ASC]", "nodeID timestamp uptime")
POWER_TARGETS = _Entity(
    "powerTargetReports",
    "PowerTargetReport",
    "[nodeID_ASC, timestamp_ASC, id_ASC]",
    "id nodeID newPowerTarget timestamp",
)
POWER_STATES = _Entity(
    "powerStateReports", "PowerStateReport", "[nodeID_ASC, timestamp_ASC, id_ASC]", "id nodeID newPowerState timestamp"
)
CONTRACTS = _Entity(
    "nodeContracts",
    "NodeContract",
    "contractID_ASC",
    "contractID nodeID numberOfPublicIPs state createdAt resourcesUsed { cru mru sru hru }",
)
NRU = _Entity("nruConsumptions", "NruConsumption", "id_ASC", "id contractID timestamp nru")

UPTIME_BY_ID = _Entity("uptimeEvents", "UptimeEvent", "id_ASC", "id nodeID timestamp uptime")
POWER_TARGETS_BY_ID = _Entity("powerTargetReports", "PowerTargetReport", "id_ASC", "id nodeID newPowerTarget timestamp")
POWER_STATES_BY_ID = _Entity("powerStateReports", "PowerStateReport", "id_ASC", "id nodeID newPowerState timestamp")
BILLS_BY_ID = _Entity("contractBillReports", "ContractBillReport", "id_ASC", "id contractID timestamp")
_FIRST_FROM_QUERY = (
    "query first_from($where: UptimeEventWhereInput) "
    "{ uptimeEvents(where: $where, orderBy: id_ASC, limit: 1) { id timestamp } }"
)

_STATUS_QUERY = (
    # the newest report in chain order: a walk down the primary key, not a sort of the table
    "query status { squidStatus { height } uptimeEvents(orderBy: id_DESC, limit: 1) { timestamp } }"
)
_TOTALS_QUERY = (
    "query totals { nodesConnection(orderBy: nodeID_ASC) { totalCount } "
    "farmsConnection(orderBy: farmID_ASC) { totalCount } "
    "twinsConnection(orderBy: twinID_ASC) { totalCount } }"
)


# -- record parsing: every field checked, errors name the record ---------------------------


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {json.dumps(value[:40])}"
    return "an array" if isinstance(value, list) else "an object"


class _Record:
    """One record of an answer, with the words that locate it in errors."""

    __slots__ = ("entity", "item", "where")

    def __init__(self, entity: str, item: object, where: str) -> None:
        if not isinstance(item, dict):
            raise IndexerDataError(entity, where, f"expected an object, got {_describe(item)}")
        self.entity, self.item, self.where = entity, item, where

    def fail(self, problem: str) -> IndexerDataError:
        return IndexerDataError(self.entity, self.where, problem)

    def get(self, path: str) -> object:
        value: object = self.item
        for part in path.split("."):
            if not isinstance(value, dict):
                raise self.fail(f"{path}: expected an object, got {_describe(value)}")
            if part not in value:
                raise self.fail(f"missing field {path!r}")
            value = value[part]
        return value

    @overload
    def int(
        self, path: builtins.str, *, nullable: Literal[False] = False, bigint: bool = False, minimum: int | None = None
    ) -> builtins.int: ...
    @overload
    def int(
        self, path: builtins.str, *, nullable: Literal[True], bigint: bool = False, minimum: int | None = None
    ) -> builtins.int | None: ...
    def int(
        self, path: builtins.str, *, nullable: bool = False, bigint: bool = False, minimum: builtins.int | None = None
    ) -> builtins.int | None:
        value = self.get(path)
        if value is None:
            if nullable:
                return None
            raise self.fail(f"{path} is null, expected an integer")
        if type(value) is int:
            number = value
        elif bigint and type(value) is str and _INT_STRING.fullmatch(value):
            number = int(value)  # GraphQL BigInt travels as a string of digits
        else:
            kind = "an integer or a string of digits (BigInt)" if bigint else "an integer"
            raise self.fail(f"{path}: expected {kind}, got {_describe(value)}")
        if minimum is not None and number < minimum:
            raise self.fail(f"{path} is {number}, must be at least {minimum}")
        return number

    @overload
    def str(
        self, path: builtins.str, *, nullable: Literal[False] = False, choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str: ...
    @overload
    def str(
        self, path: builtins.str, *, nullable: Literal[True], choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str | None: ...
    def str(
        self, path: builtins.str, *, nullable: bool = False, choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str | None:
        value = self.get(path)
        if value is None and nullable:
            return None
        if type(value) is not str:
            raise self.fail(f"{path}: expected a string, got {_describe(value)}")
        if choices and value not in choices:
            raise self.fail(f"{path}: expected one of {', '.join(choices)}, got {_describe(value)}")
        return value

    @overload
    def bool(self, path: builtins.str, *, nullable: Literal[False] = False) -> builtins.bool: ...
    @overload
    def bool(self, path: builtins.str, *, nullable: Literal[True]) -> builtins.bool | None: ...
    def bool(self, path: builtins.str, *, nullable: builtins.bool = False) -> builtins.bool | None:
        value = self.get(path)
        if value is None and nullable:
            return None
        if type(value) is not bool:
            raise self.fail(f"{path}: expected true or false, got {_describe(value)}")
        return value


def _seconds(value: int) -> int:
    """Block timestamps (`createdAt`) are stored in milliseconds by some indexer versions."""
    return value // 1000 if value > _MILLISECONDS_ABOVE else value


# -- parts: one finished file per entity page, for a resumable download ---------------------


class _Parts:
    def __init__(self, folder: Path, fingerprint: dict) -> None:
        self.folder = folder
        #: parts found from an earlier run (what a resumed build did not have to download)
        self.reused = 0
        self._written: set[str] = set()
        meta = folder / "meta.json"
        if folder.exists():
            try:
                same = orjson.loads(meta.read_bytes()) == fingerprint
            except (OSError, orjson.JSONDecodeError):
                same = False
            if not same:  # another period, URL or paging: nothing in it can be reused
                shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            self._write(meta, fingerprint)

    @staticmethod
    def _write(path: Path, value: object) -> None:
        temp = path.with_name(path.name + ".tmp")
        temp.write_bytes(orjson.dumps(value))
        os.replace(temp, path)

    def get(self, name: str) -> Any:
        try:
            value = orjson.loads((self.folder / f"{name}.json").read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            return None  # cannot happen with atomic writes; refetch rather than trust it
        self.reused += name not in self._written
        self._written.add(name)
        return value

    def put(self, name: str, value: object) -> None:
        self._write(self.folder / f"{name}.json", value)
        self._written.add(name)

    def discard(self, prefix: str) -> None:
        for path in self.folder.glob(f"{prefix}.*"):
            path.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- the builder -------------------------------------------------------------------------


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{hours} h {minutes} min"
    return f"{days} d {text}" if days else text


def _chunks(values: list, size: int) -> list[list]:
    return [values[i : i + size] for i in range(0, len(values), size)]


@dataclass
class _Contract:
    contract_id: int
    node_id: int
    public_ips: int
    deleted: bool
    created_ts: int
    used: tuple[int, int, int, int] | None  # cru, mru, sru, hru


class _Builder:
    def __init__(
        self,
        out: Path,
        *,
        period: Period,
        network: str,
        graphql_url: str,
        gridproxy_url: str | None,
        options: BuildOptions,
        progress: Progress,
        now: Callable[[], datetime],
    ) -> None:
        self.out = out
        self.period = period
        self.network = network
        self.options = options
        self.progress = progress
        self.now = now
        self.http = JsonHttp(timeout_s=options.timeout_s, retry=options.retry)
        self.gql = GraphQLClient(graphql_url, self.http)
        self.gridproxy_url = gridproxy_url
        self.start_ts, self.end_ts, self.window_end_ts = period.start_ts, period.end_ts, period.window_end_ts
        self.notes: list[str] = []
        self.parts: _Parts | None = None
        #: (first block of the window's events, first block after them): see block_range
        self.blocks = (0, 0)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def store(self) -> _Parts:
        """The parts folder of this build (opened once the indexer passed its status check)."""
        if self.parts is None:
            raise RuntimeError("the parts folder is opened by run()")
        return self.parts

    def _count(self, key: str, entity: _Entity, where: dict) -> int:
        cached = self.store.get(f"{key}.count")
        if cached is not None:
            return cached
        data = self.gql.query(entity.count_document, {"where": where}, what=f"count of {entity.field}")
        connection = data.get(f"{entity.field}Connection")
        total = connection.get("totalCount") if isinstance(connection, dict) else None
        if type(total) is not int or total < 0:
            raise IndexerQueryError(f"{self.gql.url}: count of {entity.field}: no totalCount in the answer")
        self.store.put(f"{key}.count", total)
        return total

    def _paged(
        self,
        key: str,
        entity: _Entity,
        where: dict,
        parse: Callable[[list, int], list],
        *,
        page_size: int,
        counted: bool = True,
        progress: str | None = None,
    ) -> Iterator[list]:
        """Parsed rows page by page, finished parts first; with `counted`, the total is checked
        against `<field>Connection.totalCount` so that a page lost to paging cannot go unseen."""
        expected = self._count(key, entity, where) if counted else None
        if progress is not None and expected is not None:
            self.progress.start(progress, expected)
        seen = page = 0
        while True:
            name = f"{key}.{page:05d}"
            part = self.store.get(name)
            if part is None:
                offset = page * page_size
                what = f"{entity.field} (offset {offset})"
                data = self.gql.query(
                    entity.document, {"where": where, "limit": page_size, "offset": offset}, what=what
                )
                items = data.get(entity.field)
                if not isinstance(items, list):
                    raise IndexerQueryError(f"{self.gql.url}: {what}: expected a list under {entity.field!r}")
                part = {"rows": parse(items, offset), "full": len(items) == page_size}
                self.store.put(name, part)
            rows = part["rows"]
            seen += len(rows)
            if progress is not None:
                self.progress.advance(progress, len(rows))
            yield rows
            if not part["full"]:
                break
            page += 1
        if expected is not None and seen != expected:
            self.store.discard(key)  # refetch this entity on the next run
            raise IndexerDataError(
                entity.field,
                f"query {key}",
                f"paging returned {seen} records but the indexer counts {expected}: it changed "
                f"during the download; run the build again",
            )

    @staticmethod
    def _where(offset: int, index: int, item: object, id_key: str) -> str:
        label = f" ({id_key} {item.get(id_key)!r})" if isinstance(item, dict) and id_key in item else ""
        return f"page at offset {offset}, item {index}{label}"

    # -- steps --------------------------------------------------------------------------------

    def check_indexer(self) -> tuple[int, int]:
        """(height, newest event time); IndexerBehind unless past the post-period window."""
        data = self.gql.query(_STATUS_QUERY, what="indexer status")
        status = data.get("squidStatus")
        height = status.get("height") if isinstance(status, dict) else None
        if type(height) is not int:
            raise IndexerQueryError(f"{self.gql.url}: indexer status: no squidStatus.height in the answer")
        newest = data.get("uptimeEvents")
        processed_ts = None
        if isinstance(newest, list) and newest:
            processed_ts = _Record("uptimeEvents", newest[0], "newest event").int("timestamp", bigint=True)
        needed = self.window_end_ts
        if processed_ts is None or processed_ts < needed:
            now_ts = int(self.now().timestamp())
            seen = (
                "has no uptime event yet"
                if processed_ts is None
                else f"has processed the chain up to {_iso(processed_ts)}, "
                f"{_duration(needed - processed_ts)} short of it"
            )
            future = f"; that moment is still {_duration(needed - now_ts)} away" if now_ts < needed else ""
            raise IndexerBehind(
                f"the indexer at {self.gql.url} (height {height}) {seen}: period {self.period} needs "
                f"uptime reports up to {_iso(needed)} (period end + 27 h){future}. Try again later.",
                height=height,
                processed_ts=processed_ts,
                needed_ts=needed,
            )
        return height, processed_ts

    def policies(self) -> list[dict]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = _Record("farmingPolicies", item, self._where(offset, index, item, "farmingPolicyID"))
                rows.append(
                    {
                        "id": r.int("farmingPolicyID"),
                        "name": r.str("name"),
                        "cu": r.int("cu"),
                        "su": r.int("su"),
                        "nu": r.int("nu"),
                        "ipv4": r.int("ipv4"),
                        # nullable in the indexer's schema and never written by its mappings
                        "minimal_uptime": r.int("minimalUptime", nullable=True),
                        "immutable": bool(r.bool("immutable", nullable=True)),
                        "default": bool(r.bool("default", nullable=True)),
                        "node_certification": r.str("nodeCertification", choices=("Diy", "Certified")),
                        "farm_certification": r.str("farmCertification", choices=("NotCertified", "Gold")),
                    }
                )
            return rows

        return [
            row
            for page in self._paged(
                "policies", POLICIES, {}, parse, page_size=self.options.page_size, progress="farming policies"
            )
            for row in page
        ]

    def resolve_policies(self, policies: list[dict], nodes: list[dict]) -> None:
        """Fill in every policy's minimal uptime: the indexer's value, else the policy file's.

        Policies 1 and 2 do not need one (fixed SLA thresholds) and neither does a policy no
        node of the snapshot uses: an unknown value is written as 0 there, with a note. A
        policy in use without a value stops the build (PolicyValueUnknown)."""
        supplied = self.options.policy_file
        from_file = supplied.minimal_uptime if supplied is not None else {}
        in_use = {node["farming_policy_id"] for node in nodes}
        missing, unused_placeholder, fixed_placeholder, filled = [], [], [], []
        for policy in policies:
            policy_id, value = policy["id"], policy["minimal_uptime"]
            if policy_id in from_file:
                if value is not None and value != from_file[policy_id]:
                    assert supplied is not None
                    raise PolicyValueUnknown(
                        f"farming policy {policy_id}: the indexer says minimalUptime {value}, the policy "
                        f"file {supplied.path} says {from_file[policy_id]}; one of them is wrong"
                    )
                if value is None:
                    filled.append(policy_id)
                value = from_file[policy_id]
            if value is None:
                if policy_id in FIXED_SLA_POLICIES:
                    fixed_placeholder.append(policy_id)
                elif policy_id in in_use:
                    missing.append(policy_id)
                else:
                    unused_placeholder.append(policy_id)
                value = 0
            policy["minimal_uptime"] = value
        if missing:
            nodes_of = sorted(n["node_id"] for n in nodes if n["farming_policy_id"] in missing)
            names = ", ".join(str(i) for i in missing)
            raise PolicyValueUnknown(
                f"farming policy {names}: the indexer at {self.gql.url} has no minimalUptime for it "
                f"(null) and {len(nodes_of)} node(s) of the period use it (nodes {_id_list(nodes_of)}); "
                f"the build cannot guess it: {how_to_supply(missing)}"
            )
        if filled:
            assert supplied is not None
            self.notes.append(
                f"farming policy {_id_list(filled)}: minimal uptime from the policy file {supplied.path.name} "
                f"(sha256 {supplied.sha256}); the indexer has none"
            )
        if fixed_placeholder:
            self.notes.append(
                f"farming policy {_id_list(fixed_placeholder)}: no minimalUptime in the indexer; the "
                f"calculation applies the fixed SLA thresholds to these policies and does not read it: written as 0"
            )
        if unused_placeholder:
            self.notes.append(
                f"farming policy {_id_list(unused_placeholder)}: no minimalUptime in the indexer and no node "
                f"of the period uses it: written as 0"
            )

    def nodes(self) -> list[dict]:
        nulls = {"connectionPrice": 0, "certification": 0, "virtualized": 0, "resourcesTotal": 0}

        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = _Record("nodes", item, self._where(offset, index, item, "nodeID"))
                resources = r.get("resourcesTotal")
                if resources is None:
                    # written as zeros: the calculation refuses the node (mru below 1 GiB)
                    resources_row = {"cru": 0, "mru": 0, "sru": 0, "hru": 0, "_null": True}
                else:
                    # odd values (negative, huge) pass: the calculation zeroes only this node
                    resources_row = {
                        name: r.int(f"resourcesTotal.{name}", bigint=True) for name in ("cru", "mru", "sru", "hru")
                    }
                power = r.get("power")
                power_row = None
                if power is not None:
                    power_row = [
                        r.str("power.state", choices=("Up", "Down")),
                        r.str("power.target", choices=("Up", "Down")),
                    ]
                rows.append(
                    {
                        "node_id": r.int("nodeID"),
                        "farm_id": r.int("farmID"),
                        "twin_id": r.int("twinID"),
                        "resources": resources_row,
                        "certification": r.str("certification", nullable=True, choices=("Diy", "Certified")),
                        "farming_policy_id": r.int("farmingPolicyId"),
                        "connection_price": r.int("connectionPrice", nullable=True),
                        "virtualized": r.bool("virtualized", nullable=True),
                        "created": r.int("created"),
                        "_power": power_row,
                    }
                )
            return rows

        where = {"created_lte": self.end_ts}
        nodes = [
            row
            for page in self._paged("nodes", NODES, where, parse, page_size=self.options.page_size, progress="nodes")
            for row in page
        ]
        for node in nodes:
            if node["connection_price"] is None:
                nulls["connectionPrice"] += 1
                node["connection_price"] = DEFAULT_CONNECTION_PRICE_MUSD
            if node["certification"] is None:
                nulls["certification"] += 1
                node["certification"] = "Diy"
            if node["virtualized"] is None:
                nulls["virtualized"] += 1
                node["virtualized"] = False
            if node["resources"].pop("_null", False):
                nulls["resourcesTotal"] += 1
        meaning = {
            "connectionPrice": f"written as the default {DEFAULT_CONNECTION_PRICE_MUSD} mUSD",
            "certification": "written as Diy",
            "virtualized": "written as false",
            "resourcesTotal": "written as zeros, so the calculation refuses the node",
        }
        for name, count in nulls.items():
            if count:
                self.notes.append(f"{count} node(s) have no {name} in the indexer: {meaning[name]}")
        return nodes

    def farms(self) -> list[dict]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = _Record("farms", item, self._where(offset, index, item, "farmID"))
                certification = r.str("certification", nullable=True, choices=("NotCertified", "Gold"))
                rows.append(
                    {
                        "farm_id": r.int("farmID"),
                        "name": r.str("name"),
                        "twin_id": r.int("twinID"),
                        "certification": certification,
                        "stellar_address": r.str("stellarAddress", nullable=True) or "",
                    }
                )
            return rows

        farms = [
            row
            for page in self._paged("farms", FARMS, {}, parse, page_size=self.options.page_size, progress="farms")
            for row in page
        ]
        null_certification = 0
        for farm in farms:
            if farm["certification"] is None:
                null_certification += 1
                farm["certification"] = "NotCertified"
        if null_certification:
            self.notes.append(
                f"{null_certification} farm(s) have no certification in the indexer: written as NotCertified"
            )
        return farms

    def twins(self, twin_ids: list[int]) -> dict[int, dict]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = _Record("twins", item, self._where(offset, index, item, "twinID"))
                pk = r.str("publicKey", nullable=True)
                if pk is not None and pk[:2] in ("0x", "0X"):
                    pk = pk[2:]  # the snapshot holds bare hex
                rows.append({"twin_id": r.int("twinID"), "relay": r.str("relay", nullable=True), "pk": pk})
            return rows

        twins: dict[int, dict] = {}
        chunks = _chunks(twin_ids, self.options.ids_per_query)
        self.progress.start("twins", len(chunks))
        for number, chunk in enumerate(chunks):
            for page in self._paged(
                f"twins.{number:04d}",
                TWINS,
                {"twinID_in": chunk},
                parse,
                page_size=self.options.page_size,
                counted=False,
            ):
                for row in page:
                    twins[row["twin_id"]] = row
            self.progress.advance("twins", 1)
        # The indexer writes "" for a twin the chain holds without a public key (stored by an
        # event before runtime 124, or with `pk: None`); minting checks a twin's key only when
        # there is one (`if let Some(ref pk) = twin.pk`), so "" is written as null (INDEXER.md).
        empty = [twin_id for twin_id, row in twins.items() if row["pk"] == ""]
        for twin_id in empty:
            twins[twin_id]["pk"] = None
        if empty:
            self.notes.append(
                f"{len(empty)} twin(s) have an empty publicKey in the indexer (no public key on chain): "
                f"written as null, which the end-of-period key check skips, as minting does: twins {_id_list(empty)}"
            )
        return twins

    def _window_row(
        self, r: _Record, node_ids: set[int], ts_path: str = "timestamp", lowest: int | None = None
    ) -> tuple[int, int]:
        node_id = r.int("nodeID")
        ts = r.int(ts_path, bigint=True)
        lowest = self.start_ts if lowest is None else lowest
        if node_id not in node_ids:
            raise r.fail(f"nodeID {node_id} was not asked for")
        if not lowest <= ts <= self.window_end_ts:
            raise r.fail(f"{ts_path} {ts} is outside the requested window {lowest}..{self.window_end_ts}")
        return node_id, ts

    # -- event tables: paged by primary-key ranges ---------------------------------------------

    def _first_report_ts_from(self, height: int) -> int | None:
        """The time of the first uptime report at block `height` or later (None: there is none):
        one primary-key index lookup, kept as a part like every answer."""
        assert self.parts is not None
        cached = self.store.get(f"first_from.{height:010d}")
        if cached is not None:
            return cached["ts"]
        ts = self._ask_first_report_ts_from(height)
        self.store.put(f"first_from.{height:010d}", {"ts": ts})
        return ts

    def _ask_first_report_ts_from(self, height: int) -> int | None:
        data = self.gql.query(
            _FIRST_FROM_QUERY, {"where": {"id_gte": f"{height:010d}"}}, what=f"first uptime report from block {height}"
        )
        items = data.get("uptimeEvents")
        if not isinstance(items, list):
            raise IndexerQueryError(f"{self.gql.url}: first uptime report: expected a list under 'uptimeEvents'")
        if not items:
            return None
        r = _Record("uptimeEvents", items[0], f"first report from block {height}")
        found = event_position(r.str("id"))
        if found is None or found[0] < height:
            raise r.fail(f"id {r.get('id')!r} is not an event id at block {height} or later")
        return r.int("timestamp", bigint=True)

    def _first_height(self, reached: Callable[[int], bool], height: int) -> int:
        """The lowest block height whose first uptime report at or after it is `reached` (or
        that has none after it): a binary search over the id index, block times being monotonic."""
        low, high = 0, height + 1
        while low < high:
            middle = (low + high) // 2
            ts = self._first_report_ts_from(middle)
            if ts is None or reached(ts):
                high = middle
            else:
                low = middle + 1
        return low

    def block_range(self, height: int) -> tuple[int, int]:
        """(first block that can hold an event at or after START, first block after every event
        up to WINDOW_END): every block below the first holds only earlier events, every block
        from the second on only later ones."""
        first = self._first_height(lambda ts: ts >= self.start_ts, height)  # each probe is a part
        return first, self._first_height(lambda ts: ts > self.window_end_ts, height)

    def _id_bounds(self, margin_blocks: int) -> dict[str, str]:
        first, after = self.blocks
        return {"id_gte": f"{max(first - margin_blocks, 0):010d}", "id_lt": f"{after + margin_blocks:010d}"}

    def _ranged(
        self,
        key: str,
        entity: _Entity,
        where: dict,
        parse: Callable[[list, int], list],
        *,
        page_size: int,
        progress: str | None = None,
    ) -> Iterator[list]:
        """Parsed rows of an event table page by page in id (chain) order, finished parts
        first. `where` holds `id_gte`/`id_lt` bounds: each page asks for the ids after the last
        one seen, so the database walks the primary-key index over the period's blocks only,
        whatever the size of the table. The pages must add up to `totalCount` over the same range."""
        expected = self._count(key, entity, where)
        if progress is not None:
            self.progress.start(progress, expected)
        seen = page = 0
        last: str | None = None
        while True:
            name = f"{key}.{page:05d}"
            part = self.store.get(name)
            if part is None:
                offset = page * page_size
                asked = dict(where) if last is None else {**where, "id_gt": last}
                what = f"{entity.field} (offset {offset}, after id {last or where.get('id_gte')})"
                data = self.gql.query(entity.keyset_document, {"where": asked, "limit": page_size}, what=what)
                items = data.get(entity.field)
                if not isinstance(items, list):
                    raise IndexerQueryError(f"{self.gql.url}: {what}: expected a list under {entity.field!r}")
                rows = parse(items, offset)
                newest: str | None = items[-1]["id"] if items else last  # parse checked every id
                if items and last is not None and newest is not None and not newest > last:
                    raise IndexerDataError(entity.field, f"page at offset {offset}", "ids do not increase")
                part = {"rows": rows, "items": len(items), "full": len(items) == page_size, "last": newest}
                self.store.put(name, part)
            seen += part["items"]
            if progress is not None:
                self.progress.advance(progress, part["items"])
            yield part["rows"]
            if not part["full"]:
                break
            last = part["last"]
            page += 1
        if seen != expected:
            self.store.discard(key)
            raise IndexerDataError(
                entity.field,
                f"query {key}",
                f"paging returned {seen} records but the indexer counts {expected}: it changed "
                f"during the download; run the build again",
            )

    def uptime(self, node_ids: list[int]) -> tuple[dict[int, tuple[array, array]], int]:
        """Uptime reports of the window per node in chain order ({node: (timestamps, uptimes)}),
        and how many reports in the window belong to nodes the snapshot does not have."""
        known = set(node_ids)
        low, high = self.start_ts, self.window_end_ts

        def parse(items: list, offset: int) -> list:
            rows: list[list[int]] = []
            append = rows.append
            for index, item in enumerate(items):
                # fast path for the millions of well-formed reports; anything else is
                # checked field by field so that the error names the record
                try:
                    eid, node_id, ts, up = item["id"], item["nodeID"], item["timestamp"], item["uptime"]
                    if (
                        type(node_id) is int
                        and type(ts) is str
                        and ts.isdigit()
                        and type(up) is str
                        and up.isdigit()
                        and type(eid) is str
                        and len(item) == 4
                    ):
                        ts_i, up_i = int(ts), int(up)
                        if low <= ts_i <= high and up_i <= _U64_MAX:
                            append([node_id, ts_i, up_i])
                            continue
                except (KeyError, TypeError):
                    pass
                r = _Record("uptimeEvents", item, self._where(offset, index, item, "nodeID"))
                node_id = r.int("nodeID")
                ts_i = r.int("timestamp", bigint=True)
                if not low <= ts_i <= high:
                    raise r.fail(f"timestamp {ts_i} is outside the requested window {low}..{high}")
                up_i = r.int("uptime", bigint=True)
                if up_i > _U64_MAX:
                    raise r.fail(f"uptime {up_i} does not fit in 64 bits")
                r.str("id")
                # a negative uptime is written as is: the calculation refuses that node
                append([node_id, ts_i, up_i])
            return rows

        where = {**self._id_bounds(_BLOCK_MARGIN), "timestamp_gte": str(low), "timestamp_lte": str(high)}
        per_node: dict[int, tuple[array, array]] = {node_id: (array("q"), array("q")) for node_id in node_ids}
        outside = 0
        for page in self._ranged(
            "uptime", UPTIME_BY_ID, where, parse, page_size=self.options.event_page_size, progress="uptime reports"
        ):
            for node_id, ts, up in page:
                if node_id not in known:
                    outside += 1
                    continue
                columns = per_node[node_id]
                columns[0].append(ts)
                columns[1].append(up)
        return per_node, outside

    def power_events(self, node_ids: list[int]) -> list[list]:
        """Power target and state reports in the window, merged per node in chain order
        (timestamp, then event id); rows [node_id, timestamp, kind, value]."""
        known = set(node_ids)
        merged: list[list] = []
        where = {
            **self._id_bounds(_BLOCK_MARGIN),
            "timestamp_gte": str(self.start_ts),
            "timestamp_lte": str(self.window_end_ts),
        }
        for entity, kind, value_field in (
            (POWER_TARGETS_BY_ID, "target", "newPowerTarget"),
            (POWER_STATES_BY_ID, "state", "newPowerState"),
        ):

            def parse(items: list, offset: int, entity=entity, kind=kind, value_field=value_field) -> list:
                rows = []
                for index, item in enumerate(items):
                    r = _Record(entity.field, item, self._where(offset, index, item, "id"))
                    node_id = r.int("nodeID")
                    ts = r.int("timestamp", bigint=True)
                    if not self.start_ts <= ts <= self.window_end_ts:
                        raise r.fail(f"timestamp {ts} is outside the requested window")
                    rows.append([node_id, ts, r.str("id"), kind, r.str(value_field, choices=("Up", "Down"))])
                return rows

            for page in self._ranged(
                f"power.{kind}", entity, where, parse, page_size=self.options.page_size, progress="power events"
            ):
                merged.extend(row for row in page if row[0] in known)
        merged.sort(key=lambda row: (row[0], row[1], row[2]))
        return [[node_id, ts, kind, value] for node_id, ts, _, kind, value in merged]

    def power_at_start(self, nodes: list[dict]) -> list[dict]:
        """State and target at the period start: the last report before START of each node
        the indexer has a power record for (nodes never power managed are Up/Up)."""
        managed = [node["node_id"] for node in nodes if node["_power"] is not None]
        batches = _chunks(managed, self.options.ids_per_query)
        self.progress.start("power at start", len(batches))
        result = []
        before = str(self.start_ts)
        for number, batch in enumerate(batches):
            key = f"power_at_start.{number:04d}"
            rows = self.store.get(key)
            if rows is None:
                fields = []
                for node_id in batch:
                    for prefix, root, value in (
                        ("s", "powerStateReports", "newPowerState"),
                        ("t", "powerTargetReports", "newPowerTarget"),
                    ):
                        fields.append(
                            f'{prefix}{node_id}: {root}(where: {{nodeID_eq: {node_id}, timestamp_lt: "{before}"}}, '
                            f"orderBy: [timestamp_DESC, id_DESC], limit: 1) {{ nodeID {value} timestamp }}"
                        )
                data = self.gql.query(
                    "query power_at_start { " + " ".join(fields) + " }", what=f"power at start (batch {number})"
                )
                rows = []
                for node_id in batch:
                    state = self._last_report(data, f"s{node_id}", "powerStateReports", "newPowerState", node_id)
                    target = self._last_report(data, f"t{node_id}", "powerTargetReports", "newPowerTarget", node_id)
                    state_word = state[1] if state else "Up"
                    target_word = target[1] if target else "Up"
                    if state_word == "Up" and target_word == "Up":
                        continue  # the same as not being listed
                    rows.append(
                        {
                            "node_id": node_id,
                            "state": state_word,
                            "down_since": state[0] if state and state_word == "Down" else None,
                            "target": target_word,
                        }
                    )
                self.store.put(key, rows)
            result.extend(rows)
            self.progress.advance("power at start", 1)
        return result

    def _last_report(
        self, data: dict, alias: str, entity: str, value_field: str, node_id: int
    ) -> tuple[int, str] | None:
        items = data.get(alias)
        if not isinstance(items, list):
            raise IndexerQueryError(f"{self.gql.url}: power at start: no list under {alias!r}")
        if not items:
            return None
        r = _Record(entity, items[0], f"last report before the period start of node {node_id}")
        if r.int("nodeID") != node_id:
            raise r.fail(f"nodeID {r.int('nodeID')} was not asked for")
        ts = r.int("timestamp", bigint=True)
        if ts >= self.start_ts:
            raise r.fail(f"timestamp {ts} is not before the period start {self.start_ts}")
        return ts, r.str(value_field, choices=("Up", "Down"))

    def contracts(self, node_ids: set[int]) -> list[_Contract]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = _Record("nodeContracts", item, self._where(offset, index, item, "contractID"))
                used = r.get("resourcesUsed")
                used_row = None
                if used is not None:
                    # summed into usage seconds: a negative value would hide in the sum
                    used_row = [
                        r.int(f"resourcesUsed.{name}", bigint=True, minimum=0) for name in ("cru", "mru", "sru", "hru")
                    ]
                rows.append(
                    [
                        r.int("contractID", bigint=True),
                        r.int("nodeID"),
                        r.int("numberOfPublicIPs", minimum=0),
                        r.str("state", choices=("Created", "Deleted", "OutOfFunds", "GracePeriod")),
                        _seconds(r.int("createdAt", bigint=True)),
                        used_row,
                    ]
                )
            return rows

        contracts = []
        scale = self._created_at_scale()
        where = {"createdAt_lte": str(self.end_ts * scale + scale - 1)}
        for page in self._paged(
            "contracts", CONTRACTS, where, parse, page_size=self.options.page_size, progress="contracts"
        ):
            for contract_id, node_id, ips, state, created_ts, used in page:
                if node_id in node_ids:
                    contracts.append(
                        _Contract(
                            contract_id,
                            node_id,
                            ips,
                            state == "Deleted",
                            created_ts,
                            tuple(used) if used is not None else None,
                        )
                    )
        return contracts

    def _created_at_scale(self) -> int:
        """1 when contracts' `createdAt` block times are in seconds, 1000 in milliseconds (the
        filter on it must use the same unit), judged from the newest contract."""
        cached = self.store.get("contracts.unit")
        if cached is not None:
            return cached
        data = self.gql.query(
            "query newest_contract { nodeContracts(orderBy: contractID_DESC, limit: 1) { contractID createdAt } }",
            what="newest contract",
        )
        items = data.get("nodeContracts")
        if not isinstance(items, list):
            raise IndexerQueryError(f"{self.gql.url}: newest contract: expected a list under 'nodeContracts'")
        scale = 1
        if items:
            created = _Record("nodeContracts", items[0], "newest contract").int("createdAt", bigint=True)
            scale = 1000 if created > _MILLISECONDS_ABOVE else 1
        self.store.put("contracts.unit", scale)
        return scale

    def last_bills(self, deleted: list[int]) -> dict[int, int]:
        """contract id -> its last bill report time in [START, window end], for deleted contracts."""
        batches = _chunks(deleted, self.options.ids_per_query)
        self.progress.start("contract bills", len(batches))
        found: dict[int, int] = {}
        for number, batch in enumerate(batches):
            asked = set(batch)

            def parse(items: list, offset: int, asked: set = asked) -> list:
                rows = []
                for index, item in enumerate(items):
                    r = _Record("contractBillReports", item, self._where(offset, index, item, "id"))
                    cid = r.int("contractID", bigint=True)
                    ts = r.int("timestamp", bigint=True)
                    r.str("id")
                    if cid not in asked or not self.start_ts <= ts <= self.window_end_ts:
                        raise r.fail(f"contract {cid} at {ts} does not match the query")
                    rows.append([cid, ts])
                return rows

            where = {
                **self._id_bounds(_BLOCK_MARGIN),
                "contractID_in": [str(cid) for cid in batch],
                "timestamp_gte": str(self.start_ts),
                "timestamp_lte": str(self.window_end_ts),
            }
            for page in self._ranged(
                f"bills.{number:04d}", BILLS_BY_ID, where, parse, page_size=self.options.page_size
            ):
                for cid, ts in page:
                    found[cid] = max(found.get(cid, ts), ts)
            self.progress.advance("contract bills", 1)
        return found

    def nru(self, contract_ids: list[int]) -> dict[int, int]:
        """contract id -> public traffic bytes reported in (START, END]."""
        totals: dict[int, int] = {}
        batches = _chunks(contract_ids, self.options.ids_per_query)
        self.progress.start("traffic (NRU)", len(batches))
        for number, batch in enumerate(batches):
            asked = set(batch)

            def parse(items: list, offset: int, asked: set = asked) -> list:
                rows = []
                for index, item in enumerate(items):
                    r = _Record("nruConsumptions", item, self._where(offset, index, item, "id"))
                    cid = r.int("contractID", bigint=True)
                    ts = r.int("timestamp", bigint=True)
                    r.str("id")
                    if cid not in asked or not self.start_ts < ts <= self.end_ts:
                        raise r.fail(f"contract {cid} at {ts} does not match the query")
                    rows.append([cid, r.int("nru", bigint=True, nullable=True, minimum=0) or 0])
                return rows

            # a traffic report carries the node's own time: a wider margin of blocks
            where = {
                **self._id_bounds(_NRU_BLOCK_MARGIN),
                "contractID_in": [str(cid) for cid in batch],
                "timestamp_gt": str(self.start_ts),
                "timestamp_lte": str(self.end_ts),
            }
            for page in self._ranged(f"nru.{number:04d}", NRU, where, parse, page_size=self.options.page_size):
                for cid, nru in page:
                    totals[cid] = totals.get(cid, 0) + nru
            self.progress.advance("traffic (NRU)", 1)
        return totals

    def consumption(self, nodes: list[dict]) -> dict[int, dict]:
        """Per node: usage of its contracts over the period (see INDEXER.md)."""
        contracts = self.contracts({node["node_id"] for node in nodes})
        deleted = [c.contract_id for c in contracts if c.deleted]
        last_bill = self.last_bills(deleted)
        start, end = self.start_ts, self.end_ts
        active: dict[int, int] = {}
        for contract in contracts:
            if contract.deleted and contract.contract_id not in last_bill:
                active[contract.contract_id] = 0  # no bill in the window: gone before the period
                continue
            until = min(last_bill[contract.contract_id], end) if contract.deleted else end
            active[contract.contract_id] = max(0, until - max(contract.created_ts, start))
        billed = [c.contract_id for c in contracts if not c.deleted or c.contract_id in last_bill]
        traffic = self.nru(billed)
        usage: dict[int, dict] = {}
        no_resources = 0
        for contract in contracts:
            row = usage.setdefault(
                contract.node_id,
                dict.fromkeys(("nru", "ip_seconds", "cru_seconds", "mru_seconds", "sru_seconds", "hru_seconds"), 0),
            )
            seconds = active[contract.contract_id]
            row["nru"] += traffic.get(contract.contract_id, 0)
            row["ip_seconds"] += contract.public_ips * seconds
            if contract.used is None:
                no_resources += seconds > 0
                continue
            for name, amount in zip(("cru", "mru", "sru", "hru"), contract.used, strict=True):
                row[f"{name}_seconds"] += amount * seconds
        unbilled = len(deleted) - len(last_bill)
        self.notes.append(
            "contract usage: each node contract's current resourcesUsed and numberOfPublicIPs times the "
            "seconds it was active in the period (from createdAt, until its last bill report when "
            "deleted); the indexer keeps no history of resource changes; traffic is the sum of "
            "NruConsumption reports in (start, end]"
        )
        if unbilled:
            self.notes.append(
                f"{unbilled} deleted contract(s) have no bill report in the period's window: "
                f"counted as ended before the period"
            )
        if no_resources:
            self.notes.append(f"{no_resources} active contract(s) have no resourcesUsed: counted as using none")
        return usage

    # -- checks, notes and the file ------------------------------------------------------------

    def references(self, nodes: list[dict], farms: list[dict], twins: dict[int, dict]) -> None:
        farm_ids = {farm["farm_id"] for farm in farms}
        without_farm = [n["node_id"] for n in nodes if n["farm_id"] not in farm_ids]
        without_twin = [n["node_id"] for n in nodes if n["twin_id"] not in twins]
        farms_without_twin = [f["farm_id"] for f in farms if f["twin_id"] not in twins]
        if without_farm:
            self.notes.append(
                f"{len(without_farm)} node(s) reference a farm the indexer does not have, "
                f"so they get no reward (invalid_record): nodes {_id_list(without_farm)}"
            )
        if without_twin:
            self.notes.append(
                f"{len(without_twin)} node(s) reference a twin the indexer does not have, "
                f"so they get no reward (invalid_record): nodes {_id_list(without_twin)}"
            )
        if farms_without_twin:
            self.notes.append(
                f"{len(farms_without_twin)} farm(s) reference a twin the indexer does not "
                f"have: farms {_id_list(farms_without_twin)}"
            )

    def totals(self) -> dict[str, int]:
        data = self.gql.query(_TOTALS_QUERY, what="totals")
        totals = {}
        for key, connection in COMPARED.items():
            value = data.get(connection)
            count = value.get("totalCount") if isinstance(value, dict) else None
            if type(count) is not int:
                raise IndexerQueryError(f"{self.gql.url}: totals: no {connection}.totalCount in the answer")
            totals[key] = count
        return totals

    def run(self) -> BuildSummary:
        height, processed_ts = self.check_indexer()
        fingerprint = {
            "layout": _PARTS_LAYOUT,
            "period_offset": self.period.offset,
            "network": self.network,
            "graphql_url": self.gql.url,
            "page_size": self.options.page_size,
            "event_page_size": self.options.event_page_size,
            "nodes_per_chunk": self.options.nodes_per_chunk,
            "ids_per_query": self.options.ids_per_query,
        }
        self.parts = _Parts(self.out.with_name(self.out.name + ".parts"), fingerprint)
        built_at = self.now().astimezone(UTC)

        policies = self.policies()
        nodes = self.nodes()
        self.resolve_policies(policies, nodes)
        farms = self.farms()
        node_ids = [node["node_id"] for node in nodes]
        twin_ids = sorted({n["twin_id"] for n in nodes} | {f["twin_id"] for f in farms})
        twins = self.twins(twin_ids)
        self.blocks = self.block_range(height)
        uptime, outside = self.uptime(node_ids)
        uptime_count = sum(len(columns[0]) for columns in uptime.values())
        power = self.power_events(node_ids)
        power_count = len(power)
        power_at_start = self.power_at_start(nodes)
        usage = self.consumption(nodes)

        self.references(nodes, farms, twins)
        if outside > 0:
            self.notes.append(
                f"{outside} uptime report(s) in the window belong to nodes the indexer no longer "
                f"has (deleted since) or that were created after the period: left out"
            )
        totals = self.totals()
        if totals["nodes"] > len(nodes):
            self.notes.append(f"{totals['nodes'] - len(nodes)} node(s) created after the period end are left out")
        if self.gridproxy_url:
            stats = fetch_stats(self.http, self.gridproxy_url)
            self.notes.extend(
                compare_counts(
                    totals,
                    stats,
                    tolerance_ratio=self.options.gridproxy_tolerance_ratio,
                    gridproxy_url=self.gridproxy_url,
                )
            )
        self.notes.insert(
            0,
            (
                f"farm payout addresses (Farm.stellarAddress) and node records (farm, twin, resources, "
                f"certification, farming policy, connection price, virtualized) are the indexer's current "
                f"state at height {height}, read from {built_at:%Y-%m-%d %H:%M} UTC; the indexer keeps no "
                f"history of them, so a change made after the period end ({_iso(self.end_ts)}) shows here"
            ),
        )

        zero = dict.fromkeys(("nru", "ip_seconds", "cru_seconds", "mru_seconds", "sru_seconds", "hru_seconds"), 0)
        node_rows = []
        for node in nodes:
            node.pop("_power")
            node_rows.append({**node, "consumption": usage.get(node["node_id"], zero)})
        header = {
            "format": FORMAT_TAG,
            "network": self.network,
            "period_offset": self.period.offset,
            "notes": self.notes,
            "source": {
                "builder": "tfchain-graphql",
                "code_version": CODE_VERSION,
                "graphql_url": self.gql.url,
                "gridproxy_url": self.gridproxy_url,
                "indexer_height": height,
                "indexer_processed_ts": processed_ts,
                "window": {"start_ts": self.start_ts, "end_ts": self.end_ts, "window_end_ts": self.window_end_ts},
                "built_at": built_at.isoformat(),
                "policy_file": self.options.policy_file.source() if self.options.policy_file else None,
            },
            "farming_policies": policies,
            "farms": farms,
            "twins": [twins[twin_id] for twin_id in sorted(twins)],
            "nodes": node_rows,
            "power_at_start": power_at_start,
        }
        written = self.write(header, node_ids, uptime, power)
        reused = self.parts.reused
        self.parts.remove()
        return BuildSummary(
            path=self.out,
            period=self.period,
            nodes=len(nodes),
            farms=len(farms),
            twins=len(twins),
            uptime_events=uptime_count,
            power_events=power_count,
            notes=list(self.notes),
            indexer_height=height,
            requests=self.http.requests,
            slowest_request_s=self.http.slowest_s,
            parts_reused=reused,
            bytes_written=written,
        )

    def write(self, header: dict, node_ids: list[int], uptime: dict, power: list[list]) -> int:
        """Write the snapshot to a temp file and move it into place: never a half-written file."""
        temp = self.out.with_name(f"{self.out.name}.tmp-{os.getpid()}")
        written = 0
        raw = temp.open("wb")
        out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0)
            if self.out.name.endswith(".gz")
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
            os.replace(temp, self.out)
        except BaseException:
            raw.close()
            temp.unlink(missing_ok=True)
            raise
        return written


def _id_list(ids: list[int], shown: int = 20) -> str:
    text = ", ".join(str(i) for i in ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def default_endpoints(network: str) -> tuple[str, str]:
    """(GraphQL URL, grid proxy URL) of a network."""
    return DEFAULT_ENDPOINTS[network]


def build_snapshot(
    out: str | Path,
    *,
    period: Period,
    network: str,
    graphql_url: str,
    gridproxy_url: str | None,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] | None = None,
) -> BuildSummary:
    """Build the period's snapshot from the indexer into `out` (`.gz` to gzip it).

    Raises IndexerBehind (a SnapshotUnavailable) when the indexer has not processed the
    post-period window yet, and other SourceErrors for unreachable servers, refused queries,
    malformed records and failed cross-checks. `out` is written only when everything passed.
    """
    builder = _Builder(
        Path(out),
        period=period,
        network=network,
        graphql_url=graphql_url,
        gridproxy_url=gridproxy_url,
        options=options or BuildOptions(),
        progress=progress or NoProgress(),
        now=now or (lambda: datetime.now(UTC)),
    )
    try:
        return builder.run()
    finally:
        builder.http.close()
